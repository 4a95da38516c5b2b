package fakehttp_test

import (
	"net/http"
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
