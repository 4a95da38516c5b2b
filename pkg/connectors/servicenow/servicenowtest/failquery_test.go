package servicenowtest_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
)

func TestFailQueryTargetsOneCaller(t *testing.T) {
	s := newServer(t, servicenowtest.Config{})
	s.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter", Phone: "+1 415 555 0100"})
	s.FailQuery("0429", servicenowtest.Failure{Status: http.StatusTooManyRequests, RetryAfter: 3600, Times: 1})
	query := func(q string) answer {
		return do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/sys_user", query: url.Values{"sysparm_query": {q}}})
	}
	if a := query("phoneLIKE0100"); a.status != http.StatusOK || len(results(t, a)) != 1 {
		t.Fatalf("another caller must be served: %d %s", a.status, a.raw)
	}
	a := query("phoneLIKE0429^ORmobile_phoneLIKE0429")
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "3600" || a.header.Get("X-RateLimit-Rule") != servicenowtest.RateLimitRuleID || a.body["status"] != "failure" {
		t.Fatalf("targeted 429: %d %v %s", a.status, a.header, a.raw)
	}
	if a := query("phoneLIKE0429"); a.status != http.StatusOK {
		t.Fatalf("Times: 1 must be used up: %d", a.status)
	}
	s.FailQuery("0429", servicenowtest.Failure{Status: http.StatusServiceUnavailable})
	s.ClearFailures()
	if a := query("phoneLIKE0429"); a.status != http.StatusOK {
		t.Fatalf("ClearFailures must clear query failures too: %d", a.status)
	}
}
