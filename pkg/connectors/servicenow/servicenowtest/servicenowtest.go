// Package servicenowtest is a wire-level fake of a ServiceNow instance's Table API, for tests
// and the local stack. It listens on 127.0.0.1 and speaks the documented contract
// (reference/api-contracts.md section 2, ServiceNow docs c_TableAPI.md):
//
//   - Auth: HTTP Basic, and OAuth at POST /oauth_token.do (form-encoded; password grant, and the
//     client_credentials grant only when Config.ClientCredentials is set, as an instance needs
//     glide.oauth.inbound.client.credential.grant_type.enabled=true). Tokens expire (expires_in
//     1799 by default). A missing or bad credential is 401 with the ServiceNow error body.
//   - Tables in memory (sys_user and incident predefined; DefineTable adds others) with
//     generated 32-hex sys_ids, INC0010001-style numbers, UTC "yyyy-MM-dd HH:mm:ss" system
//     times, choice labels, priority computed from impact x urgency, reference fields as
//     {"link","value"} unless sysparm_exclude_reference_link=true, sysparm_display_value
//     false/true/all, sysparm_fields (with dot-walks), sysparm_limit/offset, X-Total-Count.
//   - GET /api/now/table/{t} (v1) answers a query with no rows with 404 "No Record found";
//     /api/now/v2/table/{t} answers 200 {"result":[]}.
//   - An encoded-query evaluator (= != LIKE NOT LIKE STARTSWITH ENDSWITH IN NOT IN ISEMPTY
//     ISNOTEMPTY < <= > >=, ^, ^OR, ^NQ, ORDERBY, ORDERBYDESC, dot-walks through reference
//     fields) that, like ServiceNow, silently ignores terms with an unknown field or operator,
//     so a bad term widens the match, unless strict mode (glide.invalid_query.returns_no_rows)
//     is on, when an invalid query returns no rows.
//   - Writes: POST 201, PATCH/PUT 200, DELETE 204; unknown and read-only fields (sys_*,
//     priority, number) ignored; journal fields (work_notes, comments) appended to a journal
//     that Journal returns, while the Table API shows them as "". X-no-response-body honoured.
//   - Rate limiting (RateLimit): 429 with Retry-After, X-RateLimit-Limit, X-RateLimit-Reset
//     (UNIX time), X-RateLimit-Rule and {"error":{"message":"Rate limit exceeded",...}}.
//   - Per-request latency (SetLatency) and failure injection per path prefix (Fail), before the
//     effect or after it (the write is applied and its answer lost, see Failure).
//   - sys_journal_field: every journal append is also a row there (name, element, element_id,
//     value), readable through the Table API like any table, the consistent way to find out
//     whether a work note landed.
//   - Inspection: Received, Calls, Record(s), Journal, TokensIssued.
package servicenowtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

// Config sets up a fake instance.
type Config struct {
	// Username and Password are accepted with HTTP Basic and with the OAuth password grant.
	Username, Password string
	// ClientID and ClientSecret enable POST /oauth_token.do.
	ClientID, ClientSecret string
	// ClientCredentials enables grant_type=client_credentials; off by default, as on an instance.
	ClientCredentials bool
	// AppUser is the user a client_credentials token acts as (the OAuth Application User);
	// default "oauth.app.user".
	AppUser string
	// TokenTTL is the access token lifespan; default 1800 s (expires_in 1799 as in the docs).
	TokenTTL time.Duration
	// StrictQueries is glide.invalid_query.returns_no_rows=true.
	StrictQueries bool
	// Latency delays every request (token requests included).
	Latency time.Duration
	// DisplayZone is the API user's time zone for date-time display values; default UTC.
	DisplayZone *time.Location
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Failure is an injected answer for requests whose path starts with a prefix.
//
// By default it strikes before the request takes effect. With AfterEffect the request is
// processed first (an incident inserted, a work note appended) and only its answer is lost:
// replaced by Status, held back for Delay (a hang, ending when the client gives up), or the
// connection Reset; with neither Status nor Reset the real answer arrives after Delay.
type Failure struct {
	Status     int           // 0 with a Delay: only delay, then answer normally
	RetryAfter int           // seconds; sent with Status (429 adds the X-RateLimit-* headers)
	Delay      time.Duration // wait first (a hang is a long delay); ends when the client goes away
	Times      int           // how many requests it applies to; 0 = forever
	Message    string        // error.message; default the status text
	// AfterEffect applies the request before the failure: the answer is lost, not the request.
	AfterEffect bool
	// Reset closes the connection without an answer (after Delay) instead of answering.
	Reset bool
	// Method, when set, limits the failure to requests with this method (POST: the write, not
	// the read before it).
	Method string
}

// Received is a Table API request the fake got (credentials are not kept).
type Received struct {
	At     time.Time
	Method string
	Path   string
	Query  url.Values // decoded query parameters (sysparm_query etc.)
	Body   json.RawMessage
	Auth   string // "basic", "bearer" or ""
	Header http.Header
}

// JournalEntry is one append to a journal field (what sys_journal_field would hold).
type JournalEntry struct {
	Table     string
	ElementID string // the record's sys_id
	Element   string // work_notes or comments
	Value     string
	CreatedBy string
	CreatedOn time.Time
}

// RateLimitRuleID is the sys_id the fake reports in X-RateLimit-Rule.
const RateLimitRuleID = "5e2a2e5f1b3a0010c0a8f37e6e4bcb9d"

// Server is the fake.
type Server struct {
	srv *httptest.Server
	cfg Config

	mu       sync.Mutex
	tables   map[string]*table
	journal  []JournalEntry
	tokens   map[string]tokenInfo
	issued   int
	received []Received
	byQuery  []queryFailure // FailQuery
	strict   bool
	latency  time.Duration

	failures *fakehttp.Failures[Failure]
	limit    fakehttp.Window
}

type tokenInfo struct {
	expires time.Time
	user    string
}

// New starts a fake instance on 127.0.0.1. Close it when done.
func New(cfg Config) *Server {
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 1800 * time.Second
	}
	if cfg.AppUser == "" {
		cfg.AppUser = "oauth.app.user"
	}
	if cfg.DisplayZone == nil {
		cfg.DisplayZone = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:      cfg,
		tables:   map[string]*table{},
		tokens:   map[string]tokenInfo{},
		failures: fakehttp.NewFailures(func(f *Failure) *int { return &f.Times }),
		strict:   cfg.StrictQueries,
		latency:  cfg.Latency,
	}
	s.DefineTable("sys_user", UserSchema())
	s.DefineTable("incident", IncidentSchema())
	s.DefineTable(JournalTable, JournalSchema())
	s.DefineTable("core_company", NamedSchema())
	s.DefineTable("cmn_location", NamedSchema("city", "country"))
	s.DefineTable("cmn_department", NamedSchema())
	s.srv = fakehttp.Start("servicenowtest", http.HandlerFunc(s.serve))
	return s
}

// URL is the instance base URL (SERVICENOW_BASE_URL).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server, ending hung answers.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// SetLatency delays every later request by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetStrictQueries switches glide.invalid_query.returns_no_rows.
func (s *Server) SetStrictQueries(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.strict = on
}

// RateLimit allows n API requests per window; later ones get 429 until the window ends.
// n = 0 removes the limit.
func (s *Server) RateLimit(n int, window time.Duration) { s.limit.Set(n, window, s.cfg.Now()) }

// RateLimited counts the requests RateLimit refused with 429.
func (s *Server) RateLimited() int { return s.limit.Refused() }

// Fail injects failures for request paths starting with prefix (queued in order; the token
// endpoint is /oauth_token.do).
func (s *Server) Fail(prefix string, f ...Failure) { s.failures.Add(prefix, f...) }

// ClearFailures removes every injected failure.
func (s *Server) ClearFailures() {
	s.failures.Clear()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byQuery = nil
}

// TokensIssued counts access tokens handed out.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// RevokeTokens invalidates every issued token (the next call with one gets 401).
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]tokenInfo{}
}

// Received returns the Table API requests received so far whose path starts with prefix.
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

// Calls counts Table API requests whose path starts with prefix.
func (s *Server) Calls(prefix string) int { return len(s.Received(prefix)) }

// Journal returns the journal entries of a record, oldest first.
func (s *Server) Journal(table, sysID string) []JournalEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []JournalEntry
	for _, j := range s.journal {
		if j.Table == table && j.ElementID == sysID {
			out = append(out, j)
		}
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 && !fakehttp.Wait(r, latency) {
		return
	}
	if r.URL.Path == "/oauth_token.do" {
		if s.injected(w, r, func(w http.ResponseWriter, r *http.Request) { s.token(w, r, body) }) {
			return
		}
		s.token(w, r, body)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		WriteError(w, http.StatusBadRequest, "Requested URI does not represent any resource", "")
		return
	}
	user, scheme, ok := s.authenticate(r)
	rec := Received{At: s.cfg.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Auth: scheme, Header: r.Header.Clone()}
	rec.Header.Del("Authorization")
	if len(bytes.TrimSpace(body)) > 0 {
		rec.Body = json.RawMessage(body)
	}
	s.mu.Lock()
	s.received = append(s.received, rec)
	s.mu.Unlock()
	if !ok {
		WriteError(w, http.StatusUnauthorized, "User is not authenticated", "Required to provide Auth information")
		return
	}
	if s.rateLimited(w) {
		return
	}
	process := func(w http.ResponseWriter, r *http.Request) { s.table(w, r, body, user) }
	if s.injected(w, r, process) || s.injectedForQuery(w, r, process) {
		return
	}
	process(w, r)
}

// rateLimited applies the per-window limit; it adds the rule headers to every counted answer.
func (s *Server) rateLimited(w http.ResponseWriter) bool {
	now := s.cfg.Now()
	allowed, _, limit, reset := s.limit.Hit(now)
	if limit == 0 {
		return false
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	h.Set("X-RateLimit-Rule", RateLimitRuleID)
	if allowed {
		return false
	}
	wait := int(reset.Sub(now).Seconds())
	if reset.Sub(now) > time.Duration(wait)*time.Second {
		wait++
	}
	if wait < 1 {
		wait = 1
	}
	h.Set("Retry-After", strconv.Itoa(wait))
	WriteError(w, http.StatusTooManyRequests, "Rate limit exceeded", fmt.Sprintf("Rate limit of %d requests per hour for Table API exceeded", limit))
	return true
}

func (s *Server) injected(w http.ResponseWriter, r *http.Request, process http.HandlerFunc) bool {
	f, ok := s.failures.TakeFor(r.URL.Path, func(f *Failure) bool { return f.Method == "" || f.Method == r.Method })
	if !ok {
		return false
	}
	return s.answerFailure(w, r, f, process)
}

// answerFailure applies an injected failure; false means "answer normally". process serves the
// request, for failures that strike after its effect.
func (s *Server) answerFailure(w http.ResponseWriter, r *http.Request, f Failure, process http.HandlerFunc) bool {
	if f.AfterEffect {
		var fail func(http.ResponseWriter)
		if f.Status != 0 {
			fail = func(w http.ResponseWriter) { s.writeFailure(w, f) }
		}
		fakehttp.Lose(w, r, process, f.Delay, f.Reset, fail)
		return true
	}
	if f.Delay > 0 && !fakehttp.Wait(r, f.Delay) {
		return true
	}
	if f.Reset {
		fakehttp.Reset(w)
		return true
	}
	if f.Status == 0 {
		return false
	}
	s.writeFailure(w, f)
	return true
}

// writeFailure writes an injected status with ServiceNow's error body and rate-limit headers.
func (s *Server) writeFailure(w http.ResponseWriter, f Failure) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		if f.Status == http.StatusTooManyRequests {
			s.mu.Lock()
			reset := s.cfg.Now().Add(time.Duration(f.RetryAfter) * time.Second)
			s.mu.Unlock()
			w.Header().Set("X-RateLimit-Limit", "1000")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
			w.Header().Set("X-RateLimit-Rule", RateLimitRuleID)
		}
	}
	msg := f.Message
	if msg == "" {
		msg = http.StatusText(f.Status)
		if f.Status == http.StatusTooManyRequests {
			msg = "Rate limit exceeded"
		}
	}
	WriteError(w, f.Status, msg, "injected by servicenowtest")
}

func (s *Server) authenticate(r *http.Request) (user, scheme string, ok bool) {
	authz := r.Header.Get("Authorization")
	if tok, found := strings.CutPrefix(authz, "Bearer "); found {
		s.mu.Lock()
		defer s.mu.Unlock()
		ti, known := s.tokens[tok]
		return ti.user, "bearer", known && s.cfg.Now().Before(ti.expires)
	}
	if u, p, found := r.BasicAuth(); found {
		return u, "basic", s.cfg.Username != "" && u == s.cfg.Username && p == s.cfg.Password
	}
	return "", "", false
}

// token serves POST /oauth_token.do.
func (s *Server) token(w http.ResponseWriter, r *http.Request, body []byte) {
	oauthError := func(status int, code, desc string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost || s.cfg.ClientID == "" {
		oauthError(http.StatusBadRequest, "invalid_request", "OAuth is not configured")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", "body is not form-encoded")
		return
	}
	if form.Get("client_id") != s.cfg.ClientID || form.Get("client_secret") != s.cfg.ClientSecret {
		oauthError(http.StatusUnauthorized, "server_error", "access_denied")
		return
	}
	var user string
	switch form.Get("grant_type") {
	case "client_credentials":
		if !s.cfg.ClientCredentials {
			oauthError(http.StatusUnauthorized, "server_error", "access_denied")
			return
		}
		user = s.cfg.AppUser
	case "password":
		if s.cfg.Username == "" || form.Get("username") != s.cfg.Username || form.Get("password") != s.cfg.Password {
			oauthError(http.StatusUnauthorized, "server_error", "access_denied")
			return
		}
		user = s.cfg.Username
	default:
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "unsupported grant type")
		return
	}
	s.mu.Lock()
	s.issued++
	tok := fmt.Sprintf("sn-token-%d-%s", s.issued, randomHex(8))
	s.tokens[tok] = tokenInfo{expires: s.cfg.Now().Add(s.cfg.TokenTTL), user: user}
	s.mu.Unlock()
	resp := map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.cfg.TokenTTL.Seconds()) - 1, "scope": "useraccount"}
	if form.Get("grant_type") == "password" {
		resp["refresh_token"] = "sn-refresh-" + randomHex(16)
	}
	writeJSON(w, http.StatusOK, resp)
}

// WriteError writes a ServiceNow error body. An empty detail is sent as null.
func WriteError(w http.ResponseWriter, status int, message, detail string) {
	var d any
	if detail != "" {
		d = detail
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": message, "detail": d}, "status": "failure"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
