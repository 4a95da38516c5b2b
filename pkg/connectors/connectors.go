// Package connectors holds what every outbound client shares: one error type that callers can
// branch on, and a small JSON-over-HTTP client that produces it.
//
// The per-system clients live in subpackages (jira, servicenow, genesys, messagebird, telemetry),
// each with a wire-level fake beside it in <system>test.
package connectors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cxbridge/cxbridge/pkg/retry"
)

// Kind is what a caller can do about an error.
type Kind string

const (
	KindUnavailable  Kind = "unavailable"   // transport failure, timeout or 5xx: retry later
	KindRateLimited  Kind = "rate_limited"  // 429: retry after the server's wait
	KindUnauthorized Kind = "unauthorized"  // 401: credentials are wrong or expired
	KindForbidden    Kind = "forbidden"     // 403: the account lacks a permission
	KindNotFound     Kind = "not_found"     // 404
	KindConflict     Kind = "conflict"      // 409
	KindRejected     Kind = "rejected"      // other 4xx: our request was wrong; do not retry
	KindBadResponse  Kind = "bad_response"  // 2xx with a body we cannot read
	KindConfig       Kind = "configuration" // missing credentials or settings on our side
)

// Error is a failed call to an external system. It never carries request bodies, so it is safe
// to log.
type Error struct {
	System  string // "jira", "servicenow", "genesys", "messagebird", "telemetry"
	Op      string // what we were doing, e.g. "create request"
	Status  int    // HTTP status; 0 when no response arrived
	Kind    Kind
	Code    string // the system's own error code, when it sends one
	Message string // the system's own error message, when it sends one
	Err     error  // the transport or decoding error, if any
	// HeldBack: cxbridge itself held the request back (its shared rate limit, pkg/ratelimit).
	// It never left (WriteOutcome: NotSent), so it is safe to retry blind; unlike a 429 it says
	// nothing about the system's health, so circuit breakers ignore it.
	HeldBack bool

	retryAfter    time.Duration
	hasRetryAfter bool
	unsent        bool // raised before the request was (completely) sent: see WriteOutcome
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: ", e.System, e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	} else {
		b.WriteString(string(e.Kind))
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " [%s]", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same request may succeed later.
func (e *Error) Retryable() bool { return e.Kind == KindUnavailable || e.Kind == KindRateLimited }

// RetryAfter is the server's requested wait, when it sent one.
func (e *Error) RetryAfter() (time.Duration, bool) { return e.retryAfter, e.hasRetryAfter }

// WithRetryAfter sets the wait a server asked for; for clients that read it from elsewhere.
func (e *Error) WithRetryAfter(d time.Duration) *Error {
	e.retryAfter, e.hasRetryAfter = d, true
	return e
}

// KindOf returns the Kind of err, or "" when err is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// HeldBack reports whether err is a request cxbridge held back itself (see Error.HeldBack).
func HeldBack(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.HeldBack
}

// IsOutage reports whether err says the dependency itself is failing (timeouts, transport
// errors, 5xx, 429), as opposed to our request being wrong. Circuit breakers count only these.
func IsOutage(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // our caller gave up; the dependency did nothing wrong
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable()
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// Credentials authorise outbound requests.
type Credentials interface {
	// Apply sets the request's Authorization (or equivalent) header.
	Apply(ctx context.Context, req *http.Request) error
	// Invalidate forgets cached credentials after a 401, so the next Apply fetches fresh ones.
	Invalidate()
}

// SecretReader reads JSON secrets (pkg/secrets.Cache satisfies it). Connectors read their
// credentials through it lazily, on the first call that needs them.
type SecretReader interface {
	JSON(ctx context.Context, id string, v any) error
	Invalidate(id string)
}

// Client sends JSON requests to one system and turns every failure into an *Error.
type Client struct {
	System  string
	BaseURL string // no trailing slash
	HTTP    *http.Client
	Creds   Credentials // nil: no authorisation header
	// Header, when set, adds fixed headers to every request (e.g. an Accept variant).
	Header http.Header
	// ParseError extracts the system's error code and message from an error body.
	ParseError func(body []byte) (code, message string)
	// MaxBody bounds how much of a response is read; 0 means 4 MiB.
	MaxBody int64
}

// Response is what a successful call returns besides the decoded body.
type Response struct {
	Status int
	Header http.Header
}

// Request describes one call.
type Request struct {
	Op     string // for errors and logs
	Method string
	Path   string // appended to BaseURL; may be a full URL
	Query  url.Values
	Body   any // JSON-encoded when not nil; []byte and url.Values are sent as they are
	Header http.Header
}

// DefaultHTTPClient is shared by all connectors in one execution environment so connections
// are reused across invocations. Per-call limits come from the context.
var DefaultHTTPClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   3 * time.Second,
		ExpectContinueTimeout: time.Second,
	},
	// Never follow redirects: a redirect to a login page must surface as an error, not as a
	// 200 HTML page we then fail to decode.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Do sends r and decodes a 2xx JSON body into out (when out is not nil). A 401 invalidates the
// credentials and is retried once with fresh ones; other failures are returned as *Error.
func (c *Client) Do(ctx context.Context, r Request, out any) (*Response, error) {
	resp, body, err := c.send(ctx, r)
	if err == nil && resp.Status == http.StatusUnauthorized && c.Creds != nil {
		c.Creds.Invalidate()
		resp, body, err = c.send(ctx, r)
	}
	if err != nil {
		return nil, err
	}
	if resp.Status < 200 || resp.Status > 299 {
		return nil, c.statusError(r.Op, resp, body)
	}
	if limit := c.maxBody(); out != nil && int64(len(body)) > limit {
		// A cut-off body would fail to decode with a misleading "unexpected end of JSON input",
		// or, worse, decode into something partial; say what happened instead.
		return nil, &Error{System: c.System, Op: r.Op, Status: resp.Status, Kind: KindBadResponse, Err: fmt.Errorf("response body is larger than %d bytes", limit)}
	}
	if out != nil && len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, &Error{System: c.System, Op: r.Op, Status: resp.Status, Kind: KindBadResponse, Err: err}
		}
	}
	return resp, nil
}

// send makes one HTTP exchange and returns the status, headers and (bounded) body; the
// response body is always read and closed here.
func (c *Client) send(ctx context.Context, r Request) (*Response, []byte, error) {
	fail := func(kind Kind, err error) (*Response, []byte, error) {
		return nil, nil, &Error{System: c.System, Op: r.Op, Kind: kind, Err: err}
	}
	target := r.Path
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		target = c.BaseURL + r.Path
	}
	if len(r.Query) > 0 {
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		target += sep + r.Query.Encode()
	}
	var body io.Reader
	contentType := ""
	switch b := r.Body.(type) {
	case nil:
	case []byte:
		body, contentType = bytes.NewReader(b), "application/json"
	case url.Values:
		body, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return fail(KindRejected, fmt.Errorf("encode request: %w", err))
		}
		body, contentType = bytes.NewReader(buf), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, target, body)
	if err != nil {
		return fail(KindConfig, err)
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range c.Header {
		req.Header[k] = vs
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if c.Creds != nil {
		if err := c.Creds.Apply(ctx, req); err != nil {
			// Whatever the token endpoint answered, this request never left.
			var ce *Error
			if errors.As(err, &ce) {
				cp := *ce
				return nil, nil, notSent(&cp)
			}
			_, _, err := fail(KindUnavailable, fmt.Errorf("credentials: %w", err))
			return nil, nil, notSent(err.(*Error))
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = DefaultHTTPClient
	}
	if hc.CheckRedirect == nil {
		// Never follow redirects, whichever client was passed in (see DefaultHTTPClient).
		noRedirect := *hc
		noRedirect.CheckRedirect = DefaultHTTPClient.CheckRedirect
		hc = &noRedirect
	}
	// Whether the whole request reached the connection decides what a transport error means:
	// one that was never completely written cannot have been acted on (WriteOutcome).
	var written atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				written.Store(true)
			}
		},
	}))
	start := time.Now()
	resp, err := hc.Do(req)
	var held *Error
	if errors.As(err, &held) && held.HeldBack {
		// The transport refused to send it (pkg/ratelimit): not a transport failure.
		e := *held
		if e.Op == "" {
			e.Op = r.Op
		}
		return nil, nil, &e
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// The query string can hold personal data (a caller's number in a lookup); errors
			// are logged, so they name the endpoint only.
			ue.URL = stripQuery(ue.URL)
		}
		slog.DebugContext(ctx, "outbound call failed", "system", c.System, "op", r.Op, "ms", time.Since(start).Milliseconds(), "error", err.Error(), "written", written.Load())
		// Not completely written: it cannot have been acted on.
		return nil, nil, &Error{System: c.System, Op: r.Op, Kind: KindUnavailable, Err: err, unsent: !written.Load()}
	}
	defer resp.Body.Close()
	// One byte more than the limit, so Do can tell a body that fits from one that was cut off.
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody()+1))
	slog.DebugContext(ctx, "outbound call", "system", c.System, "op", r.Op, "status", resp.StatusCode, "ms", time.Since(start).Milliseconds())
	if err != nil {
		return fail(KindUnavailable, fmt.Errorf("read response: %w", err))
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header}, data, nil
}

func (c *Client) maxBody() int64 {
	if c.MaxBody <= 0 {
		return 4 << 20
	}
	return c.MaxBody
}

func stripQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

func (c *Client) statusError(op string, resp *Response, body []byte) *Error {
	e := &Error{System: c.System, Op: op, Status: resp.Status, Kind: KindForStatus(resp.Status)}
	if c.ParseError != nil {
		e.Code, e.Message = c.ParseError(body)
	}
	if d, ok := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.retryAfter, e.hasRetryAfter = d, true
	}
	return e
}

// KindForStatus maps an HTTP status to a Kind.
func KindForStatus(status int) Kind {
	switch {
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status == http.StatusUnauthorized:
		return KindUnauthorized
	case status == http.StatusForbidden:
		return KindForbidden
	case status == http.StatusNotFound:
		return KindNotFound
	case status == http.StatusConflict:
		return KindConflict
	case status == http.StatusRequestTimeout || status >= 500:
		return KindUnavailable
	default:
		return KindRejected
	}
}

// Truncate shortens a vendor message so one error cannot flood a log line.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // do not cut a character in half
	}
	return s[:n] + "..."
}
