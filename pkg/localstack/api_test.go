package localstack_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// TestAPIBehavesLikeTheDeployedGateway drives the local API over real HTTP: API keys are
// enforced where the template requires them, unknown routes get API Gateway's answer, and a
// request reaches the real function as a REST proxy event and comes back as HTTP.
func TestAPIBehavesLikeTheDeployedGateway(t *testing.T) {
	st := stack(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: st.API()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()

	post := func(path, key, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("x-api-key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	status, body := post("/telemetry/tier", localstack.LocalAPIKey, `{"customerId":"`+localstack.CustomerCritical+`"}`)
	var d struct{ Status, Tier string }
	if status != 200 || json.Unmarshal([]byte(body), &d) != nil || d.Status != "ok" || d.Tier != "L3" {
		t.Fatalf("with key: %d %s", status, body)
	}
	if status, body := post("/telemetry/tier", "", `{"customerId":"x"}`); status != 403 || !strings.Contains(body, "Forbidden") {
		t.Fatalf("without key: %d %s", status, body)
	}
	if status, body := post("/telemetry/tier", "wrong", `{"customerId":"x"}`); status != 403 || !strings.Contains(body, "Forbidden") {
		t.Fatalf("wrong key: %d %s", status, body)
	}
	if status, body := post("/no/such/route", localstack.LocalAPIKey, `{}`); status != 403 || !strings.Contains(body, "Missing Authentication Token") {
		t.Fatalf("unknown route: %d %s", status, body)
	}
	if status, body := post("/telemetry/tier", localstack.LocalAPIKey, `{"customerId":`); status != 400 || !strings.Contains(body, `"field":"body"`) {
		t.Fatalf("bad JSON must reach the function and come back as its 400: %d %s", status, body)
	}
}

func TestLogicalIDRoundTrip(t *testing.T) {
	for _, dir := range []string{"telemetry-tier", "create-escalation", "servicenow-lookup", "messagebird-inbound", "escalation-redrive"} {
		if got := localstack.DirOf(localstack.LogicalID(dir)); got != dir {
			t.Errorf("%s -> %s -> %s", dir, localstack.LogicalID(dir), got)
		}
	}
}
