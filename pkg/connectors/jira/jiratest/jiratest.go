// Package jiratest is a wire-level fake of Jira Service Management Cloud and the parts of the
// Jira Cloud platform API cxbridge uses, for tests and the local stack.
//
// It speaks the documented contract (reference/api-contracts.md section 1):
//
//   - Auth: HTTP Basic (email + API token) on the site URL and on the gateway; OAuth 2.0 client
//     credentials at POST /oauth/token (JSON or form body, audience api.atlassian.com, tokens
//     that expire) whose bearer tokens are accepted only under the gateway prefix
//     /ex/jira/{cloudId}, as with real service accounts. A missing, wrong or expired credential
//     is a 401 with a Jira-shaped body.
//   - JSM: create/get request (requestFieldValues in, an array out), comments (string bodies,
//     public/internal), customer transitions, customers (experimental search needing
//     X-ExperimentalApi: opt-in, create with strictConflictStatusCode, add to desk), the two-step
//     attachment upload (multipart "file" + X-Atlassian-Token: no-check), request type fields,
//     GET servicedesk/{id}.
//   - Permissions: GET /rest/api/3/mypermissions, and project permissions that can be revoked
//     (RevokePermission) and are then refused with 403 (permissions.go).
//   - Platform: POST /rest/api/3/search/jql with a small JQL (labels, project, key, status,
//     statusCategory, reporter, text ~, cf[N], field names, created/updated compared with
//     periods such as -24h or dates, IS [NOT] EMPTY, AND, ORDER BY), PUT /rest/api/3/issue/{key}
//     labels, user search, myself; the removed /rest/api/3/search answers 410.
//   - Errors in the right shape per area: JSM {"errorMessage","i18nErrorMessage"}, platform
//     {"errorMessages","errors"}.
//   - Rate limiting (429 + Retry-After, X-RateLimit-*, an ISO X-RateLimit-Reset,
//     RateLimit-Reason), failure injection per path prefix (before the effect, or after it: the
//     request is applied and its answer lost, see Failure), and a record of every API request.
//   - Webhooks like Jira Cloud admin webhooks: comment_created and jira:issue_updated (and
//     jira:issue_created when asked for) with X-Hub-Signature, X-Atlassian-Webhook-Identifier,
//     X-Atlassian-Webhook-Flow and, on redelivery, X-Atlassian-Webhook-Retry. Changes made
//     through the API (comments, transitions, labels) fire them too, asynchronously, as Jira
//     does; the agent simulation (AgentComment, Transition) delivers synchronously.
//
// Where the real behaviour is not documented the fake picks something plausible and strict; the
// package's tests and the connector's report list those choices.
package jiratest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

// Accounts that always exist.
const (
	APIUserAccountID = "5b10ac8d82e05b22cc7d4ef5" // the integration user (Basic or service account)
	AgentAccountID   = "5b10a2844c20165700ede21f" // a default agent for AgentComment
)

// Config sets up a fake. The zero value serves the default desk and accepts no credentials.
type Config struct {
	Email, APIToken        string        // Basic credentials; empty disables Basic
	ClientID, ClientSecret string        // OAuth client credentials; empty disables /oauth/token
	TokenTTL               time.Duration // default 1 h, Atlassian's service-account token life
	CloudID                string        // default 2c1b8c0f-5b1e-4c8f-9a55-000000000001

	ServiceDesks []ServiceDesk // nil: DefaultServiceDesk

	// SearchLag hides issues younger than this from JQL search unless they are listed in
	// reconcileIssues, like the eventually consistent /search/jql.
	SearchLag time.Duration
	// HideEmails leaves emailAddress out of user answers, like a site with strict privacy.
	HideEmails bool

	WebhookTimeout time.Duration // default 10 s
}

// Server is the fake.
type Server struct {
	srv   *httptest.Server
	mux   *http.ServeMux
	cfg   Config
	hooks *http.Client

	tokens   fakehttp.Tokens
	failures *fakehttp.Failures[Failure]
	limit    fakehttp.Window

	mu           sync.Mutex
	email        string
	apiToken     string
	received     []Received
	desks        map[string]*desk
	deskOrder    []string
	accounts     map[string]*Account
	accountOrder []string
	nextAccount  int
	requests     map[string]*Request // by key
	byID         map[string]string   // issue id -> key
	order        []string
	seq          map[string]int // per project key
	nextIssue    int
	nextComment  int
	nextAttach   int
	nextTemp     int
	temps        map[string]*tempFile
	statusIDs    map[string]string
	webhooks     []*webhook
	deliveries   map[string]*Delivery
	delivOrder   []string
	nextHook     int
	commentADF   bool
	inflight     sync.WaitGroup
	revoked      map[string]bool // "<project>#<permission>" taken away (permissions.go)
}

// Failure is an injected answer for API requests whose path (after the gateway prefix) starts
// with a prefix.
//
// By default it strikes before the request takes effect: nothing is stored. With AfterEffect the
// request is processed first (a request created, a comment added) and only its answer is lost:
// replaced by Status, held back for Delay (a hang, ending when the client gives up), or the
// connection Reset; with neither Status nor Reset the real answer arrives after Delay.
type Failure struct {
	Status     int           // 0: no status, only the Delay
	RetryAfter int           // seconds; sent as Retry-After (and X-RateLimit-Reset on 429)
	Reason     string        // RateLimit-Reason on 429; default jira-burst-based
	Delay      time.Duration // wait before answering (a hang is a long delay); ends if the client goes away
	Times      int           // how many requests it applies to; 0 = forever
	Body       string        // raw body; default a Jira-shaped error for the path's area
	Header     http.Header   // extra response headers
	// AfterEffect applies the request before the failure: the answer is lost, not the request.
	AfterEffect bool
	// Reset closes the connection without an answer (after Delay) instead of answering.
	Reset bool
	// Method, when set, limits the failure to requests with this method (POST: the write, not
	// the read before it).
	Method string
}

// Received is an API request the fake got. Credentials are not kept: Authorization and Cookie
// headers are dropped, and token requests (Path /oauth/token) are recorded with client_secret
// "***" and the request's content type in content_type.
type Received struct {
	At      time.Time
	Method  string
	Path    string // without the gateway prefix
	Query   url.Values
	Header  http.Header // without Authorization and Cookie
	Body    json.RawMessage
	Raw     []byte // the body when it is not JSON (multipart uploads)
	Gateway bool   // came through /ex/jira/{cloudId}
}

// New starts a fake on 127.0.0.1.
func New(cfg Config) *Server {
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.CloudID == "" {
		cfg.CloudID = "2c1b8c0f-5b1e-4c8f-9a55-000000000001"
	}
	if cfg.WebhookTimeout == 0 {
		cfg.WebhookTimeout = 10 * time.Second
	}
	s := &Server{
		cfg:         cfg,
		mux:         http.NewServeMux(),
		email:       cfg.Email,
		apiToken:    cfg.APIToken,
		failures:    fakehttp.NewFailures(func(f *Failure) *int { return &f.Times }),
		desks:       map[string]*desk{},
		accounts:    map[string]*Account{},
		requests:    map[string]*Request{},
		byID:        map[string]string{},
		seq:         map[string]int{},
		nextIssue:   10000,
		nextComment: 10100,
		nextAttach:  10200,
		temps:       map[string]*tempFile{},
		statusIDs:   map[string]string{},
		deliveries:  map[string]*Delivery{},
		hooks: &http.Client{
			Timeout:       cfg.WebhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	s.accounts[APIUserAccountID] = &Account{AccountID: APIUserAccountID, Email: cfg.Email, DisplayName: "cxbridge integration", Type: "atlassian"}
	s.accounts[AgentAccountID] = &Account{AccountID: AgentAccountID, Email: "agent@example.com", DisplayName: "Alex Agent", Type: "atlassian"}
	s.accountOrder = append(s.accountOrder, APIUserAccountID, AgentAccountID)
	desks := cfg.ServiceDesks
	if desks == nil {
		desks = []ServiceDesk{DefaultServiceDesk()}
	}
	for _, d := range desks {
		s.addDeskLocked(d)
	}
	for _, st := range []Status{StatusWaitingForSupport, StatusInProgress, StatusResolved} {
		s.statusIDLocked(st.Name)
	}
	s.routes()
	s.srv = fakehttp.Start("jiratest", http.HandlerFunc(s.serve))
	return s
}

// URL is the site URL (https://{site}.atlassian.net): JIRA_BASE_URL for Basic auth.
func (s *Server) URL() string { return s.srv.URL }

// GatewayURL is the API gateway base (https://api.atlassian.com/ex/jira/{cloudId}): JIRA_BASE_URL
// for service-account OAuth.
func (s *Server) GatewayURL() string { return s.srv.URL + "/ex/jira/" + s.cfg.CloudID }

// TokenURL is the OAuth token endpoint (the secret's tokenUrl).
func (s *Server) TokenURL() string { return s.srv.URL + "/oauth/token" }

// CloudID is the site's cloud id.
func (s *Server) CloudID() string { return s.cfg.CloudID }

// Close waits for webhook deliveries in flight, then stops the server.
func (s *Server) Close() {
	s.inflight.Wait()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// SetBasicCredentials changes the accepted email and API token (a rotated token).
func (s *Server) SetBasicCredentials(email, apiToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.email, s.apiToken = email, apiToken
}

// TokensIssued counts OAuth tokens handed out.
func (s *Server) TokensIssued() int { return s.tokens.Issued() }

// ExpireTokens makes every issued token invalid, as when it expires or the secret is rotated.
func (s *Server) ExpireTokens() { s.tokens.Revoke() }

// Fail injects failures for API paths starting with prefix (queued in order; the most specific
// prefix wins).
func (s *Server) Fail(prefix string, f ...Failure) { s.failures.Add(prefix, f...) }

// ClearFailures removes every injected failure.
func (s *Server) ClearFailures() { s.failures.Clear() }

// RateLimit allows n API requests per window; more get 429. n = 0 turns limiting off.
func (s *Server) RateLimit(n int, window time.Duration) { s.limit.Set(n, window, time.Now()) }

// Received returns the API requests received so far whose path starts with prefix.
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

// ResetReceived forgets the recorded requests.
func (s *Server) ResetReceived() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received = nil
}

// ---------------------------------------------------------------------------------------------
// serving

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth/token" {
		s.token(w, r)
		return
	}
	path, gateway := r.URL.Path, false
	if rest, ok := strings.CutPrefix(path, "/ex/jira/"); ok {
		id, sub, _ := strings.Cut(rest, "/")
		if id != s.cfg.CloudID {
			writePlatform(w, http.StatusNotFound, []string{"No site with cloud id " + id + " is accessible."}, nil)
			return
		}
		path, gateway = "/"+sub, true
	}
	if !strings.HasPrefix(path, "/rest/") {
		writePlatform(w, http.StatusNotFound, []string{"Not found: " + path}, nil)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	rec := Received{At: time.Now(), Method: r.Method, Path: path, Query: r.URL.Query(), Header: r.Header.Clone(), Gateway: gateway}
	rec.Header.Del("Authorization")
	rec.Header.Del("Cookie")
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" && json.Valid(body) {
		rec.Body = json.RawMessage(body)
	} else if len(body) > 0 {
		rec.Raw = body
	}
	s.mu.Lock()
	s.received = append(s.received, rec)
	s.mu.Unlock()

	if !s.authorised(r, gateway) {
		writeAreaError(w, path, http.StatusUnauthorized, "Client must be authenticated to access this resource.")
		return
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = path, ""
	r2.URL = &u
	r2.Body = io.NopCloser(bytes.NewReader(body))
	process := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.rateLimited(w, path) || s.refused(w, r, path, body) {
			return
		}
		s.mux.ServeHTTP(w, r)
	})
	f, ok := s.failures.TakeFor(path, func(f *Failure) bool { return f.Method == "" || f.Method == r.Method })
	switch {
	case !ok:
		process(w, r2)
	case f.AfterEffect:
		var fail func(http.ResponseWriter)
		if f.Status != 0 {
			fail = func(w http.ResponseWriter) { s.writeFailure(w, path, f) }
		}
		fakehttp.Lose(w, r2, process, f.Delay, f.Reset, fail)
	case !fakehttp.Wait(r, f.Delay):
	case f.Reset:
		fakehttp.Reset(w)
	case f.Status != 0:
		s.writeFailure(w, path, f)
	default:
		process(w, r2)
	}
}

func (s *Server) writeFailure(w http.ResponseWriter, path string, f Failure) {
	for k, vs := range f.Header {
		w.Header()[http.CanonicalHeaderKey(k)] = vs
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	if f.Status == http.StatusTooManyRequests {
		reason := f.Reason
		if reason == "" {
			reason = "jira-burst-based"
		}
		w.Header().Set("RateLimit-Reason", reason)
		if w.Header().Get("X-RateLimit-Reset") == "" && f.RetryAfter > 0 {
			w.Header().Set("X-RateLimit-Reset", isoMinute(time.Now().Add(time.Duration(f.RetryAfter)*time.Second)))
		}
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, f.Body)
		return
	}
	writeAreaError(w, path, f.Status, http.StatusText(f.Status))
}

// isoMinute formats a time the way Jira's X-RateLimit-Reset does: yyyy-MM-ddTHH:mmZ, rounded up
// to the minute so it is never earlier than the real reset.
func isoMinute(t time.Time) string {
	t = t.UTC()
	if r := t.Truncate(time.Minute); r.Before(t) {
		t = r.Add(time.Minute)
	}
	return t.Format("2006-01-02T15:04Z")
}

func (s *Server) rateLimited(w http.ResponseWriter, path string) bool {
	now := time.Now()
	allowed, count, limit, reset := s.limit.Hit(now)
	if limit == 0 {
		return false
	}
	remaining := max(limit-count, 0)
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	if remaining*5 < limit {
		w.Header().Set("X-RateLimit-NearLimit", "true")
	}
	if allowed {
		return false
	}
	wait := int((reset.Sub(now) + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(wait, 1)))
	w.Header().Set("X-RateLimit-Reset", isoMinute(reset))
	w.Header().Set("RateLimit-Reason", "jira-burst-based")
	writeAreaError(w, path, http.StatusTooManyRequests, "Rate limit exceeded.")
	return true
}

// authorised accepts Basic anywhere and bearer tokens only through the gateway.
func (s *Server) authorised(r *http.Request, gateway bool) bool {
	authz := r.Header.Get("Authorization")
	s.mu.Lock()
	defer s.mu.Unlock()
	if email, tok, ok := r.BasicAuth(); ok {
		return s.email != "" && s.apiToken != "" && email == s.email && tok == s.apiToken
	}
	if strings.HasPrefix(authz, "Bearer ") && gateway {
		return s.tokens.Bearer(r, time.Now())
	}
	return false
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeOAuth(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	var in struct {
		GrantType    string `json:"grant_type"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Audience     string `json:"audience"`
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
			writeOAuth(w, http.StatusBadRequest, "invalid_request", "body is not JSON")
			return
		}
	default:
		if err := r.ParseForm(); err != nil {
			writeOAuth(w, http.StatusBadRequest, "invalid_request", "body is not a form")
			return
		}
		in.GrantType, in.ClientID, in.ClientSecret, in.Audience = r.PostForm.Get("grant_type"), r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), r.PostForm.Get("audience")
	}
	rec := Received{At: time.Now(), Method: r.Method, Path: "/oauth/token", Header: r.Header.Clone()}
	rec.Header.Del("Authorization")
	rec.Body, _ = json.Marshal(map[string]string{"grant_type": in.GrantType, "client_id": in.ClientID, "client_secret": "***", "audience": in.Audience, "content_type": ct})
	s.mu.Lock()
	s.received = append(s.received, rec)
	s.mu.Unlock()
	switch {
	case in.GrantType != "client_credentials":
		writeOAuth(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	case in.Audience != "" && in.Audience != "api.atlassian.com":
		writeOAuth(w, http.StatusForbidden, "access_denied", "unknown audience "+in.Audience)
		return
	case s.cfg.ClientID == "" || in.ClientID != s.cfg.ClientID || in.ClientSecret != s.cfg.ClientSecret:
		writeOAuth(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	}
	tok := s.tokens.Issue("jira-sa-token-", s.cfg.TokenTTL, time.Now())
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.cfg.TokenTTL.Seconds()), "scope": "read:jira-work write:jira-work read:servicedesk-request write:servicedesk-request manage:servicedesk-customer"})
}

// ---------------------------------------------------------------------------------------------
// bodies

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSM writes JSM's error body.
func writeJSM(w http.ResponseWriter, status int, msg, i18nKey string) {
	writeJSON(w, status, map[string]any{"errorMessage": msg, "i18nErrorMessage": map[string]any{"i18nKey": i18nKey, "parameters": []string{}}})
}

// writePlatform writes the platform's error body.
func writePlatform(w http.ResponseWriter, status int, msgs []string, fields map[string]string) {
	if msgs == nil {
		msgs = []string{}
	}
	if fields == nil {
		fields = map[string]string{}
	}
	writeJSON(w, status, map[string]any{"errorMessages": msgs, "errors": fields})
}

func writeAreaError(w http.ResponseWriter, path string, status int, msg string) {
	if strings.HasPrefix(path, "/rest/servicedeskapi/") {
		writeJSM(w, status, msg, fmt.Sprintf("sd.error.http.%d", status))
		return
	}
	writePlatform(w, status, []string{msg}, nil)
}

func writeOAuth(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// ---------------------------------------------------------------------------------------------
// small helpers

func newTempID(n int) string { return fmt.Sprintf("temp%018d", 910441317820424274+int64(n)) }

func encodeToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(offset)))
}

func decodeToken(t string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "o:"))
	return n, err == nil && n >= 0
}

func jiraTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000-0700") }

func jsmDate(t time.Time) map[string]any {
	return map[string]any{
		"iso8601":     t.UTC().Format("2006-01-02T15:04:05-0700"),
		"jira":        jiraTime(t),
		"friendly":    t.UTC().Format("02/Jan/06 3:04 PM"),
		"epochMillis": t.UnixMilli(),
	}
}
