package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

func TestPlanIsReplayableAndHoldsItsRates(t *testing.T) {
	const n = 20000
	count := func(seed int64) (map[kind]int, int, []fault) {
		p := newPlan(seed, DefaultRates)
		p.on.Store(true)
		kinds, after := map[kind]int{}, 0
		var first []fault
		for i := range n {
			// The same key over and over: only the occurrence number differs.
			f := p.decide("jira POST /rest/servicedeskapi/request chaos-h-eh", i%10 == 0)
			kinds[f.kind]++
			if f.afterCommit && f.kind != kill {
				after++
			}
			if i < 50 {
				first = append(first, f)
			}
		}
		return kinds, after, first
	}
	kinds, after, first := count(42)
	_, _, again := count(42)
	_, _, other := count(43)
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Error("the same seed gave another fault sequence")
	}
	if fmt.Sprint(first) == fmt.Sprint(other) {
		t.Error("another seed gave the same fault sequence")
	}
	within := func(name string, got int, want float64) {
		if math.Abs(float64(got)/n-want) > 0.015 {
			t.Errorf("%s: %.3f of requests, want %.3f", name, float64(got)/n, want)
		}
	}
	r := DefaultRates
	within("5xx", kinds[serverError], r.ServerError*(1-r.Kill/10))
	within("429", kinds[rateLimited], r.RateLimited*(1-r.Kill/10))
	within("hang", kinds[hang], r.Hang*(1-r.Kill/10))
	within("kill", kinds[kill], r.Kill/10) // only every tenth request is a create
	within("after commit", after, (r.ServerError+r.Hang)/2*(1-r.Kill/10))

	off := newPlan(42, DefaultRates)
	for range 100 {
		if f := off.decide("x", true); f.kind != pass {
			t.Fatalf("a plan that is off injected %v", f.kind)
		}
	}
}

// TestProxyFaultsBeforeAndAfterCommit drives the proxy in front of the real Jira fake: a fault
// before commit never reaches Jira, one after commit leaves the request created in Jira while
// the caller gets the fault, a hang answers nothing, a kill runs once the create is applied.
func TestProxyFaultsBeforeAndAfterCommit(t *testing.T) {
	j := jiratest.New(jiratest.Config{Email: "bot@example.com", APIToken: "tok"})
	defer j.Close()
	var next fault
	log := &journal{}
	px, addr, err := newProxy("jira", j.URL(), newPlan(1, DefaultRates), log)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	px.decide = func(string, bool) fault { return next }
	px.creates = func(method, path string) bool {
		return method == http.MethodPost && path == "/rest/servicedeskapi/request"
	}
	killedAt := -1
	px.kill = func(system string, markers []string) string {
		killedAt = j.RequestCount()
		return fmt.Sprintf("%s %v", system, markers)
	}

	conv := "chaos-h-en"
	create := func(timeout time.Duration) (int, http.Header, string, error) {
		body := `{"serviceDeskId":"1","requestTypeId":"10","requestFieldValues":{"summary":"s","labels":["cxb-0123456789abcdef01234567"],"` +
			jiratest.FieldConversationID + `":"` + conv + `"}}`
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, addr+"/rest/servicedeskapi/request", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("bot@example.com", "tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b), nil
	}

	steps := []struct {
		fault   fault
		status  int    // 0: no answer
		body    string // in the answer
		created int    // requests Jira holds afterwards
	}{
		{fault{kind: pass}, 201, `"issueKey"`, 1},
		{fault{kind: serverError, status: 503, retryAfter: 2}, 503, `"errorMessage":"Service Unavailable"`, 1},
		{fault{kind: serverError, status: 502, afterCommit: true}, 502, "<h1>502 Bad Gateway</h1>", 2},
		{fault{kind: rateLimited, status: 429, retryAfter: 1}, 429, `"errorMessage"`, 2},
		{fault{kind: hang}, 0, "", 2},
		{fault{kind: hang, afterCommit: true}, 0, "", 3},
		{fault{kind: kill, afterCommit: true}, 0, "", 4},
	}
	for i, s := range steps {
		next = s.fault
		status, h, body, err := create(time.Second)
		switch {
		case s.status == 0 && !errors.Is(err, context.DeadlineExceeded):
			t.Errorf("step %d (%v): %d %s %v; want no answer", i, s.fault.kind, status, body, err)
		case s.status != 0 && (err != nil || status != s.status || !strings.Contains(body, s.body)):
			t.Errorf("step %d (%v): %d %s %v; want %d with %s", i, s.fault.kind, status, body, err, s.status, s.body)
		}
		if s.fault.retryAfter > 0 && h.Get("Retry-After") != fmt.Sprint(s.fault.retryAfter) {
			t.Errorf("step %d: Retry-After %q", i, h.Get("Retry-After"))
		}
		if n := j.RequestCount(); n != s.created {
			t.Errorf("step %d (%v, after commit %v): Jira holds %d requests, want %d", i, s.fault.kind, s.fault.afterCommit, n, s.created)
		}
	}
	if killedAt != 4 {
		t.Errorf("the kill ran with %d requests in Jira; it must run after the create was applied (4)", killedAt)
	}
	evs := log.all()
	for give := time.Now().Add(5 * time.Second); len(evs) < len(steps) && time.Now().Before(give); evs = log.all() {
		time.Sleep(10 * time.Millisecond) // the proxy records a hang once the caller has gone
	}
	if len(evs) != len(steps) || len(evs[0].Markers) != 2 || evs[0].Markers[1] != conv || !strings.Contains(evs[6].Killed, conv) {
		t.Errorf("journal: %d events, first %+v, last %+v", len(evs), evs[0], evs[len(evs)-1])
	}
}

func TestFindMarkers(t *testing.T) {
	got := findMarkers(`/rest/api/3/search/jql?jql=labels%20%3D%20cxb-0123456789abcdef01234567`,
		[]byte(`{"a":"[chaos-u0007 m1] hi","b":"chaos-ki-eki","c":"chaos-ki-eki"}`))
	want := "[cxb-0123456789abcdef01234567 chaos-u0007 chaos-ki-eki]"
	if fmt.Sprint(got) != want {
		t.Errorf("markers %v, want %s", got, want)
	}
}
