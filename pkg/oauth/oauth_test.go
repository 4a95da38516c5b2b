package oauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/oauth"
)

const (
	clientID     = "cxbridge-client"
	clientSecret = "s3cr3t-Cl1ent-Value"
)

// tokenServer is a real OAuth 2.0 token endpoint that issues numbered tokens.
type tokenServer struct {
	srv *httptest.Server

	exchanges atomic.Int32
	expiresIn atomic.Int64
	// answer, when set, replaces the normal token response
	answer func(w http.ResponseWriter, r *http.Request) bool
	// gate, when set, holds every exchange until it is closed
	gate chan struct{}

	mu   sync.Mutex
	last *http.Request
	body string
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{}
	ts.expiresIn.Store(3600)
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts.mu.Lock()
		ts.last, ts.body = r, string(body)
		gate, answer := ts.gate, ts.answer
		ts.mu.Unlock()
		n := ts.exchanges.Add(1)
		if gate != nil {
			<-gate
		}
		if answer != nil && answer(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"token-%d","token_type":"bearer","expires_in":%d}`, n, ts.expiresIn.Load())
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) lastRequest() (*http.Request, string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.last, ts.body
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type source struct {
	*oauth.Source
	credReads atomic.Int32
	forgets   atomic.Int32
}

func newSource(ts *tokenServer, style oauth.Style, cc oauth.ClientCredentials) *source {
	s := &source{}
	s.Source = &oauth.Source{
		System:   "genesys",
		TokenURL: ts.srv.URL + "/oauth/token",
		Style:    style,
		HTTP:     connectors.DefaultHTTPClient,
		Credentials: func(ctx context.Context) (oauth.ClientCredentials, error) {
			s.credReads.Add(1)
			return cc, nil
		},
		ForgetCredentials: func() { s.forgets.Add(1) },
	}
	return s
}

var creds = oauth.ClientCredentials{ClientID: clientID, ClientSecret: clientSecret}

func TestTokenCachedAcrossCalls(t *testing.T) {
	ts := newTokenServer(t)
	src := newSource(ts, oauth.BasicAuth, creds)
	for i := range 5 {
		tok, err := src.Token(context.Background())
		if err != nil || tok != "token-1" {
			t.Fatalf("call %d: Token = %q, %v; want the cached token-1", i, tok, err)
		}
	}
	if ts.exchanges.Load() != 1 || src.Fetches() != 1 || src.credReads.Load() != 1 {
		t.Errorf("exchanges %d, Fetches %d, credential reads %d; want 1, 1, 1", ts.exchanges.Load(), src.Fetches(), src.credReads.Load())
	}
}

func TestRefreshedWithinSkewOfExpiry(t *testing.T) {
	tests := []struct {
		name        string
		expiresIn   int64
		skew        time.Duration
		stillCached time.Duration // no exchange yet at this age
		refreshed   time.Duration // a new exchange at this age
	}{
		{"hour token, default skew", 3600, 0, 3539 * time.Second, 3541 * time.Second},
		{"hour token, 5 min skew", 3600, 5 * time.Minute, 3299 * time.Second, 3301 * time.Second},
		{"30 min token", 1800, 0, 1739 * time.Second, 1741 * time.Second},
		// shorter than twice the skew: used for half its life instead of fetched on every call
		{"one minute token", 60, 0, 29 * time.Second, 31 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t)
			ts.expiresIn.Store(tt.expiresIn)
			clk := &clock{t: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
			src := newSource(ts, oauth.BasicAuth, creds)
			src.Now, src.Skew = clk.Now, tt.skew

			ctx := context.Background()
			if tok, _ := src.Token(ctx); tok != "token-1" {
				t.Fatalf("first Token = %q", tok)
			}
			clk.Add(tt.stillCached)
			if tok, _ := src.Token(ctx); tok != "token-1" || ts.exchanges.Load() != 1 {
				t.Errorf("at %v: Token = %q after %d exchanges; want the cached token", tt.stillCached, tok, ts.exchanges.Load())
			}
			clk.Add(tt.refreshed - tt.stillCached)
			if tok, _ := src.Token(ctx); tok != "token-2" || ts.exchanges.Load() != 2 {
				t.Errorf("at %v: Token = %q after %d exchanges; want a fresh token-2", tt.refreshed, tok, ts.exchanges.Load())
			}
		})
	}
}

func TestMissingExpiresInIsShortLived(t *testing.T) {
	ts := newTokenServer(t)
	ts.expiresIn.Store(0)
	clk := &clock{t: time.Now()}
	src := newSource(ts, oauth.BasicAuth, creds)
	src.Now = clk.Now
	_, _ = src.Token(context.Background())
	clk.Add(10 * time.Minute)
	if tok, _ := src.Token(context.Background()); tok != "token-2" {
		t.Errorf("Token = %q; a token without expires_in must not be kept for ever", tok)
	}
}

// Twenty requests of one invocation need a token at once: one exchange serves them all.
func TestSingleFlight(t *testing.T) {
	ts := newTokenServer(t)
	ts.gate = make(chan struct{})
	src := newSource(ts, oauth.BasicAuth, creds)

	var wg sync.WaitGroup
	tokens := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Go(func() { tokens[i], errs[i] = src.Token(context.Background()) })
	}
	for ts.exchanges.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the others queue up behind the exchange
	close(ts.gate)
	wg.Wait()
	for i := range 20 {
		if errs[i] != nil || tokens[i] != "token-1" {
			t.Errorf("caller %d: %q, %v", i, tokens[i], errs[i])
		}
	}
	if n := ts.exchanges.Load(); n != 1 {
		t.Errorf("%d token exchanges; want exactly 1", n)
	}
}

// Callers arriving in a steady stream (some just as the exchange completes) still cause one.
func TestSingleFlightStaggered(t *testing.T) {
	ts := newTokenServer(t)
	src := newSource(ts, oauth.BasicAuth, creds)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * time.Millisecond)
			if _, err := src.Token(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := ts.exchanges.Load(); n != 1 {
		t.Errorf("%d token exchanges; want exactly 1", n)
	}
}

func TestCancelledCallerDoesNotBreakSharedFetch(t *testing.T) {
	ts := newTokenServer(t)
	ts.gate = make(chan struct{})
	var exchangeCancelled atomic.Bool
	ts.answer = func(w http.ResponseWriter, r *http.Request) bool {
		exchangeCancelled.Store(r.Context().Err() != nil)
		return false
	}
	src := newSource(ts, oauth.BasicAuth, creds)

	impatient, cancel := context.WithCancel(context.Background())
	impatientDone := make(chan error, 1)
	go func() { _, err := src.Token(impatient); impatientDone <- err }()
	for ts.exchanges.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	patientDone := make(chan string, 1)
	go func() { tok, _ := src.Token(context.Background()); patientDone <- tok }()

	cancel()
	select {
	case err := <-impatientDone:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller got %v; want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled caller kept waiting for the exchange")
	}
	close(ts.gate)
	select {
	case tok := <-patientDone:
		if tok != "token-1" {
			t.Errorf("the other caller got %q; want token-1 from the shared exchange", tok)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other caller never got a token")
	}
	if exchangeCancelled.Load() || ts.exchanges.Load() != 1 {
		t.Errorf("exchange cancelled %v, exchanges %d; the shared exchange must finish once", exchangeCancelled.Load(), ts.exchanges.Load())
	}
	// and its token is cached for later callers
	if tok, _ := src.Token(context.Background()); tok != "token-1" || ts.exchanges.Load() != 1 {
		t.Errorf("later Token = %q; want the cached token-1", tok)
	}
}

func TestInvalidate(t *testing.T) {
	ts := newTokenServer(t)
	src := newSource(ts, oauth.BasicAuth, creds)
	_, _ = src.Token(context.Background())
	src.Invalidate()
	if src.forgets.Load() != 1 {
		t.Errorf("ForgetCredentials called %d times; want 1, so a rotated secret is read again", src.forgets.Load())
	}
	tok, err := src.Token(context.Background())
	if err != nil || tok != "token-2" || src.credReads.Load() != 2 {
		t.Errorf("Token after Invalidate = %q, %v (credential reads %d); want a new exchange with fresh credentials", tok, err, src.credReads.Load())
	}
	// without ForgetCredentials Invalidate still works
	src.ForgetCredentials = nil
	src.Invalidate()
	if tok, _ := src.Token(context.Background()); tok != "token-3" {
		t.Errorf("Token = %q; want token-3", tok)
	}
}

// The whole 401 path: the API rejects the cached token, connectors.Client invalidates it through
// Bearer, and the retry carries a freshly exchanged one.
func TestBearerRefreshesOnceOn401(t *testing.T) {
	ts := newTokenServer(t)
	var apiCalls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiCalls.Add(1)
		if r.Header.Get("Authorization") != "Bearer token-2" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"id":"conv-1"}`)
	}))
	t.Cleanup(api.Close)
	src := newSource(ts, oauth.BasicAuth, creds)
	c := connectors.Client{System: "genesys", BaseURL: api.URL, Creds: oauth.Bearer{Source: src.Source}}
	var out struct{ ID string }
	if _, err := c.Do(context.Background(), connectors.Request{Op: "get conversation", Method: http.MethodGet, Path: "/api/v2/conversations/conv-1"}, &out); err != nil {
		t.Fatalf("Do = %v", err)
	}
	if out.ID != "conv-1" || apiCalls.Load() != 2 || ts.exchanges.Load() != 2 || src.forgets.Load() != 1 {
		t.Errorf("id %q, API calls %d, exchanges %d, forgets %d; want conv-1, 2, 2, 1", out.ID, apiCalls.Load(), ts.exchanges.Load(), src.forgets.Load())
	}
}

func TestRequestOnTheWire(t *testing.T) {
	full := oauth.ClientCredentials{ClientID: clientID, ClientSecret: clientSecret, Scope: "read:servicedesk-request write:servicedesk-request", Audience: "api.atlassian.com"}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(clientID+":"+clientSecret))
	tests := []struct {
		name     string
		style    oauth.Style
		auth     string
		ctype    string
		wantBody map[string]string
	}{
		{"basic", oauth.BasicAuth, basic, "application/x-www-form-urlencoded",
			map[string]string{"grant_type": "client_credentials", "scope": full.Scope, "audience": full.Audience}},
		{"form", oauth.FormBody, "", "application/x-www-form-urlencoded",
			map[string]string{"grant_type": "client_credentials", "client_id": clientID, "client_secret": clientSecret, "scope": full.Scope, "audience": full.Audience}},
		{"json", oauth.JSONBody, "", "application/json",
			map[string]string{"grant_type": "client_credentials", "client_id": clientID, "client_secret": clientSecret, "scope": full.Scope, "audience": full.Audience}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t)
			src := newSource(ts, tt.style, full)
			if _, err := src.Token(context.Background()); err != nil {
				t.Fatal(err)
			}
			r, body := ts.lastRequest()
			if r.Method != http.MethodPost || r.URL.Path != "/oauth/token" || r.Header.Get("Accept") != "application/json" {
				t.Errorf("request = %s %s Accept %q", r.Method, r.URL.Path, r.Header.Get("Accept"))
			}
			if got := r.Header.Get("Authorization"); got != tt.auth {
				t.Errorf("Authorization = %q; want %q", got, tt.auth)
			}
			if got := r.Header.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q; want %q", got, tt.ctype)
			}
			got := map[string]string{}
			if tt.style == oauth.JSONBody {
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatalf("body %q is not JSON: %v", body, err)
				}
			} else {
				form, err := url.ParseQuery(body)
				if err != nil {
					t.Fatalf("body %q is not a form: %v", body, err)
				}
				for k := range form {
					got[k] = form.Get(k)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantBody) {
				t.Errorf("body = %v; want %v", got, tt.wantBody)
			}
		})
	}
	// scope and audience are left out when not configured
	ts := newTokenServer(t)
	src := newSource(ts, oauth.FormBody, creds)
	_, _ = src.Token(context.Background())
	if _, body := ts.lastRequest(); strings.Contains(body, "scope") || strings.Contains(body, "audience") {
		t.Errorf("body %q carries empty optional fields", body)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		kind   connectors.Kind
		code   string
	}{
		{"invalid grant", 400, `{"error":"invalid_grant","error_description":"client credentials grant not enabled"}`, connectors.KindRejected, "invalid_grant"},
		{"unsupported grant", 400, `{"error":"unsupported_grant_type"}`, connectors.KindRejected, "unsupported_grant_type"},
		{"invalid client", 401, `{"error":"invalid_client","error_description":"Client authentication failed"}`, connectors.KindUnauthorized, "invalid_client"},
		{"forbidden", 403, `{"error":"access_denied"}`, connectors.KindForbidden, "access_denied"},
		{"down", 503, `<html>maintenance</html>`, connectors.KindUnavailable, ""},
		{"rate limited", 429, `{}`, connectors.KindRateLimited, ""},
		{"no access_token", 200, `{"token_type":"bearer","expires_in":3600}`, connectors.KindBadResponse, ""},
		{"not JSON", 200, `access_token=token-x&expires_in=3600`, connectors.KindBadResponse, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t)
			ts.answer = func(w http.ResponseWriter, r *http.Request) bool {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
				return true
			}
			src := newSource(ts, oauth.BasicAuth, creds)
			tok, err := src.Token(context.Background())
			var ce *connectors.Error
			if tok != "" || !errors.As(err, &ce) {
				t.Fatalf("Token = %q, %v; want a *connectors.Error", tok, err)
			}
			if ce.Kind != tt.kind || ce.Code != tt.code || ce.System != "genesys" || (tt.status != 200 && ce.Status != tt.status) {
				t.Errorf("error = %+v; want kind %q code %q", ce, tt.kind, tt.code)
			}
			if tt.code != "" && !strings.Contains(err.Error(), tt.code) {
				t.Errorf("Error() = %q does not name the OAuth error code", err)
			}
			assertNoSecrets(t, err)
			if ts.exchanges.Load() != 1 {
				t.Errorf("%d exchanges; the token endpoint must not be retried here", ts.exchanges.Load())
			}
			// a failed exchange is not cached: the next call tries again
			_, _ = src.Token(context.Background())
			if ts.exchanges.Load() != 2 {
				t.Errorf("exchanges after a second call = %d; want 2", ts.exchanges.Load())
			}
		})
	}
}

func TestCredentialProblems(t *testing.T) {
	ts := newTokenServer(t)
	tests := []struct {
		name  string
		creds func(context.Context) (oauth.ClientCredentials, error)
		kind  connectors.Kind
	}{
		{"none configured", nil, connectors.KindConfig},
		{"empty secret", func(context.Context) (oauth.ClientCredentials, error) {
			return oauth.ClientCredentials{ClientID: clientID}, nil
		}, connectors.KindConfig},
		{"secret unreadable", func(context.Context) (oauth.ClientCredentials, error) {
			return oauth.ClientCredentials{}, &connectors.Error{System: "genesys", Op: "read credentials", Kind: connectors.KindConfig, Err: errors.New("secret cxbridge/genesys not found")}
		}, connectors.KindConfig},
	}
	for _, tt := range tests {
		src := &oauth.Source{System: "genesys", TokenURL: ts.srv.URL, Credentials: tt.creds}
		_, err := src.Token(context.Background())
		if connectors.KindOf(err) != tt.kind {
			t.Errorf("%s: Token = %v; want kind %q", tt.name, err, tt.kind)
		}
	}
	if ts.exchanges.Load() != 0 {
		t.Errorf("%d exchanges without usable credentials", ts.exchanges.Load())
	}
}

func TestNoSecretsInErrorsOrFormatting(t *testing.T) {
	// transport failure with the secret in a Basic header and in a form body
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for _, style := range []oauth.Style{oauth.BasicAuth, oauth.FormBody, oauth.JSONBody} {
		src := &oauth.Source{System: "jira", TokenURL: dead.URL + "/oauth/token", Style: style,
			Credentials: func(context.Context) (oauth.ClientCredentials, error) { return creds, nil }}
		_, err := src.Token(context.Background())
		if err == nil {
			t.Fatal("Token succeeded against a closed server")
		}
		assertNoSecrets(t, err)
	}

	ts := newTokenServer(t)
	src := newSource(ts, oauth.BasicAuth, creds)
	tok, _ := src.Token(context.Background())
	for _, s := range []string{fmt.Sprint(src.Source), fmt.Sprintf("%v", src.Source), src.String()} {
		if strings.Contains(s, tok) || strings.Contains(s, clientSecret) {
			t.Errorf("formatted Source %q shows a secret", s)
		}
	}
}

func assertNoSecrets(t *testing.T, err error) {
	t.Helper()
	basic := base64.StdEncoding.EncodeToString([]byte(clientID + ":" + clientSecret))
	for _, secret := range []string{clientSecret, basic, "token-"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains %q", err, secret)
		}
	}
}
