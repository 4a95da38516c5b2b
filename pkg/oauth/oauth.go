// Package oauth implements the OAuth 2.0 client-credentials grant the way a Lambda needs it:
// one token per execution environment, reused across invocations, refreshed before it expires,
// dropped after a 401, and fetched by one caller while concurrent callers wait for that result.
//
// Tokens are never written anywhere (the Secrets Manager version-exhaustion failure described in
// reference/peers-anchors.md section 2.1 comes from persisting refreshed tokens).
package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// Style says how the client authenticates to the token endpoint.
type Style int

const (
	// BasicAuth sends client_id:client_secret as HTTP Basic (RFC 6749 section 2.3.1; Genesys).
	BasicAuth Style = iota
	// FormBody sends client_id and client_secret as form fields.
	FormBody
	// JSONBody sends the grant as a JSON object (Atlassian's token endpoint).
	JSONBody
)

// ClientCredentials is what a token exchange needs. It usually comes from Secrets Manager.
type ClientCredentials struct {
	ClientID     string
	ClientSecret string
	Scope        string
	Audience     string
	// Username and Password, when both are set, switch the form styles to the resource-owner
	// password grant (grant_type=password), which some ServiceNow instances use instead of
	// client credentials. A refresh token, if returned, is not kept: a new grant is as cheap and
	// leaves nothing long-lived in memory.
	Username string
	Password string
}

func (cc ClientCredentials) grant() string {
	if cc.Username != "" && cc.Password != "" {
		return "password"
	}
	return "client_credentials"
}

// Source hands out bearer tokens for one token endpoint.
type Source struct {
	System   string // for errors: "genesys", "jira", ...
	TokenURL string
	Style    Style
	// Credentials returns the client id and secret; called only when a token must be fetched, so
	// secrets stay lazy (no network at cold start).
	Credentials func(ctx context.Context) (ClientCredentials, error)
	HTTP        *http.Client
	// Skew is how long before expiry a token is refreshed; default 60 s.
	Skew time.Duration
	// Now is the clock; tests replace it.
	Now func() time.Time
	// ForgetCredentials, when set, is called on Invalidate so a rotated client secret is read
	// again from Secrets Manager instead of from the cache.
	ForgetCredentials func()

	mu        sync.Mutex
	token     string
	refreshAt time.Time // Skew before expiry, or half-way for tokens that live less than 2*Skew
	flight    singleflight.Group
	fetches   int
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// cached returns the cached token while it is fresh.
func (s *Source) cached() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Before(s.refreshAt) {
		return s.token, true
	}
	return "", false
}

// Token returns a valid access token, fetching one when none is cached or it expires soon.
func (s *Source) Token(ctx context.Context) (string, error) {
	if t, ok := s.cached(); ok {
		return t, nil
	}
	// DoChan so a caller whose context ends stops waiting without cancelling the shared fetch
	// for the others; the fetch itself is bounded by its own timeout.
	ch := s.flight.DoChan("token", func() (any, error) {
		// A caller that found no token just before the previous fetch stored one would
		// otherwise start a second exchange.
		if t, ok := s.cached(); ok {
			return t, nil
		}
		fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return s.fetch(fetchCtx)
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// Fetches counts token exchanges made; the single-flight and caching tests read it.
func (s *Source) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// Invalidate drops the cached token (after a 401) so the next Token call fetches a new one.
func (s *Source) Invalidate() {
	s.mu.Lock()
	s.token, s.refreshAt = "", time.Time{}
	s.mu.Unlock()
	if s.ForgetCredentials != nil {
		s.ForgetCredentials()
	}
}

func (s *Source) fetch(ctx context.Context) (string, error) {
	fail := func(kind connectors.Kind, err error) (string, error) {
		return "", &connectors.Error{System: s.System, Op: "get access token", Kind: kind, Err: err}
	}
	if s.Credentials == nil {
		return fail(connectors.KindConfig, errors.New("no client credentials configured"))
	}
	cc, err := s.Credentials(ctx)
	if err != nil {
		return "", err
	}
	if cc.ClientID == "" || cc.ClientSecret == "" {
		return fail(connectors.KindConfig, errors.New("client id or secret is empty"))
	}
	req := connectors.Request{Op: "get access token", Method: http.MethodPost, Path: s.TokenURL}
	switch s.Style {
	case BasicAuth:
		form := url.Values{"grant_type": {cc.grant()}}
		addOptional(form, cc)
		req.Body = form
		req.Header = http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(cc.ClientID+":"+cc.ClientSecret))}}
	case FormBody:
		form := url.Values{"grant_type": {cc.grant()}, "client_id": {cc.ClientID}, "client_secret": {cc.ClientSecret}}
		addOptional(form, cc)
		req.Body = form
	case JSONBody:
		body := map[string]string{"grant_type": "client_credentials", "client_id": cc.ClientID, "client_secret": cc.ClientSecret}
		if cc.Audience != "" {
			body["audience"] = cc.Audience
		}
		if cc.Scope != "" {
			body["scope"] = cc.Scope
		}
		req.Body = body
	}
	client := connectors.Client{System: s.System, HTTP: s.HTTP, ParseError: parseOAuthError}
	var tr tokenResponse
	start := s.now()
	if _, err := client.Do(ctx, req, &tr); err != nil {
		return "", err
	}
	if tr.AccessToken == "" {
		return fail(connectors.KindBadResponse, errors.New("token response has no access_token"))
	}
	ttl := time.Duration(tr.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 5 * time.Minute // no expires_in: assume short-lived rather than forever
	}
	skew := s.Skew
	if skew == 0 {
		skew = time.Minute
	}
	// A token that lives less than twice the skew is still used for half its life, rather than
	// exchanged again on every call.
	skew = min(skew, ttl/2)
	s.mu.Lock()
	s.token, s.refreshAt = tr.AccessToken, start.Add(ttl-skew)
	s.fetches++
	s.mu.Unlock()
	return tr.AccessToken, nil
}

func addOptional(form url.Values, cc ClientCredentials) {
	if cc.grant() == "password" {
		form.Set("username", cc.Username)
		form.Set("password", cc.Password)
	}
	if cc.Scope != "" {
		form.Set("scope", cc.Scope)
	}
	if cc.Audience != "" {
		form.Set("audience", cc.Audience)
	}
}

// parseOAuthError reads RFC 6749 error bodies: {"error":"invalid_client","error_description":"..."}.
func parseOAuthError(body []byte) (string, string) {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error, connectors.Truncate(e.Description, 200)
}

// Bearer adapts a Source to connectors.Credentials.
type Bearer struct{ Source *Source }

// Apply sets Authorization: Bearer <token>.
func (b Bearer) Apply(ctx context.Context, req *http.Request) error {
	t, err := b.Source.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t)
	return nil
}

// Invalidate drops the cached token.
func (b Bearer) Invalidate() { b.Source.Invalidate() }

// String hides the token if a Source is ever formatted into a log line.
func (s *Source) String() string { return fmt.Sprintf("oauth.Source{%s %s}", s.System, s.TokenURL) }
