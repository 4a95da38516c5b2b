package dataaction_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/dataaction"
)

func TestRenderFollowsVelocity(t *testing.T) {
	const tmpl = `{"a": "$esc.jsonString(${input.a})", "b": "$!esc.jsonString(${input.b})", "n": ${input.n}, "k": "${credentials.apiKey}", "q": "$esc.url($input.a)", "c": "$!{input.c}", "d": "${input.d}"}`
	got, err := dataaction.Render(tmpl, map[string]any{"a": `say "hi" \ 4111<>`, "n": 42}, map[string]string{"apiKey": "k1"})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatalf("rendered template is not JSON: %s (%v)", got, err)
	}
	if v["a"] != `say "hi" \ 4111<>` || v["b"] != "" || v["n"] != 42.0 || v["k"] != "k1" || v["c"] != "" {
		t.Fatalf("rendered %s", got)
	}
	if v["q"] != "say+%22hi%22+%5C+4111%3C%3E" {
		t.Fatalf("url escaping: %v", v["q"])
	}
	// An absent input without "!" is left as written, as Velocity does: the request then shows
	// the template text, which is how a missing input shows up in Genesys' action test.
	if v["d"] != "${input.d}" {
		t.Fatalf("unresolved reference: %v", v["d"])
	}
	if _, err := dataaction.Render(`{"x": "#if($input.a)y#end $foreach"}`, nil, nil); err == nil {
		t.Fatal("Velocity this checker does not understand must be an error")
	}
}

func TestCheckFindsWhatGenesysRejects(t *testing.T) {
	good := func() *dataaction.Action {
		var a dataaction.Action
		_ = json.Unmarshal([]byte(`{"name":"x","integrationType":"custom-rest-actions","actionType":"custom",
		  "config":{"request":{"requestUrlTemplate":"CXBRIDGE_API_URL/x","requestType":"POST",
		    "headers":{"Content-Type":"application/json","x-api-key":"${credentials.apiKey}"},"requestTemplate":"{}"},
		    "response":{"translationMap":{"list":"$.list"},"translationMapDefaults":{"list":"[]"},"successTemplate":"{\"list\": ${list}}"}},
		  "contract":{"input":{"inputSchema":{"type":"object","properties":{"a":{"type":"string"}}}},
		    "output":{"successSchema":{"type":"object","properties":{"list":{"type":"array","items":{"type":"object","properties":{"n":{"type":"string"}}}}}}}}}`), &a)
		return &a
	}
	if errs := good().Check(); len(errs) != 0 {
		t.Fatalf("a valid action: %v", errs)
	}
	cases := map[string]func(a *dataaction.Action){
		"reserved input": func(a *dataaction.Action) {
			a.Contract.Input.InputSchema.Properties["rawRequest"] = &dataaction.Schema{Type: dataaction.Types{"string"}}
		},
		"bad input name": func(a *dataaction.Action) {
			a.Contract.Input.InputSchema.Properties["1st"] = &dataaction.Schema{Type: dataaction.Types{"string"}}
		},
		"nested input": func(a *dataaction.Action) {
			a.Contract.Input.InputSchema.Properties["o"] = &dataaction.Schema{Type: dataaction.Types{"object"}}
		},
		"required not defined": func(a *dataaction.Action) { a.Contract.Input.InputSchema.Required = []string{"zzz"} },
		"nested array output": func(a *dataaction.Action) {
			a.Contract.Output.SuccessSchema.Properties["m"] = &dataaction.Schema{Type: dataaction.Types{"array"}, Items: &dataaction.Schema{Type: dataaction.Types{"array"}}}
		},
		"ref": func(a *dataaction.Action) {
			a.Contract.Output.SuccessSchema.Properties["r"] = &dataaction.Schema{Ref: "#/x"}
		},
		"key in action": func(a *dataaction.Action) { a.Config.Request.Headers["x-api-key"] = "abc123" },
		"timeout":       func(a *dataaction.Action) { a.Config.TimeoutSeconds = 90 },
		"no default":    func(a *dataaction.Action) { a.Config.Response.TranslationMapDefaults = nil },
	}
	for name, breakIt := range cases {
		a := good()
		breakIt(a)
		if errs := a.Check(); len(errs) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
}

func TestSchemaValidation(t *testing.T) {
	var s dataaction.Schema
	_ = json.Unmarshal([]byte(`{"type":"object","required":["status","count"],"properties":{
	  "status":{"type":"string","enum":["ok","fallback"]},"count":{"type":"integer"},"ratio":{"type":"number"},
	  "note":{"type":["string","null"]},"items":{"type":"array","items":{"type":"object","properties":{"n":{"type":"string"}}}}}}`), &s)
	if errs := s.ValidateJSON([]byte(`{"status":"ok","count":3,"ratio":0.5,"note":null,"items":[{"n":"x"}],"extra":1}`)); len(errs) != 0 {
		t.Fatalf("valid value: %v", errs)
	}
	errs := s.ValidateJSON([]byte(`{"status":"maybe","count":1.5,"items":[{"n":7}]}`))
	joined := ""
	for _, e := range errs {
		joined += e.Error() + "\n"
	}
	for _, want := range []string{`$.status: maybe is not one of`, `$.count: is a number, want integer`, `$.items[0].n: is an integer, want string`} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q in:\n%s", want, joined)
		}
	}
	if errs := s.ValidateJSON([]byte(`{"count":1}`)); len(errs) != 1 || !strings.Contains(errs[0].Error(), `"status" is missing`) {
		t.Fatalf("required: %v", errs)
	}
}

func TestExactWantsEveryFieldAndNoOther(t *testing.T) {
	var s dataaction.Schema
	_ = json.Unmarshal([]byte(`{"type":"object","properties":{"a":{"type":"string"},"list":{"type":"array","items":{"type":"object","properties":{"n":{"type":"integer"}}}}}}`), &s)
	var ok, missing, extra, nested any
	_ = json.Unmarshal([]byte(`{"a":"x","list":[{"n":1}]}`), &ok)
	_ = json.Unmarshal([]byte(`{"list":[]}`), &missing)
	_ = json.Unmarshal([]byte(`{"a":"x","list":[],"b":1}`), &extra)
	_ = json.Unmarshal([]byte(`{"a":"x","list":[{"n":1,"m":2}]}`), &nested)
	if errs := s.Exact(ok); len(errs) != 0 {
		t.Fatalf("exact value: %v", errs)
	}
	for name, v := range map[string]any{"missing": missing, "extra": extra, "nested extra": nested} {
		if errs := s.Exact(v); len(errs) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
}

func TestOutputAppliesTheTranslationMap(t *testing.T) {
	var a dataaction.Action
	_ = json.Unmarshal([]byte(`{"config":{"response":{
	  "translationMap":{"status":"$.status","count":"$.count","list":"$.list"},
	  "translationMapDefaults":{"status":"\"\"","count":"0","list":"[]"},
	  "successTemplate":"{\"status\": ${status}, \"count\": ${count}, \"list\": ${list}}"}}}`), &a)
	out, err := a.Output([]byte(`{"status":"ok","list":[{"n":1}],"extra":true}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(out)
	if string(got) != `{"count":0,"list":[{"n":1}],"status":"ok"}` {
		t.Fatalf("output %s: a missing field takes its default, extras are dropped", got)
	}
	a.Config.Response.TranslationMapDefaults = nil
	if _, err := a.Output([]byte(`{"status":"ok"}`)); err == nil {
		t.Fatal("a missing field without a default must fail, as it does in Genesys")
	}
}
