package servicenow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/oauth"
)

// Credentials is the JSON shape of SERVICENOW_SECRET_ID (see the package comment).
type Credentials struct {
	Username     string `json:"username"`
	Password     string `json:"password"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	Scope        string `json:"scope"`
}

// auth applies whichever credential the secret holds.
type auth struct {
	secrets  connectors.SecretReader
	secretID string
	tokenURL string
	hc       *http.Client

	mu     sync.Mutex
	tokens *oauth.Source // built on first OAuth use
}

func (a *auth) credentials(ctx context.Context) (Credentials, error) {
	var c Credentials
	if a.secrets == nil {
		return c, &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig, Err: errors.New("no secret reader")}
	}
	if err := a.secrets.JSON(ctx, a.secretID, &c); err != nil {
		return c, &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig, Err: err}
	}
	return c, nil
}

// source returns the token source for OAuth secrets: the client-credentials grant, or the
// password grant when the secret also carries a username and password.
func (a *auth) source() *oauth.Source {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		a.tokens = &oauth.Source{
			System:   System,
			TokenURL: a.tokenURL,
			Style:    oauth.FormBody, // /oauth_token.do takes client_id and client_secret as form fields
			HTTP:     a.hc,
			Credentials: func(ctx context.Context) (oauth.ClientCredentials, error) {
				c, err := a.credentials(ctx)
				return oauth.ClientCredentials{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scope: c.Scope, Username: c.Username, Password: c.Password}, err
			},
			// No ForgetCredentials: auth.Invalidate forgets the secret once for every scheme.
		}
	}
	return a.tokens
}

// Apply sets Basic or Bearer authorisation.
func (a *auth) Apply(ctx context.Context, req *http.Request) error {
	c, err := a.credentials(ctx)
	if err != nil {
		return err
	}
	switch {
	case c.ClientID != "":
		return oauth.Bearer{Source: a.source()}.Apply(ctx, req)
	case c.Username != "" && c.Password != "":
		req.SetBasicAuth(c.Username, c.Password)
		return nil
	default:
		return &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig,
			Err: fmt.Errorf("secret %s has neither username and password nor clientId and clientSecret", a.secretID)}
	}
}

// Invalidate forgets tokens and the cached secret after a 401, in case it was rotated.
func (a *auth) Invalidate() {
	a.mu.Lock()
	tokens := a.tokens
	a.mu.Unlock()
	if tokens != nil {
		tokens.Invalidate()
	}
	if a.secrets != nil {
		a.secrets.Invalidate(a.secretID)
	}
}

func (a *auth) fetches() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		return 0
	}
	return a.tokens.Fetches()
}
