package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/cfnstack"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/dataaction"
	"github.com/cxbridge/cxbridge/pkg/lookup"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// placeholder is what the shipped actions hold where the stack's API URL goes.
const placeholder = "CXBRIDGE_API_URL"

// genesysExport writes the shipped Genesys data actions with the stack's real API URL, ready to
// import: from --api-url, or from the ApiUrl output of the CloudFormation stack --stack.
func genesysExport(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("genesys export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	apiURL := fs.String("api-url", "", "the stack's ApiUrl output, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com/prod")
	stackName := fs.String("stack", "", "read ApiUrl from this CloudFormation stack's outputs (AWS credentials and region as for the AWS CLI)")
	from := fs.String("from", filepath.Join("integrations", "genesys"), "directory of the shipped actions")
	dir := fs.String("out", "genesys-actions", "directory to write the actions to")
	userFields := fs.String("lookup-user-fields", "", "the stack's LookupUserFields, when not read from --stack (default "+strings.Join(lookup.DefaultUserFields, ",")+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*apiURL == "") == (*stackName == "") {
		return usageError("genesys export: give exactly one of --api-url and --stack\n" + usage)
	}
	base := *apiURL
	fieldsFrom := "--lookup-user-fields"
	if *userFields == "" {
		*userFields, fieldsFrom = strings.Join(lookup.DefaultUserFields, ","), "the default"
	}
	if *stackName != "" {
		cfg, err := store.LoadAWS(ctx)
		if err != nil {
			return err
		}
		st, err := cfnstack.Describe(ctx, cfg, *stackName)
		if err != nil {
			return err
		}
		if base, err = st.Output("ApiUrl"); err != nil {
			return err
		}
		if v, ok := st.Parameters["LookupUserFields"]; ok && fieldsFrom == "the default" {
			*userFields, fieldsFrom = v, "the stack's LookupUserFields"
		}
		fmt.Fprintf(out, "stack %s (%s, %s): ApiUrl %s\n", st.Name, st.Status, cfg.Region, base)
	}
	base, err := checkAPIURL(base)
	if err != nil {
		return err
	}
	fields, err := lookup.ParseUserFields(splitList(*userFields))
	if err != nil {
		return usageError("LookupUserFields " + *userFields + ": " + err.Error())
	}

	paths, err := filepath.Glob(filepath.Join(*from, "*.json"))
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("no data actions in %s: run from the repository root, or pass --from integrations/genesys", *from)
	}
	if same, _ := sameDir(*from, *dir); same {
		return usageError("genesys export: --out must not be the directory of the shipped actions")
	}
	sort.Strings(paths)
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	for _, src := range paths {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		exported, err := withAPIURL(data, base)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if filepath.Base(src) == "servicenow-lookup.json" {
			// The shipped contract carries the default extra user fields; a stack configured
			// with others answers with those, so its contract must list them.
			if exported, err = withUserFields(exported, fields); err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
			names := make([]string, 0, len(fields))
			for _, f := range fields {
				names = append(names, lookup.OutputName(f))
			}
			fmt.Fprintf(out, "servicenow-lookup: user outputs userVip %s (%s: %s)\n", strings.Join(names, " "), fieldsFrom, *userFields)
		}
		dst := filepath.Join(*dir, filepath.Base(src))
		if err := os.WriteFile(dst, exported, 0o644); err != nil {
			return err
		}
		// Read back what was written as Genesys would import it, and check it.
		a, err := dataaction.Load(dst)
		if err != nil {
			return err
		}
		if errs := a.Check(); len(errs) > 0 {
			return fmt.Errorf("%s: %w", dst, errors.Join(errs...))
		}
		fmt.Fprintf(out, "wrote %s  %q -> %s %s\n", dst, a.Name, a.Config.Request.Type, a.Config.Request.URLTemplate)
	}
	fmt.Fprintf(out, "\nImport each file in Genesys Cloud: Admin > Integrations > Actions > Import, with the Web Services Data Actions integration whose User Defined credential holds apiKey.\n")
	return nil
}

// withAPIURL puts base in place of the placeholder at the start of the request URL template;
// the rest of the file is left byte for byte as shipped.
func withAPIURL(data []byte, base string) ([]byte, error) {
	key := []byte(`"requestUrlTemplate": "` + placeholder)
	if bytes.Count(data, key) != 1 {
		return nil, fmt.Errorf("want one requestUrlTemplate starting with %s (is it a shipped action, not an exported one?)", placeholder)
	}
	return bytes.Replace(data, key, []byte(`"requestUrlTemplate": "`+jsonString(base)), 1), nil
}

// withUserFields gives the lookup action one output per extra user field (LookupUserFields), in
// place of the ones it carries: in the translation map and its defaults, the success template
// and the output contract, right after userVip. With the fields the file already carries, the
// file comes back byte for byte.
func withUserFields(data []byte, fields []servicenow.Field) ([]byte, error) {
	var top object
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	cfg, err := top.child("config")
	if err != nil {
		return nil, err
	}
	resp, err := cfg.child("response")
	if err != nil {
		return nil, err
	}
	tm, err := resp.child("translationMap")
	if err != nil {
		return nil, err
	}
	defs, err := resp.child("translationMapDefaults")
	if err != nil {
		return nil, err
	}
	contract, err := top.child("contract")
	if err != nil {
		return nil, err
	}
	output, err := contract.child("output")
	if err != nil {
		return nil, err
	}
	schema, err := output.child("successSchema")
	if err != nil {
		return nil, err
	}
	props, err := schema.child("properties")
	if err != nil {
		return nil, err
	}
	var tpl string
	if err := json.Unmarshal(resp.vals["successTemplate"], &tpl); err != nil {
		return nil, fmt.Errorf("successTemplate: %w", err)
	}
	const anchor = `"userVip": ${userVip}, `
	if !strings.Contains(tpl, anchor) || tm.vals["userVip"] == nil {
		return nil, errors.New("the lookup action has no userVip output to place the user fields after")
	}
	fixed := map[string]bool{}
	for _, n := range lookup.FixedOutputs() {
		fixed[n] = true
	}
	for _, k := range append([]string(nil), tm.keys...) {
		if !fixed[k] {
			tm.delete(k)
			defs.delete(k)
			props.delete(k)
			tpl = strings.Replace(tpl, `"`+k+`": ${`+k+`}, `, "", 1)
		}
	}
	type property struct {
		Type        string `json:"type"`
		Description string `json:"description"`
	}
	after, insert := "userVip", ""
	for _, f := range fields {
		name := lookup.OutputName(f)
		desc := "sys_user." + string(f) + " as ServiceNow displays it; empty when unknown."
		for _, err := range []error{tm.insertAfter(after, name, "$."+name), defs.insertAfter(after, name, `""`),
			props.insertAfter(after, name, property{"string", desc})} {
			if err != nil {
				return nil, err
			}
		}
		insert += `"` + name + `": ${` + name + `}, `
		after = name
	}
	tpl = strings.Replace(tpl, anchor, anchor+insert, 1)
	if err := resp.insertAfter("translationMapDefaults", "successTemplate", tpl); err != nil {
		return nil, err
	}
	resp.setChild("translationMap", tm)
	resp.setChild("translationMapDefaults", defs)
	cfg.setChild("response", resp)
	top.setChild("config", cfg)
	schema.setChild("properties", props)
	output.setChild("successSchema", schema)
	contract.setChild("output", output)
	top.setChild("contract", contract)
	raw, err := top.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// jsonString escapes s for the inside of a JSON string.
func jsonString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// checkAPIURL accepts the stack's API URL: https with a host and a stage path, no query; http
// only for the local stack on the loopback interface. The trailing slash goes.
func checkAPIURL(raw string) (string, error) {
	raw = strings.TrimRight(strings.TrimSpace(raw), "/")
	u, err := url.Parse(raw)
	local := u != nil && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost")
	switch {
	case err != nil || u.Host == "":
		return "", usageError(fmt.Sprintf("--api-url %q is not an absolute URL such as https://abc123.execute-api.eu-west-1.amazonaws.com/prod", raw))
	case u.Scheme != "https" && !(u.Scheme == "http" && local):
		return "", usageError(fmt.Sprintf("--api-url %q: Genesys Cloud calls https only (http is accepted for the local stack on 127.0.0.1)", raw))
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", usageError(fmt.Sprintf("--api-url %q: want the base URL alone, without a query, fragment or user", raw))
	case strings.Contains(raw, placeholder) || strings.ContainsAny(raw, "${}"):
		return "", usageError(fmt.Sprintf("--api-url %q: want the stack's real URL", raw))
	}
	return raw, nil
}

func sameDir(a, b string) (bool, error) {
	aa, err := filepath.Abs(a)
	if err != nil {
		return false, err
	}
	bb, err := filepath.Abs(b)
	if err != nil {
		return false, err
	}
	return filepath.Clean(aa) == filepath.Clean(bb), nil
}
