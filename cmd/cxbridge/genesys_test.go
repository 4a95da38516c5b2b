package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/cfnstack/cfnstacktest"
	"github.com/cxbridge/cxbridge/pkg/dataaction"
	"github.com/cxbridge/cxbridge/pkg/lookup"
)

const shipped = "../../integrations/genesys"

func export(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "actions")
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"genesys", "export", "--from", shipped, "--out", dir}, args...), &out, func(string) string { return "" })
	return dir, out.String(), err
}

// checkExported holds each written action to its shipped original: the URL is the stack's,
// everything else is byte for byte the same.
func checkExported(t *testing.T, dir, base string) {
	t.Helper()
	srcs, _ := filepath.Glob(filepath.Join(shipped, "*.json"))
	if len(srcs) != 3 {
		t.Fatalf("%d shipped actions", len(srcs))
	}
	for _, src := range srcs {
		orig, _ := os.ReadFile(src)
		got, err := os.ReadFile(filepath.Join(dir, filepath.Base(src)))
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Replace(string(orig), "CXBRIDGE_API_URL", base, 1); string(got) != want {
			t.Errorf("%s differs from the shipped file beyond its URL", filepath.Base(src))
		}
		a, err := dataaction.Load(filepath.Join(dir, filepath.Base(src)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.Config.Request.URLTemplate, base+"/") || strings.Contains(string(got), "CXBRIDGE_API_URL") {
			t.Errorf("%s: URL %s", filepath.Base(src), a.Config.Request.URLTemplate)
		}
	}
}

func TestGenesysExportWithTheAPIURL(t *testing.T) {
	const base = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
	dir, out, err := export(t, "--api-url", base+"/")
	if err != nil {
		t.Fatal(err)
	}
	checkExported(t, dir, base)
	if !strings.Contains(out, "-> POST "+base+"/servicenow/lookup") {
		t.Fatalf("output:\n%s", out)
	}
	t.Logf("\n%s", out)
}

// TestGenesysExportFromTheStack reads ApiUrl from CloudFormation through the real AWS SDK,
// pointed at a wire-level fake of the DescribeStacks query API.
func TestGenesysExportFromTheStack(t *testing.T) {
	const base = "https://z9y8x7.execute-api.ap-southeast-2.amazonaws.com/live"
	fake := cfnstacktest.New(
		cfnstacktest.Stack{Name: "cxbridge", Outputs: map[string]string{"ApiUrl": base, "StateTableName": "cxbridge-StateTable-XYZ"}},
		cfnstacktest.Stack{Name: "cxbridge-creating", Status: "CREATE_IN_PROGRESS"})
	t.Cleanup(fake.Close)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL_CLOUDFORMATION": fake.URL(), "AWS_REGION": "ap-southeast-2",
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} {
		t.Setenv(k, v)
	}
	dir, out, err := export(t, "--stack", "cxbridge")
	if err != nil {
		t.Fatal(err)
	}
	checkExported(t, dir, base)
	if !strings.Contains(out, "stack cxbridge (UPDATE_COMPLETE, ap-southeast-2): ApiUrl "+base) {
		t.Fatalf("output:\n%s", out)
	}
	if _, _, err := export(t, "--stack", "cxbridge-typo"); err == nil || !strings.Contains(err.Error(), "stack not found: cxbridge-typo in ap-southeast-2") {
		t.Fatalf("unknown stack: %v", err)
	}
	if _, _, err := export(t, "--stack", "cxbridge-creating"); err == nil || !strings.Contains(err.Error(), "CREATE_IN_PROGRESS") {
		t.Fatalf("a stack without ApiUrl yet: %v", err)
	}
}

func TestGenesysExportRefusesWhatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "exactly one of --api-url and --stack"},
		{[]string{"--api-url", "https://x.example.com", "--stack", "cxbridge"}, "exactly one of"},
		{[]string{"--api-url", "http://abc123.execute-api.eu-west-1.amazonaws.com/prod"}, "https only"},
		{[]string{"--api-url", "abc123.execute-api.eu-west-1.amazonaws.com/prod"}, "not an absolute URL"},
		{[]string{"--api-url", "https://abc123.execute-api.eu-west-1.amazonaws.com/prod?x=1"}, "without a query"},
		{[]string{"--api-url", "CXBRIDGE_API_URL"}, "not an absolute URL"},
	} {
		_, _, err := export(t, tc.args...)
		var u usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &u) {
			t.Errorf("%v: %v; want a usage error with %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := export(t, "--api-url", "http://127.0.0.1:3000"); err != nil {
		t.Fatalf("the local stack's URL: %v", err)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"genesys", "export", "--from", shipped, "--out", shipped, "--api-url", "https://x.example.com/prod"}, &out, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "must not be the directory of the shipped actions") {
		t.Fatalf("exporting over the shipped files: %v", err)
	}
}

// TestGenesysExportFollowsTheStacksUserFields: a stack whose LookupUserFields differs from the
// default answers with other outputs; the exported lookup contract lists exactly those.
func TestGenesysExportFollowsTheStacksUserFields(t *testing.T) {
	fake := cfnstacktest.New(cfnstacktest.Stack{Name: "cxbridge",
		Outputs:    map[string]string{"ApiUrl": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"},
		Parameters: map[string]string{"LookupUserFields": "company,cost_center,location.city"}})
	t.Cleanup(fake.Close)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL_CLOUDFORMATION": fake.URL(), "AWS_REGION": "eu-west-1",
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} {
		t.Setenv(k, v)
	}
	dir, out, err := export(t, "--stack", "cxbridge")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "userVip userCompany userCostCenter userLocationCity (the stack's LookupUserFields: company,cost_center,location.city)") {
		t.Fatalf("output:\n%s", out)
	}
	a, err := dataaction.Load(filepath.Join(dir, "servicenow-lookup.json"))
	if err != nil {
		t.Fatal(err)
	}
	if errs := a.Check(); len(errs) > 0 {
		t.Fatal(errs)
	}
	answer := func(fields ...string) any {
		r := lookup.Result{Status: "ok", Incidents: []lookup.IncidentSummary{}, Warnings: []string{}}
		for _, f := range fields {
			r.UserFields = append(r.UserFields, lookup.UserField{Output: f, Value: "x"})
		}
		raw, _ := json.Marshal(r)
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		_ = dec.Decode(&v)
		return v
	}
	if errs := a.Contract.Output.SuccessSchema.Exact(answer("userCompany", "userCostCenter", "userLocationCity")); len(errs) > 0 {
		t.Fatalf("the stack's answer does not fit the exported contract: %v", errs)
	}
	if errs := a.Contract.Output.SuccessSchema.Exact(answer("userCompany", "userTitle", "userLocation", "userDepartment")); len(errs) == 0 {
		t.Fatal("the default fields must no longer be in the contract")
	}
	for _, k := range []string{"userCostCenter", "userLocationCity"} {
		if a.Config.Response.TranslationMap[k] != "$."+k || a.Config.Response.TranslationMapDefaults[k] != `""` ||
			!strings.Contains(a.Config.Response.SuccessTemplate, `"`+k+`": ${`+k+`}`) {
			t.Errorf("%s is not mapped", k)
		}
	}
	if strings.Contains(a.Config.Response.SuccessTemplate, "userTitle") {
		t.Error("userTitle is still in the success template")
	}

	if _, _, err := export(t, "--api-url", "https://x.example.com/prod", "--lookup-user-fields", "phone"); err == nil || !strings.Contains(err.Error(), "phone is returned already") {
		t.Fatalf("a field the lookup returns already: %v", err)
	}
}
