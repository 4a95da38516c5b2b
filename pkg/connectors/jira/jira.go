// Package jira is a client for the parts of Jira Service Management (JSM) Cloud and the Jira
// Cloud platform REST API that cxbridge uses: customer requests, their comments, transitions and
// attachments, customers, JQL search for crash recovery, labels, and the admin webhooks Jira
// sends back (reference/api-contracts.md section 1).
//
// JIRA_BASE_URL is always the API base. The secret decides how to authenticate:
//
//	{"email":"bot@example.com","apiToken":"..."}
//	    HTTP Basic; base URL https://{site}.atlassian.net
//	{"clientId":"...","clientSecret":"...","tokenUrl":"https://auth.atlassian.com/oauth/token"}
//	    OAuth 2.0 client credentials of a service account (tokenUrl optional); base URL
//	    https://api.atlassian.com/ex/jira/{cloudId}
//
// The secret is read on the first call, never at cold start. Tokens are cached per execution
// environment, refreshed before they expire, fetched once for concurrent callers and fetched
// again once after a 401 (pkg/oauth). Every failure is a *connectors.Error whose Kind says what
// the caller can do; Jira's own error details (field errors, rate-limit headers) are reachable
// with Details.
//
// Nothing here retries a write: CreateRequest is not idempotent, so a caller that may have
// crashed after a create searches for its idempotency label (FindByLabel) before creating again.
package jira

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/oauth"
)

// System is the connectors.Error System of every error from this package.
const System = "jira"

// DefaultTokenURL is Atlassian's token endpoint for service-account client credentials.
const DefaultTokenURL = "https://auth.atlassian.com/oauth/token"

// Audience is sent with the client-credentials grant.
const Audience = "api.atlassian.com"

// Credentials is the JSON shape of JIRA_SECRET_ID. ClientID selects OAuth; otherwise Email and
// APIToken are used for HTTP Basic.
type Credentials struct {
	Email        string `json:"email"`
	APIToken     string `json:"apiToken"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	TokenURL     string `json:"tokenUrl"`
	Scope        string `json:"scope"`
}

// OAuth reports whether the secret holds client credentials.
func (c Credentials) OAuth() bool { return c.ClientID != "" }

// Client calls JSM and the Jira platform API.
type Client struct {
	api  connectors.Client
	auth *auth
}

// New returns a client for baseURL (no trailing slash needed) whose credentials are read lazily
// from secretID through secrets. hc may be nil (connectors.DefaultHTTPClient).
func New(baseURL string, secrets connectors.SecretReader, secretID string, hc *http.Client) *Client {
	a := &auth{secrets: secrets, secretID: secretID, hc: hc}
	return &Client{
		auth: a,
		api: connectors.Client{
			System:     System,
			BaseURL:    strings.TrimRight(baseURL, "/"),
			HTTP:       hc,
			Creds:      a,
			ParseError: ParseError,
		},
	}
}

// TokenFetches reports how many OAuth token exchanges this client made (0 with Basic).
func (c *Client) TokenFetches() int {
	c.auth.mu.Lock()
	s := c.auth.token
	c.auth.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.Fetches()
}

// Do sends any other request with the client's credentials and error handling. Path is relative
// to the base URL.
func (c *Client) Do(ctx context.Context, r connectors.Request, out any) (*connectors.Response, error) {
	return c.do(ctx, r, out)
}

// Myself reads the account the credentials belong to (GET /rest/api/3/myself): a cheap probe for
// health checks that tells 401 (credentials) from 403 (permissions).
func (c *Client) Myself(ctx context.Context) (User, error) {
	var u User
	_, err := c.do(ctx, connectors.Request{Op: "read myself", Method: http.MethodGet, Path: "/rest/api/3/myself"}, &u)
	return u, err
}

// ---------------------------------------------------------------------------------------------
// errors

// APIError carries what Jira said beyond the status code. It is the Err of the *connectors.Error
// when Jira named fields or sent rate-limit headers; read it with Details.
type APIError struct {
	Messages []string          // errorMessages (platform) or errorMessage (JSM)
	Fields   map[string]string // errors{} (platform): field id -> message
	I18nKey  string            // JSM i18nErrorMessage.i18nKey

	RateLimitReason    string    // RateLimit-Reason, e.g. jira-burst-based, jira-per-issue-on-write
	RateLimitReset     time.Time // X-RateLimit-Reset (an ISO-8601 time, not epoch seconds)
	RateLimitLimit     int       // X-RateLimit-Limit, -1 when absent
	RateLimitRemaining int       // X-RateLimit-Remaining, -1 when absent
}

// Field returns the first field Jira complained about (sorted by id), or "".
func (e *APIError) Field() string {
	if len(e.Fields) == 0 {
		return ""
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[0]
}

// Error lists what the connectors.Error message does not already say.
func (e *APIError) Error() string {
	var parts []string
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts = append(parts, "fields "+strings.Join(keys, ","))
	}
	if e.RateLimitReason != "" {
		parts = append(parts, "rate limit "+e.RateLimitReason)
	}
	if !e.RateLimitReset.IsZero() {
		parts = append(parts, "resets "+e.RateLimitReset.UTC().Format(time.RFC3339))
	}
	return strings.Join(parts, "; ")
}

func (e *APIError) worthAttaching() bool {
	return len(e.Fields) > 0 || e.RateLimitReason != "" || !e.RateLimitReset.IsZero()
}

// Details returns Jira's error details from an error returned by this package.
func Details(err error) (*APIError, bool) {
	var e *APIError
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// errorBody covers both Jira error shapes.
type errorBody struct {
	// platform: {"errorMessages":[...],"errors":{"field":"msg"}}
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
	// JSM: {"errorMessage":"...","i18nErrorMessage":{"i18nKey":"...","parameters":[...]}}
	ErrorMessage     string `json:"errorMessage"`
	I18nErrorMessage *struct {
		I18nKey string `json:"i18nKey"`
	} `json:"i18nErrorMessage"`
	// some gateways and the token endpoint: {"message":"..."} / {"error":"...","error_description":"..."}
	Message          string `json:"message"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func parseBody(body []byte) (*APIError, string, string) {
	var b errorBody
	if err := json.Unmarshal(body, &b); err != nil {
		text := strings.TrimSpace(string(body))
		if text == "" || strings.HasPrefix(text, "<") { // empty or an HTML page from a proxy
			return nil, "", ""
		}
		return nil, "", connectors.Truncate(text, 200)
	}
	e := &APIError{Fields: b.Errors, RateLimitLimit: -1, RateLimitRemaining: -1}
	var msgs []string
	for _, m := range b.ErrorMessages {
		if m = strings.TrimSpace(m); m != "" {
			msgs = append(msgs, m)
		}
	}
	if m := strings.TrimSpace(b.ErrorMessage); m != "" {
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		switch {
		case b.Message != "":
			msgs = append(msgs, b.Message)
		case b.ErrorDescription != "":
			msgs = append(msgs, b.ErrorDescription)
		}
	}
	e.Messages = msgs
	code := ""
	if b.I18nErrorMessage != nil {
		e.I18nKey = b.I18nErrorMessage.I18nKey
		code = e.I18nKey
	} else if b.Error != "" {
		code = b.Error
	}
	parts := slices.Clone(msgs)
	if len(b.Errors) > 0 {
		keys := make([]string, 0, len(b.Errors))
		for k := range b.Errors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, k+": "+b.Errors[k])
		}
	}
	return e, code, connectors.Truncate(strings.Join(parts, "; "), 300)
}

// ParseError reads both Jira error shapes for connectors.Client: the platform's
// {"errorMessages":[...],"errors":{"field":"msg"}} (field names are kept in the message, so a 400
// says which field) and JSM's {"errorMessage":"...","i18nErrorMessage":{"i18nKey":...}} (the
// i18nKey becomes the code).
func ParseError(body []byte) (code, message string) {
	_, code, message = parseBody(body)
	return code, message
}

// do sends one request and enriches a failure with Jira's field errors and rate-limit headers,
// which connectors.Client does not know about. The per-call copy of the HTTP client shares the
// transport (and so the connection pool); only the response headers are observed.
func (c *Client) do(ctx context.Context, r connectors.Request, out any) (*connectors.Response, error) {
	var obs observed
	api := c.api
	base := api.HTTP
	if base == nil {
		base = connectors.DefaultHTTPClient
	}
	hc := *base
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = observer{base: rt, obs: &obs}
	api.HTTP = &hc
	api.ParseError = func(body []byte) (string, string) {
		e, code, msg := parseBody(body)
		obs.detail = e
		return code, msg
	}
	resp, err := api.Do(ctx, r, out)
	if err != nil {
		return nil, c.enrich(err, &obs)
	}
	return resp, nil
}

type observed struct {
	header http.Header
	detail *APIError
}

type observer struct {
	base http.RoundTripper
	obs  *observed
}

func (o observer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.base.RoundTrip(req)
	if resp != nil {
		o.obs.header = resp.Header
	}
	return resp, err
}

func (c *Client) enrich(err error, obs *observed) error {
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Status == 0 || ce.Err != nil {
		return err
	}
	d := obs.detail
	if d == nil {
		d = &APIError{RateLimitLimit: -1, RateLimitRemaining: -1}
	}
	if h := obs.header; h != nil {
		d.RateLimitReason = h.Get("RateLimit-Reason")
		if t, ok := ParseRateLimitReset(h.Get("X-RateLimit-Reset")); ok {
			d.RateLimitReset = t
		}
		if n, err := strconv.Atoi(h.Get("X-RateLimit-Limit")); err == nil {
			d.RateLimitLimit = n
		}
		if n, err := strconv.Atoi(h.Get("X-RateLimit-Remaining")); err == nil {
			d.RateLimitRemaining = n
		}
	}
	// No Retry-After but a reset time: wait until the reset (Jira sends reset = now + Retry-After).
	if _, has := ce.RetryAfter(); !has && ce.Retryable() && !d.RateLimitReset.IsZero() {
		ce = ce.WithRetryAfter(max(time.Until(d.RateLimitReset), 0))
	}
	if ce.Status == http.StatusUnauthorized && c.auth.usedOAuth() && strings.HasSuffix(hostOf(c.api.BaseURL), ".atlassian.net") {
		ce.Message = strings.TrimSpace(ce.Message + " (service-account tokens only work through https://api.atlassian.com/ex/jira/{cloudId}; set JIRA_BASE_URL to that)")
	}
	if d.worthAttaching() {
		ce.Err = d
	}
	return ce
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// ParseRateLimitReset reads Jira's X-RateLimit-Reset, an ISO-8601 time such as
// 2026-11-22T10:15Z (yyyy-MM-ddTHH:mmZ), not epoch seconds.
func ParseRateLimitReset(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{"2006-01-02T15:04Z07:00", time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// ---------------------------------------------------------------------------------------------
// authentication

// auth applies whichever credential the secret holds.
type auth struct {
	secrets  connectors.SecretReader
	secretID string
	hc       *http.Client

	mu     sync.Mutex
	token  *oauth.Source // built on first OAuth use; rebuilt if the token endpoint changes
	oauthd bool          // the last Apply used OAuth
}

func (a *auth) credentials(ctx context.Context) (Credentials, error) {
	var c Credentials
	if err := a.secrets.JSON(ctx, a.secretID, &c); err != nil {
		return c, &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig, Err: err}
	}
	return c, nil
}

func (a *auth) source(c Credentials) *oauth.Source {
	tokenURL := c.TokenURL
	if tokenURL == "" {
		tokenURL = DefaultTokenURL
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.oauthd = true
	if a.token == nil || a.token.TokenURL != tokenURL {
		a.token = &oauth.Source{
			System:   System,
			TokenURL: tokenURL,
			Style:    oauth.JSONBody,
			HTTP:     a.hc,
			Credentials: func(ctx context.Context) (oauth.ClientCredentials, error) {
				c, err := a.credentials(ctx)
				return oauth.ClientCredentials{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scope: c.Scope, Audience: Audience}, err
			},
			ForgetCredentials: func() { a.secrets.Invalidate(a.secretID) },
		}
	}
	return a.token
}

func (a *auth) usedOAuth() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.oauthd
}

// Apply sets Authorization for the secret's scheme.
func (a *auth) Apply(ctx context.Context, req *http.Request) error {
	c, err := a.credentials(ctx)
	if err != nil {
		return err
	}
	switch {
	case c.OAuth():
		return oauth.Bearer{Source: a.source(c)}.Apply(ctx, req)
	case c.Email != "" && c.APIToken != "":
		a.mu.Lock()
		a.oauthd = false
		a.mu.Unlock()
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.Email+":"+c.APIToken)))
		return nil
	default:
		return &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig,
			Err: fmt.Errorf("secret %s has neither email and apiToken nor clientId and clientSecret", a.secretID)}
	}
}

// Invalidate forgets the token and the cached secret, in case either was rotated.
func (a *auth) Invalidate() {
	a.mu.Lock()
	t := a.token
	o := a.oauthd
	a.mu.Unlock()
	if t != nil && o {
		t.Invalidate() // also forgets the secret
		return
	}
	a.secrets.Invalidate(a.secretID)
}

// ---------------------------------------------------------------------------------------------
// shared wire types

// User is an Atlassian account as JSM and the platform API return it.
type User struct {
	AccountID    string `json:"accountId"`
	AccountType  string `json:"accountType,omitempty"` // atlassian, customer, app
	EmailAddress string `json:"emailAddress,omitempty"`
	DisplayName  string `json:"displayName,omitempty"`
	Active       bool   `json:"active"`
	TimeZone     string `json:"timeZone,omitempty"`
}

// Date is JSM's date object.
type Date struct {
	ISO8601     string `json:"iso8601,omitempty"`
	Jira        string `json:"jira,omitempty"`
	Friendly    string `json:"friendly,omitempty"`
	EpochMillis int64  `json:"epochMillis,omitempty"`
}

// Time returns the date as a time.Time (zero when absent).
func (d Date) Time() time.Time {
	if d.EpochMillis != 0 {
		return time.UnixMilli(d.EpochMillis)
	}
	for _, v := range []string{d.ISO8601, d.Jira} {
		if t, ok := parseJiraTime(v); ok {
			return t
		}
	}
	return time.Time{}
}

func parseJiraTime(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// page is JSM's paged list.
type page[T any] struct {
	Size       int  `json:"size"`
	Start      int  `json:"start"`
	Limit      int  `json:"limit"`
	IsLastPage bool `json:"isLastPage"`
	Values     []T  `json:"values"`
}

// maxPages bounds every paged read so a misbehaving server cannot keep a Lambda busy.
const maxPages = 20

func escape(s string) string { return url.PathEscape(s) }

func rejected(op, msg string) error {
	return &connectors.Error{System: System, Op: op, Kind: connectors.KindRejected, Message: msg}
}
