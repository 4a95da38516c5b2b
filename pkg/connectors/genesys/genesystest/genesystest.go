// Package genesystest is a wire-level fake of Genesys Cloud (login host and API host on one
// server) for tests and the local stack.
//
// It speaks the documented contract: POST /oauth/token with HTTP Basic client credentials and
// grant_type=client_credentials, bearer tokens that expire, 401 {"message","code":"bad.credentials",
// "status"} for a missing or expired token, 429 with Retry-After and inin-ratelimit-* headers,
// and the JSON bodies of the API areas it implements (one file per area). Failures can be
// injected per path, and every API request is recorded for inspection.
package genesystest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

// Server is the fake.
type Server struct {
	srv *httptest.Server
	mux *http.ServeMux

	ClientID, ClientSecret string
	TokenTTL               time.Duration // default 24 h, the Genesys default

	tokens   fakehttp.Tokens
	failures *fakehttp.Failures[Failure]

	mu       sync.Mutex
	received []Received
	queues   map[string]Queue
	convs    map[string]*Conversation
}

// Failure is an injected answer for requests whose path starts with a prefix.
type Failure struct {
	Status     int
	RetryAfter int           // seconds; sent on 429 and 503
	Delay      time.Duration // wait before answering (or hang)
	Times      int           // how many requests it applies to; 0 = forever
}

// Received is an API request the fake got (the token is not kept).
type Received struct {
	Method string
	Path   string
	Body   json.RawMessage
}

// New starts the fake on 127.0.0.1 with the given OAuth client.
func New(clientID, clientSecret string) *Server {
	s := &Server{
		ClientID: clientID, ClientSecret: clientSecret,
		mux:      http.NewServeMux(),
		failures: fakehttp.NewFailures(func(f *Failure) *int { return &f.Times }),
		queues:   map[string]Queue{},
	}
	s.mux.HandleFunc("POST /oauth/token", s.token)
	s.registerQueues()
	s.registerConversations()
	s.registerTokens()
	s.srv = fakehttp.Start("genesystest", http.HandlerFunc(s.serve))
	return s
}

// URL is both GENESYS_API_BASE_URL and GENESYS_LOGIN_BASE_URL.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// TokensIssued counts tokens handed out.
func (s *Server) TokensIssued() int { return s.tokens.Issued() }

// RevokeTokens invalidates every issued token, as when a client secret is rotated.
func (s *Server) RevokeTokens() { s.tokens.Revoke() }

// Fail injects failures for API paths starting with prefix (queued in order; the most specific
// prefix wins).
func (s *Server) Fail(prefix string, f ...Failure) { s.failures.Add(prefix, f...) }

// ClearFailures removes every injected failure.
func (s *Server) ClearFailures() { s.failures.Clear() }

// Received returns the API requests received so far, optionally only those under a path prefix.
func (s *Server) Received(prefix string) []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Received
	for _, r := range s.received {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		s.mu.Lock()
		s.received = append(s.received, Received{Method: r.Method, Path: r.URL.Path, Body: json.RawMessage(body)})
		s.mu.Unlock()
		if !s.authorised(r) {
			WriteError(w, http.StatusUnauthorized, "bad.credentials", "Invalid login credentials.")
			return
		}
		if f, ok := s.failures.Take(r.URL.Path); ok {
			if !fakehttp.Wait(r, f.Delay) {
				return
			}
			if f.Status != 0 {
				if f.RetryAfter > 0 {
					w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
					w.Header().Set("inin-ratelimit-count", "300")
					w.Header().Set("inin-ratelimit-allowed", "300")
					w.Header().Set("inin-ratelimit-reset", strconv.Itoa(f.RetryAfter))
				}
				WriteError(w, f.Status, codeFor(f.Status), http.StatusText(f.Status))
				return
			}
		}
	}
	s.mux.ServeHTTP(w, r)
}

func codeFor(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "too.many.requests"
	case http.StatusNotFound:
		return "not.found"
	case http.StatusForbidden:
		return "missing.permissions"
	case http.StatusBadRequest:
		return "bad.request"
	default:
		return "internal.server.error"
	}
}

func (s *Server) authorised(r *http.Request) bool { return s.tokens.Bearer(r, time.Now()) }

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "description": "grant_type must be client_credentials"})
		return
	}
	if !ok || id != s.ClientID || secret != s.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "description": "client not found or secret does not match"})
		return
	}
	ttl := s.TokenTTL
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	tok := s.tokens.Issue("gc-token-", ttl, time.Now())
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(ttl.Seconds())})
}

// WriteError writes a Genesys error body.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"message": message, "code": code, "status": status, "contextId": "fake-context", "details": []any{}, "errors": []any{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
