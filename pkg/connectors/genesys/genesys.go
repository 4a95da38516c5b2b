// Package genesys is a client for the parts of the Genesys Cloud Platform API cxbridge uses.
//
// Authentication is the OAuth client-credentials grant against the login host of the region
// (login.{region}, not api.{region}: reference/api-contracts.md section 3.1), with the token
// cached for the life of the execution environment, refreshed a minute before it expires,
// fetched once for concurrent callers, and fetched again once after a 401.
package genesys

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/oauth"
)

// Credentials is the JSON shape of GENESYS_SECRET_ID.
type Credentials struct {
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// System is the name used in errors, logs, breaker and rate limit keys.
const System = "genesys"

// Client calls the Genesys Cloud API.
type Client struct {
	api   connectors.Client
	token *oauth.Source
}

// New returns a client. apiBase is e.g. https://api.mypurecloud.ie and loginBase
// https://login.mypurecloud.ie; credentials are read from secretID on first use.
func New(apiBase, loginBase string, secrets connectors.SecretReader, secretID string, hc *http.Client) *Client {
	token := &oauth.Source{
		System:   "genesys",
		TokenURL: loginBase + "/oauth/token",
		Style:    oauth.BasicAuth,
		HTTP:     hc,
		Credentials: func(ctx context.Context) (oauth.ClientCredentials, error) {
			var c Credentials
			if err := secrets.JSON(ctx, secretID, &c); err != nil {
				return oauth.ClientCredentials{}, &connectors.Error{System: "genesys", Op: "read credentials", Kind: connectors.KindConfig, Err: err}
			}
			return oauth.ClientCredentials{ClientID: c.ClientID, ClientSecret: c.ClientSecret}, nil
		},
		ForgetCredentials: func() { secrets.Invalidate(secretID) },
	}
	return &Client{
		token: token,
		api: connectors.Client{
			System:     "genesys",
			BaseURL:    apiBase,
			HTTP:       hc,
			Creds:      oauth.Bearer{Source: token},
			ParseError: ParseError,
		},
	}
}

// TokenFetches reports how many token exchanges this client made (for tests and the demo).
func (c *Client) TokenFetches() int { return c.token.Fetches() }

// Do sends a request to the Genesys API with the client's token. Service-specific methods are
// thin wrappers around it.
func (c *Client) Do(ctx context.Context, r connectors.Request, out any) (*connectors.Response, error) {
	return c.api.Do(ctx, r, out)
}

// ParseError reads the Genesys error body: {"message":"...","code":"not.found","status":404,...}.
func ParseError(body []byte) (string, string) {
	var e struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Code, connectors.Truncate(e.Message, 200)
}
