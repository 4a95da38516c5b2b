package escalation_test

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/escalation"
)

// TestShippedDataActionMatchesTheAPI keeps integrations/genesys/create-escalation.json, the
// data action users import, in step with what the function accepts and answers: the same
// input names (flat, none reserved), the same output fields.
func TestShippedDataActionMatchesTheAPI(t *testing.T) {
	raw, err := os.ReadFile("../../integrations/genesys/create-escalation.json")
	if err != nil {
		t.Fatal(err)
	}
	var action struct {
		Config struct {
			Request struct {
				RequestType     string `json:"requestType"`
				RequestTemplate string `json:"requestTemplate"`
				URL             string `json:"requestUrlTemplate"`
			} `json:"request"`
			TimeoutSeconds int `json:"timeoutSeconds"`
		} `json:"config"`
		Contract struct {
			Input struct {
				Schema struct {
					Required   []string                  `json:"required"`
					Properties map[string]map[string]any `json:"properties"`
				} `json:"inputSchema"`
			} `json:"input"`
			Output struct {
				Schema struct {
					Properties map[string]map[string]any `json:"properties"`
				} `json:"successSchema"`
			} `json:"output"`
		} `json:"contract"`
	}
	if err := json.Unmarshal(raw, &action); err != nil {
		t.Fatal(err)
	}
	if action.Config.Request.RequestType != "POST" || !strings.HasSuffix(action.Config.Request.URL, "/escalations") {
		t.Fatalf("request %+v", action.Config.Request)
	}
	if to := action.Config.TimeoutSeconds; to < 1 || to > 60 {
		t.Fatalf("timeoutSeconds %d: Genesys allows 1-60", to)
	}
	in := action.Contract.Input.Schema
	if got, want := names(in.Properties), jsonNames(escalation.Input{}); !reflect.DeepEqual(got, want) {
		t.Fatalf("input contract %v\nfunction inputs %v", got, want)
	}
	for name, p := range in.Properties {
		if p["type"] == "object" || p["type"] == "array" {
			t.Errorf("%s: data action inputs must be flat", name)
		}
		if name == "orgId" || name == "integrationId" || name == "rawRequest" {
			t.Errorf("%s is a reserved input name", name)
		}
	}
	sort.Strings(in.Required)
	if !reflect.DeepEqual(in.Required, []string{"conversationId", "trigger"}) {
		t.Fatalf("required %v", in.Required)
	}
	if got, want := names(action.Contract.Output.Schema.Properties), jsonNames(escalation.Result{}); !reflect.DeepEqual(got, want) {
		t.Fatalf("output contract %v\nfunction answer %v", got, want)
	}
}

func names(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func jsonNames(v any) []string {
	var out []string
	rt := reflect.TypeOf(v)
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
