package connectors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// vendor is a real HTTP server whose handler each test sets.
func vendor(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func client(srv *httptest.Server) *connectors.Client {
	return &connectors.Client{System: "servicenow", BaseURL: srv.URL, HTTP: connectors.DefaultHTTPClient}
}

func answer(status int, header http.Header, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for k, vs := range header {
			w.Header()[k] = vs
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

func TestKindForStatus(t *testing.T) {
	tests := []struct {
		status int
		kind   connectors.Kind
	}{
		{400, connectors.KindRejected},
		{401, connectors.KindUnauthorized},
		{403, connectors.KindForbidden},
		{404, connectors.KindNotFound},
		{408, connectors.KindUnavailable},
		{409, connectors.KindConflict},
		{413, connectors.KindRejected},
		{422, connectors.KindRejected},
		{429, connectors.KindRateLimited},
		{500, connectors.KindUnavailable},
		{502, connectors.KindUnavailable},
		{503, connectors.KindUnavailable},
		{504, connectors.KindUnavailable},
	}
	for _, tt := range tests {
		if got := connectors.KindForStatus(tt.status); got != tt.kind {
			t.Errorf("KindForStatus(%d) = %q; want %q", tt.status, got, tt.kind)
		}
	}
}

// Every status a vendor can answer becomes an *Error a caller can branch on, and only the
// failures of the dependency itself count as an outage (what the circuit breaker counts).
func TestStatusErrors(t *testing.T) {
	tests := []struct {
		status    int
		kind      connectors.Kind
		retryable bool
	}{
		{400, connectors.KindRejected, false},
		{401, connectors.KindUnauthorized, false},
		{403, connectors.KindForbidden, false},
		{404, connectors.KindNotFound, false},
		{409, connectors.KindConflict, false},
		{429, connectors.KindRateLimited, true},
		{500, connectors.KindUnavailable, true},
		{503, connectors.KindUnavailable, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			srv := vendor(t, answer(tt.status, nil, `{"error":{"message":"nope"}}`))
			_, err := client(srv).Do(context.Background(), connectors.Request{Op: "get incident", Method: http.MethodGet, Path: "/api/now/table/incident"}, &struct{}{})
			var ce *connectors.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Do = %v; want *connectors.Error", err)
			}
			if ce.Status != tt.status || ce.Kind != tt.kind || ce.System != "servicenow" || ce.Op != "get incident" {
				t.Errorf("error = %+v; want status %d kind %q", ce, tt.status, tt.kind)
			}
			if ce.Retryable() != tt.retryable || connectors.IsOutage(err) != tt.retryable {
				t.Errorf("Retryable = %v, IsOutage = %v; want %v", ce.Retryable(), connectors.IsOutage(err), tt.retryable)
			}
			if connectors.KindOf(fmt.Errorf("create escalation: %w", err)) != tt.kind {
				t.Errorf("KindOf(wrapped) = %q; want %q", connectors.KindOf(fmt.Errorf("x: %w", err)), tt.kind)
			}
			if want := fmt.Sprintf("servicenow get incident: HTTP %d", tt.status); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q; want it to start with %q", err, want)
			}
		})
	}
}

func TestIsOutage(t *testing.T) {
	// a transport failure: nothing listens on the port any more
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	_, refused := client(dead).Do(context.Background(), connectors.Request{Op: "ping", Method: http.MethodGet, Path: "/"}, nil)

	// a timeout: the server does not answer before the caller's deadline
	hang := vendor(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, timeout := client(hang).Do(ctx, connectors.Request{Op: "ping", Method: http.MethodGet, Path: "/"}, nil)

	// the caller went away: not the dependency's fault
	cctx, ccancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); ccancel() }()
	_, cancelled := client(hang).Do(cctx, connectors.Request{Op: "ping", Method: http.MethodGet, Path: "/"}, nil)

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"timeout", timeout, true},
		{"bare deadline", context.DeadlineExceeded, true},
		{"wrapped deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), true},
		{"caller cancelled", cancelled, false},
		{"other error", errors.New("boom"), false},
		{"nil", nil, false},
		{"config", &connectors.Error{Kind: connectors.KindConfig}, false},
		{"bad response", &connectors.Error{Kind: connectors.KindBadResponse}, false},
	}
	for _, tt := range tests {
		if got := connectors.IsOutage(tt.err); got != tt.want {
			t.Errorf("IsOutage(%s: %v) = %v; want %v", tt.name, tt.err, got, tt.want)
		}
	}
	for _, err := range []error{refused, timeout, cancelled} {
		var ce *connectors.Error
		if !errors.As(err, &ce) || ce.Status != 0 || ce.Kind != connectors.KindUnavailable {
			t.Errorf("transport failure = %#v; want *Error{Status 0, Kind unavailable}", err)
		}
	}
	if !errors.Is(timeout, context.DeadlineExceeded) {
		t.Errorf("timeout = %v; want context.DeadlineExceeded underneath", timeout)
	}
}

func TestVendorErrorParsing(t *testing.T) {
	srv := vendor(t, answer(http.StatusBadRequest, nil, `{"error":{"message":"Invalid table","detail":"incidentz"},"status":"failure"}`))
	c := client(srv)
	c.ParseError = func(body []byte) (string, string) {
		var e struct {
			Error  struct{ Message, Detail string } `json:"error"`
			Status string                           `json:"status"`
		}
		_ = json.Unmarshal(body, &e)
		return e.Status, e.Error.Message + ": " + e.Error.Detail
	}
	_, err := c.Do(context.Background(), connectors.Request{Op: "query", Method: http.MethodGet, Path: "/api/now/table/incidentz"}, nil)
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Do = %v", err)
	}
	if ce.Code != "failure" || ce.Message != "Invalid table: incidentz" {
		t.Errorf("Code, Message = %q, %q; want the vendor's", ce.Code, ce.Message)
	}
	if want := "servicenow query: HTTP 400 [failure]: Invalid table: incidentz"; err.Error() != want {
		t.Errorf("Error() = %q; want %q", err, want)
	}
}

func TestRetryAfterParsed(t *testing.T) {
	date := time.Now().Add(20 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		status     int
		retryAfter string
		min, max   time.Duration
		has        bool
	}{
		{429, "7", 7 * time.Second, 7 * time.Second, true},
		{503, "2", 2 * time.Second, 2 * time.Second, true},
		{503, date, 15 * time.Second, 20 * time.Second, true},
		{429, "", 0, 0, false},
		{429, "later", 0, 0, false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.retryAfter != "" {
			h.Set("Retry-After", tt.retryAfter)
		}
		srv := vendor(t, answer(tt.status, h, `{}`))
		_, err := client(srv).Do(context.Background(), connectors.Request{Op: "create", Method: http.MethodPost, Path: "/x", Body: map[string]int{"a": 1}}, nil)
		var ce *connectors.Error
		if !errors.As(err, &ce) {
			t.Fatalf("Do = %v", err)
		}
		d, has := ce.RetryAfter()
		if has != tt.has || d < tt.min || d > tt.max {
			t.Errorf("%d Retry-After %q: RetryAfter = %v, %v; want %v..%v, %v", tt.status, tt.retryAfter, d, has, tt.min, tt.max, tt.has)
		}
	}
}

func TestWithRetryAfter(t *testing.T) {
	e := (&connectors.Error{Kind: connectors.KindRateLimited}).WithRetryAfter(3 * time.Second)
	if d, ok := e.RetryAfter(); !ok || d != 3*time.Second {
		t.Errorf("RetryAfter = %v, %v", d, ok)
	}
}

// counting is a Credentials that hands out numbered tokens and counts how it is used.
type counting struct {
	applied     atomic.Int32
	invalidated atomic.Int32
	generation  atomic.Int32
	applyErr    error
}

func (c *counting) Apply(ctx context.Context, req *http.Request) error {
	c.applied.Add(1)
	if c.applyErr != nil {
		return c.applyErr
	}
	req.Header.Set("Authorization", fmt.Sprintf("Bearer token-%d", c.generation.Load()))
	return nil
}

func (c *counting) Invalidate() { c.invalidated.Add(1); c.generation.Add(1) }

func TestUnauthorizedRefreshesCredentialsOnce(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	srv := vendor(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization")+" "+string(body))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer token-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"sys_id":"abc"}`)
	})
	creds := &counting{}
	c := client(srv)
	c.Creds = creds
	var out struct {
		SysID string `json:"sys_id"`
	}
	_, err := c.Do(context.Background(), connectors.Request{Op: "create incident", Method: http.MethodPost, Path: "/api/now/table/incident", Body: map[string]string{"short_description": "caller waiting"}}, &out)
	if err != nil {
		t.Fatalf("Do = %v; want success with refreshed credentials", err)
	}
	if out.SysID != "abc" {
		t.Errorf("decoded %+v", out)
	}
	if creds.applied.Load() != 2 || creds.invalidated.Load() != 1 {
		t.Errorf("Apply %d, Invalidate %d; want 2 and 1", creds.applied.Load(), creds.invalidated.Load())
	}
	// the retry carries the same body again
	want := []string{`Bearer token-0 {"short_description":"caller waiting"}`, `Bearer token-1 {"short_description":"caller waiting"}`}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("server saw %q; want %q", seen, want)
	}
}

func TestUnauthorizedTwiceIsReported(t *testing.T) {
	var hits atomic.Int32
	srv := vendor(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	})
	creds := &counting{}
	c := client(srv)
	c.Creds = creds
	_, err := c.Do(context.Background(), connectors.Request{Op: "get", Method: http.MethodGet, Path: "/"}, nil)
	if connectors.KindOf(err) != connectors.KindUnauthorized {
		t.Fatalf("Do = %v; want unauthorized", err)
	}
	if hits.Load() != 2 || creds.invalidated.Load() != 1 {
		t.Errorf("server hit %d times, Invalidate %d; a 401 is retried exactly once", hits.Load(), creds.invalidated.Load())
	}

	// without credentials there is nothing to refresh: no retry
	hits.Store(0)
	_, err = client(srv).Do(context.Background(), connectors.Request{Op: "get", Method: http.MethodGet, Path: "/"}, nil)
	if connectors.KindOf(err) != connectors.KindUnauthorized || hits.Load() != 1 {
		t.Errorf("no creds: Do = %v after %d requests; want unauthorized after 1", err, hits.Load())
	}
}

func TestCredentialFailures(t *testing.T) {
	var hits atomic.Int32
	srv := vendor(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })

	// a connector-level error from the credentials (e.g. the token endpoint said 401) passes through
	tokenErr := &connectors.Error{System: "genesys", Op: "get access token", Status: 401, Kind: connectors.KindUnauthorized, Code: "invalid_client"}
	c := client(srv)
	c.Creds = &counting{applyErr: tokenErr}
	_, err := c.Do(context.Background(), connectors.Request{Op: "get", Method: http.MethodGet, Path: "/"}, nil)
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Op != tokenErr.Op || ce.Status != 401 || ce.Code != "invalid_client" {
		t.Errorf("Do = %v; want the credentials' own error", err)
	}
	if o := connectors.WriteOutcome(err); o != connectors.NotSent {
		t.Errorf("outcome %s: the request itself never left", o)
	}

	// anything else is wrapped, so callers still get an *Error
	c.Creds = &counting{applyErr: errors.New("secrets manager unreachable")}
	_, err = c.Do(context.Background(), connectors.Request{Op: "get", Method: http.MethodGet, Path: "/"}, nil)
	if !errors.As(err, &ce) || ce.Kind != connectors.KindUnavailable || !strings.Contains(err.Error(), "secrets manager unreachable") {
		t.Errorf("Do = %v; want an unavailable *Error naming the cause", err)
	}
	if hits.Load() != 0 {
		t.Errorf("server hit %d times; no request may leave without credentials", hits.Load())
	}
}

// A redirect (typically to an SSO login page) must surface as an error, whichever http.Client
// the connector was given.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var loginHits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/api/now/table/incident", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login.do", http.StatusFound)
	})
	mux.HandleFunc("/login.do", func(w http.ResponseWriter, r *http.Request) {
		loginHits.Add(1)
		fmt.Fprint(w, `{"result":[]}`)
	})
	srv := vendor(t, mux.ServeHTTP)
	for name, hc := range map[string]*http.Client{"default": connectors.DefaultHTTPClient, "plain": {}, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			c := client(srv)
			c.HTTP = hc
			var out map[string]any
			_, err := c.Do(context.Background(), connectors.Request{Op: "query", Method: http.MethodGet, Path: "/api/now/table/incident"}, &out)
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Status != http.StatusFound || ce.Retryable() {
				t.Errorf("Do = %v; want a non-retryable 302 error", err)
			}
		})
	}
	if loginHits.Load() != 0 {
		t.Errorf("the login page was fetched %d times; redirects must not be followed", loginHits.Load())
	}
}

func TestResponseBodyLimit(t *testing.T) {
	big := `{"result":"` + strings.Repeat("x", 2000) + `"}`
	srv := vendor(t, answer(http.StatusOK, nil, big))
	c := client(srv)
	c.MaxBody = 1000
	var out map[string]string
	_, err := c.Do(context.Background(), connectors.Request{Op: "query", Method: http.MethodGet, Path: "/"}, &out)
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.KindBadResponse || !strings.Contains(err.Error(), "larger than 1000 bytes") {
		t.Errorf("Do = %v; want a bad_response saying the body is too large", err)
	}

	c.MaxBody = int64(len(big)) // exactly at the limit: fine
	if _, err := c.Do(context.Background(), connectors.Request{Op: "query", Method: http.MethodGet, Path: "/"}, &out); err != nil || len(out["result"]) != 2000 {
		t.Errorf("body of exactly MaxBody: Do = %v", err)
	}

	// a caller that ignores the body is not failed by its size
	c.MaxBody = 10
	if _, err := c.Do(context.Background(), connectors.Request{Op: "update", Method: http.MethodPatch, Path: "/"}, nil); err != nil {
		t.Errorf("out == nil: Do = %v; want success", err)
	}

	// an error body is cut, not fatal: the status still decides
	errSrv := vendor(t, answer(http.StatusServiceUnavailable, nil, big))
	c = client(errSrv)
	c.MaxBody = 100
	var got []byte
	c.ParseError = func(body []byte) (string, string) { got = body; return "", "" }
	_, err = c.Do(context.Background(), connectors.Request{Op: "query", Method: http.MethodGet, Path: "/"}, nil)
	if connectors.KindOf(err) != connectors.KindUnavailable || len(got) > 101 {
		t.Errorf("Do = %v with a %d-byte error body handed to ParseError; want unavailable and at most ~100 bytes", err, len(got))
	}
}

func TestUndecodableResponse(t *testing.T) {
	for name, body := range map[string]string{
		"html":      `<html><body>Instance hibernating. Contact admin@acme.example</body></html>`,
		"truncated": `{"result":[{"number":"INC0010001"`,
		"type":      `{"count":"many"}`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := vendor(t, answer(http.StatusOK, nil, body))
			var out struct {
				Count  int              `json:"count"`
				Result []map[string]any `json:"result"`
			}
			_, err := client(srv).Do(context.Background(), connectors.Request{Op: "query", Method: http.MethodGet, Path: "/"}, &out)
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Kind != connectors.KindBadResponse || ce.Status != http.StatusOK {
				t.Fatalf("Do = %#v; want bad_response with status 200", err)
			}
			if connectors.IsOutage(err) || ce.Retryable() {
				t.Errorf("a body we cannot read is not an outage and not worth retrying")
			}
			for _, leak := range []string{"admin@acme.example", "INC0010001", "many"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("Error() = %q carries response body text %q", err, leak)
				}
			}
		})
	}
}

func TestEmptySuccessBody(t *testing.T) {
	srv := vendor(t, answer(http.StatusNoContent, nil, ""))
	out := map[string]any{"kept": true}
	resp, err := client(srv).Do(context.Background(), connectors.Request{Op: "patch", Method: http.MethodPatch, Path: "/x", Body: map[string]int{"priority": 5}}, &out)
	if err != nil || resp.Status != http.StatusNoContent || out["kept"] != true {
		t.Errorf("Do = %+v, %v, out %v; a 204 is a success with nothing to decode", resp, err, out)
	}
}

// What goes on the wire: method, URL, query, headers and each body kind.
func TestRequestOnTheWire(t *testing.T) {
	type seen struct {
		method, uri, contentType, accept, custom, override, body string
	}
	var got seen
	srv := vendor(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.RequestURI, r.Header.Get("Content-Type"), r.Header.Get("Accept"), r.Header.Get("X-Client"), r.Header.Get("X-Override"), string(b)}
		w.Header().Set("X-Total-Count", "3")
		fmt.Fprint(w, `{}`)
	})
	c := client(srv)
	c.Header = http.Header{"X-Client": {"cxbridge"}, "X-Override": {"client"}}

	tests := []struct {
		name string
		req  connectors.Request
		want seen
	}{
		{"json struct", connectors.Request{Method: http.MethodPost, Path: "/api/x", Body: struct {
			A string `json:"a"`
		}{"b"}},
			seen{"POST", "/api/x", "application/json", "application/json", "cxbridge", "client", `{"a":"b"}`}},
		{"raw bytes", connectors.Request{Method: http.MethodPut, Path: "/api/x", Body: []byte(`{"raw":1}`)},
			seen{"PUT", "/api/x", "application/json", "application/json", "cxbridge", "client", `{"raw":1}`}},
		{"form", connectors.Request{Method: http.MethodPost, Path: "/token", Body: url.Values{"grant_type": {"client_credentials"}}},
			seen{"POST", "/token", "application/x-www-form-urlencoded", "application/json", "cxbridge", "client", "grant_type=client_credentials"}},
		{"query and header", connectors.Request{Method: http.MethodGet, Path: "/api/now/table/sys_user", Query: url.Values{"sysparm_query": {"mobile_phone=+15551234567"}, "sysparm_limit": {"1"}}, Header: http.Header{"X-Override": {"request"}}},
			seen{"GET", "/api/now/table/sys_user?sysparm_limit=1&sysparm_query=mobile_phone%3D%2B15551234567", "", "application/json", "cxbridge", "request", ""}},
		{"query added to a path with one", connectors.Request{Method: http.MethodGet, Path: "/search?fields=id", Query: url.Values{"q": {"a b"}}},
			seen{"GET", "/search?fields=id&q=a+b", "", "application/json", "cxbridge", "client", ""}},
		{"full URL", connectors.Request{Method: http.MethodGet, Path: srv.URL + "/elsewhere"},
			seen{"GET", "/elsewhere", "", "application/json", "cxbridge", "client", ""}},
	}
	for _, tt := range tests {
		got = seen{}
		c.BaseURL = srv.URL
		if tt.name == "full URL" {
			c.BaseURL = "http://127.0.0.1:1" // must not be used
		}
		tt.req.Op = tt.name
		resp, err := c.Do(context.Background(), tt.req, nil)
		if err != nil {
			t.Errorf("%s: Do = %v", tt.name, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: server saw %+v; want %+v", tt.name, got, tt.want)
		}
		if resp.Status != 200 || resp.Header.Get("X-Total-Count") != "3" {
			t.Errorf("%s: Response = %+v; want status and headers", tt.name, resp)
		}
	}
}

func TestUnencodableBodyIsRejected(t *testing.T) {
	var hits atomic.Int32
	srv := vendor(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	_, err := client(srv).Do(context.Background(), connectors.Request{Op: "create", Method: http.MethodPost, Path: "/", Body: map[string]any{"f": func() {}}}, nil)
	if connectors.KindOf(err) != connectors.KindRejected || hits.Load() != 0 {
		t.Errorf("Do = %v (%d requests); want rejected before sending", err, hits.Load())
	}
}

// Transport errors are logged; they must not carry the query string, where lookups put a
// caller's phone number.
func TestTransportErrorHidesQuery(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := &connectors.Client{System: "servicenow", BaseURL: "http://" + addr}
	_, err = c.Do(context.Background(), connectors.Request{Op: "find caller", Method: http.MethodGet, Path: "/api/now/table/sys_user", Query: url.Values{"sysparm_query": {"mobile_phone=+15551234567"}}}, nil)
	if err == nil {
		t.Fatal("Do succeeded against a closed port")
	}
	if strings.Contains(err.Error(), "5551234567") || strings.Contains(err.Error(), "sysparm_query") {
		t.Errorf("Error() = %q carries the query string", err)
	}
	if !strings.Contains(err.Error(), "/api/now/table/sys_user") {
		t.Errorf("Error() = %q; it should still name the endpoint", err)
	}
}

func TestTruncate(t *testing.T) {
	if got := connectors.Truncate("short", 10); got != "short" {
		t.Errorf("Truncate = %q", got)
	}
	if got := connectors.Truncate(strings.Repeat("a", 300), 200); len(got) != 203 || !strings.HasSuffix(got, "...") {
		t.Errorf("Truncate = %d bytes %q", len(got), got[len(got)-5:])
	}
	// vendor messages are often not English: never split a character
	if got := connectors.Truncate("Zugriff verweigert für Benutzer", 20); got != "Zugriff verweigert f..." {
		t.Errorf("Truncate = %q", got)
	}
	if got := connectors.Truncate("アクセスが拒否されました", 10); !utf8.ValidString(got) || got != "アクセ..." {
		t.Errorf("Truncate = %q; want whole characters only", got)
	}
}
