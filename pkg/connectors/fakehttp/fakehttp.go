// Package fakehttp holds what every wire-level fake of an external system shares: a server on
// the loopback interface, failures injected per path prefix, a fixed-window rate limit and a
// store of issued bearer tokens. The fakes themselves (genesystest, jiratest, ...) speak their
// system's contract on top of these.
//
// Injected failures come in the two kinds production brings (DESIGN.md section 7):
//
//   - before the effect: the request is refused (a status), hangs (a delay) or its connection
//     is reset, and nothing is stored;
//   - after the effect (Lose): the request is processed and its effect stored, and then the
//     answer is lost: replaced by a 5xx (with Retry-After if asked), held back (a hang that
//     ends when the client gives up), delivered late, or the connection is reset. This is the
//     "unknown outcome" every non-idempotent write must verify before it repeats itself.
package fakehttp

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Start serves h on a free 127.0.0.1 port (never all interfaces: the network is loopback only).
func Start(name string, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("%s: listen: %v", name, err))
	}
	srv.Listener = l
	srv.Start()
	return srv
}

// Wait sleeps for d, or until the client gives up; it reports whether the client is still there.
// A hung dependency is a long Wait.
func Wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// Lose serves r with serve, so the request takes effect, and then loses the answer: it waits
// delay (a hang; it ends early, answering nothing, when the client gives up), then resets the
// connection (reset), writes the injected answer instead of the real one (fail, when not nil:
// a 5xx for a write that was applied), or delivers the real answer late. The caller must have
// read the request body (the fakes read it first and hand serve a copy): only then does the
// server notice a client that gives up during the delay.
func Lose(w http.ResponseWriter, r *http.Request, serve http.Handler, delay time.Duration, reset bool, fail func(http.ResponseWriter)) {
	rec := httptest.NewRecorder()
	serve.ServeHTTP(rec, r)
	if !Wait(r, delay) {
		return
	}
	switch {
	case reset:
		Reset(w)
	case fail != nil:
		fail(w)
	default:
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
}

// Reset ends the exchange without an answer: the connection is closed with a TCP reset (linger
// 0), as when a proxy or the server process dies. The client sees "connection reset by peer"
// (or an EOF) after its request was written.
func Reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the connection without an answer
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Failures is a queue of injected failures per path prefix. F is the fake's own failure type;
// times points at its "how many requests" field (0 = every request from now on).
type Failures[F any] struct {
	times func(*F) *int

	mu       sync.Mutex
	byPrefix map[string][]F
}

// NewFailures returns an empty queue.
func NewFailures[F any](times func(*F) *int) *Failures[F] {
	return &Failures[F]{times: times, byPrefix: map[string][]F{}}
}

// Add queues failures for request paths starting with prefix, in order.
func (q *Failures[F]) Add(prefix string, fs ...F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.byPrefix[prefix] = append(q.byPrefix[prefix], fs...)
}

// Clear removes every injected failure.
func (q *Failures[F]) Clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.byPrefix = map[string][]F{}
}

// Take returns the failure that applies to a request path, if any, and uses it up. When several
// prefixes match, the longest (most specific) wins, so the choice never depends on map order.
func (q *Failures[F]) Take(path string) (F, bool) { return q.TakeFor(path, nil) }

// TakeFor is Take for failures that apply to some requests only (one method, say): a queue
// whose next failure does not match (match returns false) is passed over for this request.
func (q *Failures[F]) TakeFor(path string, match func(*F) bool) (F, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	best := ""
	found := false
	for prefix, fs := range q.byPrefix {
		if len(fs) > 0 && strings.HasPrefix(path, prefix) && (!found || len(prefix) > len(best)) && (match == nil || match(&fs[0])) {
			best, found = prefix, true
		}
	}
	var zero F
	if !found {
		return zero, false
	}
	fs := q.byPrefix[best]
	f := fs[0]
	switch n := q.times(&fs[0]); *n {
	case 0: // forever
	case 1:
		q.byPrefix[best] = fs[1:]
	default:
		*n--
	}
	return f, true
}

// Window is a fixed-window rate limit: Limit requests per Every, then refusals until the window
// ends. A zero Limit allows everything.
type Window struct {
	mu      sync.Mutex
	limit   int
	every   time.Duration
	start   time.Time
	count   int
	refused int
}

// Set changes the limit and starts a new window at now.
func (w *Window) Set(limit int, every time.Duration, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.limit, w.every, w.start, w.count = limit, every, now, 0
}

// Hit counts one request at now. It reports whether the request is allowed, how many the
// window has seen (this one included), the limit and when the window resets.
func (w *Window) Hit(now time.Time) (allowed bool, count, limit int, reset time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.limit <= 0 {
		return true, 0, 0, time.Time{}
	}
	if now.Sub(w.start) >= w.every {
		w.start, w.count = now, 0
	}
	w.count++
	if w.count > w.limit {
		w.refused++
	}
	return w.count <= w.limit, w.count, w.limit, w.start.Add(w.every)
}

// Refused counts the requests the limit refused since it was first set.
func (w *Window) Refused() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}

// Tokens are the bearer tokens a fake's token endpoint issued.
type Tokens struct {
	mu     sync.Mutex
	expiry map[string]time.Time
	issued int
}

// Issue creates a token valid for ttl from now; prefix makes it recognisable in a log.
func (t *Tokens) Issue(prefix string, ttl time.Duration, now time.Time) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	tok := prefix + hex.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.expiry == nil {
		t.expiry = map[string]time.Time{}
	}
	t.expiry[tok] = now.Add(ttl)
	t.issued++
	return tok
}

// Valid reports whether tok was issued and has not expired at now.
func (t *Tokens) Valid(tok string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	exp, ok := t.expiry[tok]
	return ok && now.Before(exp)
}

// Bearer reports whether r carries a valid "Authorization: Bearer" token.
func (t *Tokens) Bearer(r *http.Request, now time.Time) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && t.Valid(tok, now)
}

// Revoke invalidates every issued token, as when a client secret is rotated.
func (t *Tokens) Revoke() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expiry = map[string]time.Time{}
}

// Issued counts the tokens handed out so far.
func (t *Tokens) Issued() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.issued
}
