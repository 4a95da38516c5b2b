package lookup_test

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/lookup"
)

// schema is the part of JSON Schema a Genesys data action contract uses.
type schema struct {
	Type       string            `json:"type"`
	Properties map[string]schema `json:"properties"`
	Items      *schema           `json:"items"`
}

type dataAction struct {
	Config struct {
		Request struct {
			RequestType     string            `json:"requestType"`
			Headers         map[string]string `json:"headers"`
			RequestTemplate string            `json:"requestTemplate"`
		} `json:"request"`
		TimeoutSeconds int `json:"timeoutSeconds"`
	} `json:"config"`
	Contract struct {
		Input struct {
			InputSchema schema `json:"inputSchema"`
		} `json:"input"`
		Output struct {
			SuccessSchema schema `json:"successSchema"`
		} `json:"output"`
	} `json:"contract"`
}

func loadAction(t *testing.T) dataAction {
	t.Helper()
	b, err := os.ReadFile("../../integrations/genesys/servicenow-lookup.json")
	if err != nil {
		t.Fatal(err)
	}
	var a dataAction
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// Genesys contract rules (reference/api-contracts.md section 3.6): flat input of scalars with
// names [A-Za-z][A-Za-z0-9_-]* and none of the reserved ones; output may hold arrays of objects
// but no nested arrays; contracts cannot change after publish, so the shipped one must match
// what the function sends, field for field.
var contractName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

func TestShippedDataActionMatchesTheFunction(t *testing.T) {
	a := loadAction(t)
	in := a.Contract.Input.InputSchema
	var inputNames []string
	for name, p := range in.Properties {
		inputNames = append(inputNames, name)
		if !contractName.MatchString(name) || name == "orgId" || name == "integrationId" || name == "rawRequest" {
			t.Errorf("input %q is not an allowed contract name", name)
		}
		if p.Type != "string" {
			t.Errorf("input %s is %q; inputs must be flat scalars (string)", name, p.Type)
		}
		if !strings.Contains(a.Config.Request.RequestTemplate, `"`+name+`": "$esc.jsonString($!{input.`+name+`})"`) {
			t.Errorf("the request template does not send %s escaped with $esc.jsonString", name)
		}
	}
	sort.Strings(inputNames)
	if want := jsonNames(reflect.TypeOf(lookup.Input{})); !reflect.DeepEqual(inputNames, want) {
		t.Errorf("contract inputs %v; the function accepts %v", inputNames, want)
	}
	if a.Config.Request.RequestType != "POST" || a.Config.Request.Headers["x-api-key"] == "" || a.Config.TimeoutSeconds < 1 || a.Config.TimeoutSeconds > 60 {
		t.Errorf("request config %+v", a.Config)
	}

	// A real answer with three incidents must fit the output contract exactly.
	e := newEnv(t)
	id := e.sn.AddUser(servicenowtest.User{UserName: "abel.tuter", FirstName: "Abel", LastName: "Tuter", Phone: "+1 415 555 0100"})
	for i := 0; i < 4; i++ {
		e.incident(id, "issue", servicenow.StateNew, time.Duration(i)*time.Hour)
	}
	r, _ := e.lookup(t, `{"ani":"+14155550100"}`)
	if r.IncidentCount != 3 {
		t.Fatalf("fixture: %+v", r)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, r)), &got); err != nil {
		t.Fatal(err)
	}
	checkAgainst(t, "", a.Contract.Output.SuccessSchema, got)

	// And so must the emptiest answer (nothing found, nothing to list).
	r, _ = e.lookup(t, `{"ani":"anonymous"}`)
	got = nil
	_ = json.Unmarshal([]byte(mustJSON(t, r)), &got)
	checkAgainst(t, "", a.Contract.Output.SuccessSchema, got)
}

// checkAgainst requires value to have exactly the schema's properties, each of its type.
func checkAgainst(t *testing.T, path string, s schema, value map[string]any) {
	t.Helper()
	for name, p := range s.Properties {
		v, ok := value[name]
		if !ok {
			t.Errorf("%s%s is in the contract but not in the answer", path, name)
			continue
		}
		switch p.Type {
		case "string":
			if _, ok := v.(string); !ok {
				t.Errorf("%s%s = %v, want a string", path, name, v)
			}
		case "boolean":
			if _, ok := v.(bool); !ok {
				t.Errorf("%s%s = %v, want a boolean", path, name, v)
			}
		case "integer":
			if f, ok := v.(float64); !ok || f != float64(int64(f)) {
				t.Errorf("%s%s = %v, want an integer", path, name, v)
			}
		case "array":
			list, ok := v.([]any)
			if !ok {
				t.Errorf("%s%s = %v, want an array (never null)", path, name, v)
				continue
			}
			if p.Items == nil || p.Items.Type != "object" {
				t.Errorf("%s%s: arrays in an output contract must hold objects (no nested arrays)", path, name)
				continue
			}
			for _, item := range list {
				m, _ := item.(map[string]any)
				checkAgainst(t, path+name+"[].", *p.Items, m)
			}
		default:
			t.Errorf("%s%s has type %q; use string, boolean, integer or array", path, name, p.Type)
		}
	}
	for name := range value {
		if _, ok := s.Properties[name]; !ok {
			t.Errorf("%s%s is in the answer but not in the contract", path, name)
		}
	}
}

func jsonNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
