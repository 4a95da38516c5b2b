package localstack_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/dataaction"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// genesysFacing are the functions Genesys calls through a data action; each must ship one.
var genesysFacing = []string{"telemetry-tier", "create-escalation", "servicenow-lookup"}

// TestShippedDataActionsWorkAgainstTheRealFunctions does what Genesys does with each action in
// integrations/genesys: renders its request template from the inputs of every successful event
// of its function, sends it with the credential's API key to the local API (the real bootstrap
// behind it), and validates the answer against the action's output contract.
func TestShippedDataActionsWorkAgainstTheRealFunctions(t *testing.T) {
	root, err := dynamotest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	actions, err := dataaction.LoadDir(filepath.Join(root, "integrations", "genesys"))
	if err != nil {
		t.Fatal(err)
	}
	st := stack(t)
	for _, fn := range genesysFacing {
		if _, ok := st.Template.Function(localstack.LogicalID(fn)); ok && actions[fn] == nil {
			t.Errorf("functions/%s is Genesys-facing but integrations/genesys/%s.json does not exist", fn, fn)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: st.API()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()

	for fn, action := range actions {
		t.Run(fn, func(t *testing.T) {
			for _, err := range action.Check() {
				t.Error(err)
			}
			var route *struct{ Path, Method string }
			for _, r := range st.Template.Routes() {
				if localstack.DirOf(r.Function) == fn && r.ApiKeyRequired {
					route = &struct{ Path, Method string }{r.Path, r.Method}
				}
			}
			if route == nil {
				t.Fatalf("template.yaml has no API-key route for functions/%s", fn)
			}
			req := action.Config.Request
			if req.URLTemplate != "CXBRIDGE_API_URL"+route.Path || req.Type != route.Method {
				t.Fatalf("action calls %s %s; the route is %s CXBRIDGE_API_URL%s", req.Type, req.URLTemplate, route.Method, route.Path)
			}
			cases := successfulInputs(t, root, fn)
			if len(cases) == 0 {
				t.Fatalf("events/%s has no successful event to exercise the action with", fn)
			}
			allowed := map[string]bool{}
			for _, n := range action.InputNames() {
				allowed[n] = true
			}
			for name, inputs := range cases {
				for k := range inputs {
					if !allowed[k] {
						t.Errorf("%s sends %q, which is not in the action's input contract", name, k)
					}
				}
				body, err := dataaction.Render(req.Template, inputs, map[string]string{"apiKey": localstack.LocalAPIKey})
				if err != nil {
					t.Fatal(err)
				}
				status, out := send(t, base+route.Path, req.Headers, body)
				if status != http.StatusOK {
					t.Fatalf("%s: the rendered request %s got %d %s", name, body, status, out)
				}
				value, err := action.Output(out)
				if err != nil {
					t.Fatal(err)
				}
				for _, err := range action.Contract.Output.SuccessSchema.Validate(value) {
					t.Errorf("%s: the real answer breaks the output contract: %v\nanswer: %s", name, err, out)
				}
			}
		})
	}
}

// successfulInputs returns, per event of fn that the events test expects to succeed, the inputs
// a flow would pass: the body of an API Gateway event, or a direct invocation's event itself.
func successfulInputs(t *testing.T, root, fn string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	paths, _ := filepath.Glob(filepath.Join(root, "events", fn, "*.json"))
	sort.Strings(paths)
	for _, p := range paths {
		rel := fn + "/" + filepath.Base(p)
		exp, ok := expectations[rel]
		if !ok || exp.Error != "" || (exp.Status != 0 && exp.Status != http.StatusOK) {
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Body       *string `json:"body"`
			HTTPMethod string  `json:"httpMethod"`
		}
		_ = json.Unmarshal(raw, &ev)
		inputs := map[string]any{}
		src := raw
		if ev.HTTPMethod != "" && ev.Body != nil {
			src = []byte(*ev.Body)
		}
		if err := json.Unmarshal(src, &inputs); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		out[rel] = inputs
	}
	return out
}

func send(t *testing.T, url string, headers map[string]string, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range headers {
		if strings.Contains(v, "${credentials.apiKey}") {
			v = localstack.LocalAPIKey
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
