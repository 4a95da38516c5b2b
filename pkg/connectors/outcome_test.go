package connectors_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

// TestWriteOutcome sends a write to a real server (or to nothing) for every way it can fail and
// checks the one classification DESIGN.md section 7 asks for: only an answer that proves nothing
// happened may be repeated blind; every other failure after the request left is unknown.
func TestWriteOutcome(t *testing.T) {
	closedAddr := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}
	status := func(code int, header ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = io.WriteString(w, `{"error":"x"}`)
		}
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc // nil: no server at all
		base    string           // overrides the server's URL
		timeout time.Duration
		ctxDone bool // the context ends before the call
		want    connectors.Outcome
		reached bool // the server saw the request
	}{
		{name: "400", handler: status(400), want: connectors.Refused, reached: true},
		{name: "401", handler: status(401), want: connectors.Refused, reached: true},
		{name: "403", handler: status(403), want: connectors.Refused, reached: true},
		{name: "404", handler: status(404), want: connectors.Refused, reached: true},
		{name: "409", handler: status(409), want: connectors.Refused, reached: true},
		{name: "422", handler: status(422), want: connectors.Refused, reached: true},
		{name: "429 with Retry-After", handler: status(429, "Retry-After", "5"), want: connectors.Refused, reached: true},
		{name: "500", handler: status(500), want: connectors.Unknown, reached: true},
		{name: "502", handler: status(502), want: connectors.Unknown, reached: true},
		{name: "503 with Retry-After", handler: status(503, "Retry-After", "30"), want: connectors.Unknown, reached: true},
		{name: "504", handler: status(504), want: connectors.Unknown, reached: true},
		{name: "201 with a body that is not JSON", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			_, _ = io.WriteString(w, "<html>")
		}, want: connectors.Unknown, reached: true},
		{name: "hang after the request arrived", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}, timeout: 200 * time.Millisecond, want: connectors.Unknown, reached: true},
		{name: "reset after the request arrived", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			fakehttp.Reset(w)
		}, want: connectors.Unknown, reached: true},
		{name: "connection refused", base: closedAddr(), want: connectors.NotSent},
		{name: "name does not resolve", base: "http://cxbridge-no-such-host.invalid", want: connectors.NotSent},
		{name: "context over before sending", handler: status(201), ctxDone: true, want: connectors.NotSent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reached atomic.Bool
			base := tc.base
			if tc.handler != nil {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					reached.Store(true)
					tc.handler(w, r)
				}))
				defer srv.Close()
				if base == "" {
					base = srv.URL
				}
			}
			c := &connectors.Client{System: "jira", BaseURL: base, HTTP: connectors.DefaultHTTPClient}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if tc.timeout > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tc.timeout)
			}
			defer cancel()
			if tc.ctxDone {
				cancel()
			}
			var out map[string]any
			_, err := c.Do(ctx, connectors.Request{Op: "create request", Method: http.MethodPost, Path: "/rest/servicedeskapi/request", Body: map[string]string{"summary": "x"}}, &out)
			if err == nil {
				t.Fatal("no error")
			}
			if got := connectors.WriteOutcome(err); got != tc.want {
				t.Errorf("WriteOutcome(%v) = %s, want %s", err, got, tc.want)
			}
			if connectors.InDoubt(err) != (tc.want == connectors.Unknown) {
				t.Errorf("InDoubt(%v) disagrees with WriteOutcome", err)
			}
			if reached.Load() != tc.reached {
				t.Errorf("server reached: %v, want %v", reached.Load(), tc.reached)
			}
		})
	}
}

func TestWriteOutcomeOfOtherErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want connectors.Outcome
	}{
		{context.DeadlineExceeded, connectors.Unknown},
		{errors.New("anything else"), connectors.Unknown},
		{fmt.Errorf("breaker: %w", connectors.ErrNotSent), connectors.NotSent},
		{&connectors.Error{System: "servicenow", Op: "append work note", Kind: connectors.KindConfig}, connectors.NotSent},
		{&connectors.Error{System: "jira", Op: "add comment", Kind: connectors.KindRejected, Message: "comment body is empty"}, connectors.Refused},
		{&connectors.Error{System: "messagebird", Op: "send text", Status: 200, Kind: connectors.KindRejected, Message: "message is rejected"}, connectors.Refused},
		{&connectors.Error{System: "jira", Op: "create request", Kind: connectors.KindUnavailable}, connectors.Unknown},
		{&connectors.Error{System: "jira", Op: "create request", Status: 503, Kind: connectors.KindUnavailable}, connectors.Unknown},
		{&connectors.Error{System: "jira", Op: "create request", Status: 201, Kind: connectors.KindBadResponse}, connectors.Unknown},
		{&connectors.Error{System: "jira", Op: "create request", Status: 429, Kind: connectors.KindRateLimited}, connectors.Refused},
	} {
		if got := connectors.WriteOutcome(tc.err); got != tc.want {
			t.Errorf("WriteOutcome(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
