package fakehttp_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

type failure struct {
	Status int
	Times  int
}

func TestFailuresMostSpecificPrefixAndTimes(t *testing.T) {
	q := fakehttp.NewFailures(func(f *failure) *int { return &f.Times })
	q.Add("/api/", failure{Status: 500})                                                     // forever
	q.Add("/api/v2/routing", failure{Status: 429, Times: 2}, failure{Status: 404, Times: 1}) // then 404 once
	want := []int{429, 429, 404, 500, 500}
	for i, w := range want {
		f, ok := q.Take("/api/v2/routing/conversations/x")
		if !ok || f.Status != w {
			t.Fatalf("take %d: %v %v, want %d", i, f, ok, w)
		}
	}
	if _, ok := q.Take("/oauth/token"); ok {
		t.Fatal("a path under no prefix must not fail")
	}
	q.Clear()
	if _, ok := q.Take("/api/x"); ok {
		t.Fatal("Clear must remove every failure")
	}
}

func TestWindow(t *testing.T) {
	var w fakehttp.Window
	now := time.Unix(1000, 0)
	if ok, _, limit, _ := w.Hit(now); !ok || limit != 0 {
		t.Fatal("no limit set: everything is allowed")
	}
	w.Set(2, time.Minute, now)
	for i, wantOK := range []bool{true, true, false} {
		if ok, count, _, reset := w.Hit(now); ok != wantOK || count != i+1 || !reset.Equal(now.Add(time.Minute)) {
			t.Fatalf("hit %d: ok=%v count=%d reset=%v", i, ok, count, reset)
		}
	}
	if ok, count, _, _ := w.Hit(now.Add(time.Minute)); !ok || count != 1 {
		t.Fatal("a new window starts after Every")
	}
}

func TestTokens(t *testing.T) {
	var ts fakehttp.Tokens
	now := time.Unix(1000, 0)
	tok := ts.Issue("x-", time.Minute, now)
	r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if !ts.Bearer(r, now) || ts.Valid(tok, now.Add(time.Minute)) || ts.Issued() != 1 {
		t.Fatal("a token is valid until it expires, and counted")
	}
	ts.Revoke()
	if ts.Valid(tok, now) {
		t.Fatal("revoked tokens are invalid")
	}
}

func TestTakeForPassesOverFailuresThatDoNotMatch(t *testing.T) {
	type f struct {
		Method string
		Times  int
	}
	q := fakehttp.NewFailures(func(x *f) *int { return &x.Times })
	q.Add("/api/now/table/incident", f{Method: "POST", Times: 1})
	post := func(x *f) bool { return x.Method == "POST" }
	get := func(x *f) bool { return x.Method == "GET" }
	if _, ok := q.TakeFor("/api/now/table/incident", get); ok {
		t.Fatal("a POST failure struck a GET")
	}
	if _, ok := q.TakeFor("/api/now/table/incident", post); !ok {
		t.Fatal("the POST failure did not strike the POST")
	}
	if _, ok := q.TakeFor("/api/now/table/incident", post); ok {
		t.Fatal("used up after one")
	}
}

// TestLoseAppliesTheEffectAndLosesTheAnswer: the handler runs (its effect is stored) whatever
// happens to the answer: replaced, delivered late, reset, or never sent when the client gives up.
func TestLoseAppliesTheEffectAndLosesTheAnswer(t *testing.T) {
	var effects atomic.Int32
	created := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		effects.Add(1)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"1"}`)
	})
	mode := make(chan func(w http.ResponseWriter, r *http.Request), 1)
	srv := fakehttp.Start("lose", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // as the fakes do: only then does the server notice a client leaving
		(<-mode)(w, r)
	}))
	defer srv.Close()
	call := func(timeout time.Duration) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, nil
	}
	cases := []struct {
		name    string
		lose    func(w http.ResponseWriter, r *http.Request)
		timeout time.Duration
		status  int // 0: no answer
	}{
		{"503 instead of the answer", func(w http.ResponseWriter, r *http.Request) {
			fakehttp.Lose(w, r, created, 0, false, func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
		}, time.Second, http.StatusServiceUnavailable},
		{"the answer, late", func(w http.ResponseWriter, r *http.Request) {
			fakehttp.Lose(w, r, created, 50*time.Millisecond, false, nil)
		}, time.Second, http.StatusCreated},
		{"a reset", func(w http.ResponseWriter, r *http.Request) {
			fakehttp.Lose(w, r, created, 0, true, nil)
		}, time.Second, 0},
		{"held until the client gives up", func(w http.ResponseWriter, r *http.Request) {
			fakehttp.Lose(w, r, created, time.Minute, false, nil)
		}, 100 * time.Millisecond, 0},
	}
	for i, tc := range cases {
		mode <- tc.lose
		status, err := call(tc.timeout)
		if status != tc.status || (tc.status == 0) != (err != nil) {
			t.Errorf("%s: status %d, error %v", tc.name, status, err)
		}
		if n := effects.Load(); n != int32(i+1) {
			t.Errorf("%s: %d effects, want %d", tc.name, n, i+1)
		}
	}
}
