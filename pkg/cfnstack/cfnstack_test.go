package cfnstack_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/cfnstack"
	"github.com/cxbridge/cxbridge/pkg/cfnstack/cfnstacktest"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// TestDescribeThroughTheRealSDK points the AWS SDK, by the standard endpoint variable, at the
// wire-level fake of CloudFormation's query API.
func TestDescribeThroughTheRealSDK(t *testing.T) {
	fake := cfnstacktest.New(cfnstacktest.Stack{Name: "cxbridge",
		Outputs:    map[string]string{"ApiUrl": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "StateTableName": "cxbridge-StateTable-1"},
		Parameters: map[string]string{"StageName": "prod", "LookupUserFields": "company,title"}},
		cfnstacktest.Stack{Name: "half-built", Status: "ROLLBACK_COMPLETE"})
	t.Cleanup(fake.Close)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL_CLOUDFORMATION": fake.URL(), "AWS_REGION": "eu-west-1",
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/dev/null"} {
		t.Setenv(k, v)
	}
	cfg, err := store.LoadAWS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, err := cfnstack.Describe(context.Background(), cfg, "cxbridge")
	if err != nil {
		t.Fatal(err)
	}
	if url, err := st.Output("ApiUrl"); err != nil || url != "https://abc123.execute-api.eu-west-1.amazonaws.com/prod" ||
		st.Status != "UPDATE_COMPLETE" || st.Parameters["LookupUserFields"] != "company,title" {
		t.Fatalf("%+v %v", st, err)
	}
	if f := fake.Requests()[0]; f.Get("StackName") != "cxbridge" {
		t.Fatalf("request %v", f)
	}
	if _, err := cfnstack.Describe(context.Background(), cfg, "nope"); !errors.Is(err, cfnstack.ErrNotFound) || !strings.Contains(err.Error(), "eu-west-1") {
		t.Fatalf("an unknown stack: %v", err)
	}
	half, err := cfnstack.Describe(context.Background(), cfg, "half-built")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := half.Output("ApiUrl"); err == nil || !strings.Contains(err.Error(), "ROLLBACK_COMPLETE") {
		t.Fatalf("a stack without the output must say its status: %v", err)
	}
}
