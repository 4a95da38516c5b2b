// Package telemetrytest is a wire-level fake of a customer's telemetry endpoint, for tests and
// the local stack. It speaks the contract documented in package telemetry: POST / with a JSON
// body, API-key or OAuth bearer authentication, JSON answers with Cache-Control: no-store, 401
// for bad credentials, 429 with Retry-After and X-RateLimit-* headers when a rate limit is set.
//
// Each customer id can be given a script of answers (status, body, delay, headers), consumed in
// order with the last one repeating, so a test can say "503 twice, then severity 3" or "hang".
package telemetrytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

// Answer is one scripted response.
type Answer struct {
	Status  int           // default 200
	Body    string        // raw body; default {"customer_id":..,"severity_level":Severity,...}
	Reading *Reading      // used when Body is empty and Status is 2xx
	Delay   time.Duration // wait before answering (a hang is a long delay); ends early if the client goes away
	Header  http.Header
}

// Reading is the default JSON body of a 200.
type Reading struct {
	SeverityLevel      int    `json:"severity_level"`
	EscalationRequired bool   `json:"escalation_required"`
	QueueID            string `json:"queue_id,omitempty"`
}

// Received is a request the fake got (credentials not included).
type Received struct {
	At          time.Time
	CustomerID  string          `json:"customer_id"`
	Timestamp   string          `json:"timestamp"`
	RequestType string          `json:"request_type"`
	ANI         string          `json:"ani"`
	Raw         json.RawMessage `json:"-"`
	Header      http.Header     `json:"-"`
}

// Server is the fake.
type Server struct {
	srv *httptest.Server

	// APIKey, when set, must arrive as "Authorization: Bearer <key>" or in APIKeyHeader.
	APIKey       string
	APIKeyHeader string
	// ClientID/ClientSecret, when set, enable POST /oauth/token (client_secret_basic or form)
	// and accept the tokens it issues. TokenTTL defaults to one hour.
	ClientID, ClientSecret string
	TokenTTL               time.Duration

	tokens fakehttp.Tokens
	limit  fakehttp.Window

	mu       sync.Mutex
	scripts  map[string][]Answer
	received []Received
}

// New starts the fake on 127.0.0.1. Close it when done.
func New() *Server {
	s := &Server{scripts: map[string][]Answer{}}
	s.srv = fakehttp.Start("telemetrytest", http.HandlerFunc(s.serve))
	return s
}

// URL is the telemetry endpoint (TELEMETRY_URL).
func (s *Server) URL() string { return s.srv.URL + "/v1/support-priority" }

// TokenURL is the OAuth token endpoint.
func (s *Server) TokenURL() string { return s.srv.URL + "/oauth/token" }

// Close stops the server, ending any hung answers.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Script sets the answers for a customer id.
func (s *Server) Script(customerID string, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[customerID] = answers
}

// Severity scripts a plain healthy answer.
func (s *Server) Severity(customerID string, level int, escalation bool) {
	s.Script(customerID, Answer{Reading: &Reading{SeverityLevel: level, EscalationRequired: escalation}})
}

// RateLimit allows n requests per window; more get 429 with Retry-After.
func (s *Server) RateLimit(n int, window time.Duration) { s.limit.Set(n, window, time.Now()) }

// Received returns every telemetry request received so far.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// TokensIssued counts OAuth tokens handed out.
func (s *Server) TokensIssued() int { return s.tokens.Issued() }

// RevokeTokens invalidates every issued token (the next call gets 401).
func (s *Server) RevokeTokens() { s.tokens.Revoke() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth/token" {
		s.token(w, r)
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, `{"error":"use POST"}`, nil)
		return
	}
	if !s.authorised(r) {
		writeJSON(w, http.StatusUnauthorized, `{"error":"invalid or missing credentials"}`, http.Header{"WWW-Authenticate": {`Bearer realm="telemetry"`}})
		return
	}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var rec Received
	if err := json.Unmarshal(raw, &rec); err != nil || rec.CustomerID == "" {
		writeJSON(w, http.StatusBadRequest, `{"error":"customer_id is required"}`, nil)
		return
	}
	rec.At, rec.Raw, rec.Header = time.Now(), raw, r.Header.Clone()
	rec.Header.Del("Authorization")
	if s.APIKeyHeader != "" {
		rec.Header.Del(s.APIKeyHeader)
	}

	s.mu.Lock()
	s.received = append(s.received, rec)
	s.mu.Unlock()
	if ok, _, limit, reset := s.limit.Hit(time.Now()); !ok {
		wait := int(time.Until(reset).Seconds()) + 1
		writeJSON(w, http.StatusTooManyRequests, `{"error":"rate limit exceeded"}`, http.Header{
			"Retry-After":           {strconv.Itoa(wait)},
			"X-Ratelimit-Limit":     {strconv.Itoa(limit)},
			"X-Ratelimit-Remaining": {"0"},
			"X-Ratelimit-Reset":     {strconv.FormatInt(reset.Unix(), 10)},
		})
		return
	}
	s.mu.Lock()
	script := s.scripts[rec.CustomerID]
	var a Answer
	switch len(script) {
	case 0:
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, `{"error":"unknown customer"}`, nil)
		return
	case 1:
		a = script[0]
	default:
		a, s.scripts[rec.CustomerID] = script[0], script[1:]
	}
	s.mu.Unlock()

	if !fakehttp.Wait(r, a.Delay) {
		return
	}
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := a.Body
	if body == "" && status < 300 {
		rd := a.Reading
		if rd == nil {
			rd = &Reading{SeverityLevel: 1}
		}
		b, _ := json.Marshal(struct {
			CustomerID string `json:"customer_id"`
			*Reading
		}{rec.CustomerID, rd})
		body = string(b)
	}
	writeJSON(w, status, body, a.Header)
}

func (s *Server) authorised(r *http.Request) bool {
	authz := r.Header.Get("Authorization")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.APIKey != "" {
		if s.APIKeyHeader != "" && r.Header.Get(s.APIKeyHeader) == s.APIKey {
			return true
		}
		if authz == "Bearer "+s.APIKey {
			return true
		}
	}
	if s.tokens.Bearer(r, time.Now()) {
		return true
	}
	return s.APIKey == "" && s.ClientID == ""
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if s.ClientID == "" {
		writeJSON(w, http.StatusNotFound, `{"error":"not_found"}`, nil)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, `{"error":"unsupported_grant_type"}`, nil)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.ClientID || secret != s.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, `{"error":"invalid_client","error_description":"client authentication failed"}`, nil)
		return
	}
	ttl := s.TokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	tok := s.tokens.Issue("tel-token-", ttl, time.Now())
	writeJSON(w, http.StatusOK, fmt.Sprintf(`{"access_token":%q,"token_type":"Bearer","expires_in":%d}`, tok, int(ttl.Seconds())), nil)
}

func writeJSON(w http.ResponseWriter, status int, body string, h http.Header) {
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Type", "application/json")
	// Live readings must never be cached (seed 003, edge case 2).
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// Hang is an answer that never comes within any sane budget.
var Hang = Answer{Delay: time.Hour}
