// Package telemetry calls the customer's product-telemetry endpoint for a live support-priority
// reading.
//
// There is no vendor contract (reference/api-contracts.md section 5); cxbridge defines one:
//
//	POST <TELEMETRY_URL>
//	Content-Type: application/json
//	Cache-Control: no-cache
//	{"customer_id":"...","timestamp":"2026-11-22T10:00:00Z","request_type":"support_priority_check","ani":"+4420..."}
//
//	200 {"customer_id":"...","severity_level":3,"escalation_required":true,"queue_id":"optional"}
//
// Readings are never cached, here or anywhere else: a customer in an outage must reach L3 now,
// not after a cache expires (seed 003, "The Trap").
package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/oauth"
)

// RequestType is sent with every reading.
const RequestType = "support_priority_check"

// Credentials is the JSON shape of TELEMETRY_SECRET_ID. Either an API key or OAuth 2.0 client
// credentials:
//
//	{"apiKey":"...", "header":"X-Api-Key"}                 header defaults to Authorization: Bearer <apiKey>
//	{"tokenUrl":"https://...","clientId":"...","clientSecret":"...","scope":"...","authStyle":"basic|form"}
type Credentials struct {
	APIKey       string `json:"apiKey"`
	Header       string `json:"header"`
	TokenURL     string `json:"tokenUrl"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	Scope        string `json:"scope"`
	AuthStyle    string `json:"authStyle"`
}

// System is the name used in errors, logs, breaker and rate limit keys.
const System = "telemetry"

// Client reads telemetry.
type Client struct {
	http connectors.Client
	url  string
}

// New returns a client for url whose credentials are read lazily from secretID.
func New(url string, secrets connectors.SecretReader, secretID string, hc *http.Client) *Client {
	return &Client{http: connectors.Client{
		System:     "telemetry",
		HTTP:       hc,
		Creds:      newAuth(secrets, secretID, hc),
		ParseError: parseError,
		MaxBody:    64 << 10,
		Header:     http.Header{"Cache-Control": {"no-cache"}},
	}, url: url}
}

// Reading is a telemetry answer.
type Reading struct {
	CustomerID         string
	SeverityLevel      int
	EscalationRequired bool
	QueueID            string // a queue the telemetry suggests; only honoured if configured
}

// Request is what is asked for.
type Request struct {
	CustomerID string
	ANI        string
	At         time.Time
}

type wireRequest struct {
	CustomerID  string `json:"customer_id"`
	Timestamp   string `json:"timestamp"`
	RequestType string `json:"request_type"`
	ANI         string `json:"ani,omitempty"`
}

type wireReading struct {
	CustomerID         string          `json:"customer_id"`
	SeverityLevel      json.RawMessage `json:"severity_level"`
	EscalationRequired json.RawMessage `json:"escalation_required"`
	QueueID            string          `json:"queue_id"`
}

// ErrMissingSeverity is returned when a 2xx answer has no severity_level.
var ErrMissingSeverity = errors.New("telemetry answer has no severity_level")

// Read asks for one customer's current reading.
func (c *Client) Read(ctx context.Context, r Request) (Reading, error) {
	body := wireRequest{CustomerID: r.CustomerID, Timestamp: r.At.UTC().Format(time.RFC3339), RequestType: RequestType, ANI: r.ANI}
	var raw json.RawMessage
	if _, err := c.http.Do(ctx, connectors.Request{Op: "read telemetry", Method: http.MethodPost, Path: c.url, Body: body}, &raw); err != nil {
		return Reading{}, err
	}
	return parseReading(raw)
}

func parseReading(raw []byte) (Reading, error) {
	bad := func(err error) (Reading, error) {
		return Reading{}, &connectors.Error{System: "telemetry", Op: "read telemetry", Status: http.StatusOK, Kind: connectors.KindBadResponse, Err: err}
	}
	var w wireReading
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&w); err != nil {
		return bad(fmt.Errorf("answer is not a JSON object: %w", err))
	}
	sev := strings.TrimSpace(string(w.SeverityLevel))
	if sev == "" || sev == "null" {
		return bad(ErrMissingSeverity)
	}
	sev = strings.Trim(sev, `"`)
	n, err := strconv.Atoi(sev)
	if err != nil {
		return bad(fmt.Errorf("severity_level %s is not a whole number", connectors.Truncate(sev, 20)))
	}
	esc := false
	switch strings.Trim(strings.TrimSpace(string(w.EscalationRequired)), `"`) {
	case "", "null", "false", "0":
	case "true", "1":
		esc = true
	default:
		return bad(errors.New("escalation_required is not a boolean"))
	}
	return Reading{CustomerID: w.CustomerID, SeverityLevel: n, EscalationRequired: esc, QueueID: strings.TrimSpace(w.QueueID)}, nil
}

// parseError reads the common error shapes: {"error":"..."} / {"message":"..."} /
// {"error":{"code":..,"message":..}}.
func parseError(body []byte) (string, string) {
	var e struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Code    any             `json:"code"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	msg := e.Message
	var s string
	var obj struct {
		Code    any    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(e.Error, &s) == nil && s != "" {
		msg = s
	} else if json.Unmarshal(e.Error, &obj) == nil && obj.Message != "" {
		msg = obj.Message
		e.Code = obj.Code
	}
	code := ""
	if e.Code != nil {
		code = fmt.Sprint(e.Code)
	}
	return code, connectors.Truncate(msg, 200)
}

// auth applies whichever credential the secret holds.
type auth struct {
	secrets  connectors.SecretReader
	secretID string
	hc       *http.Client

	mu    sync.Mutex
	token *oauth.Source // built on first OAuth use; rebuilt if the secret's endpoint changes
}

func newAuth(secrets connectors.SecretReader, secretID string, hc *http.Client) *auth {
	return &auth{secrets: secrets, secretID: secretID, hc: hc}
}

func (a *auth) credentials(ctx context.Context) (Credentials, error) {
	var c Credentials
	if err := a.secrets.JSON(ctx, a.secretID, &c); err != nil {
		return c, &connectors.Error{System: "telemetry", Op: "read credentials", Kind: connectors.KindConfig, Err: err}
	}
	return c, nil
}

// source returns the token source for the secret's endpoint.
func (a *auth) source(c Credentials) *oauth.Source {
	style := oauth.BasicAuth
	if strings.EqualFold(c.AuthStyle, "form") {
		style = oauth.FormBody
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == nil || a.token.TokenURL != c.TokenURL || a.token.Style != style {
		a.token = &oauth.Source{
			System:   "telemetry",
			TokenURL: c.TokenURL,
			Style:    style,
			HTTP:     a.hc,
			Credentials: func(ctx context.Context) (oauth.ClientCredentials, error) {
				c, err := a.credentials(ctx)
				return oauth.ClientCredentials{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scope: c.Scope}, err
			},
			ForgetCredentials: func() { a.secrets.Invalidate(a.secretID) },
		}
	}
	return a.token
}

func (a *auth) Apply(ctx context.Context, req *http.Request) error {
	c, err := a.credentials(ctx)
	if err != nil {
		return err
	}
	switch {
	case c.TokenURL != "":
		return oauth.Bearer{Source: a.source(c)}.Apply(ctx, req)
	case c.APIKey != "":
		if h := c.Header; h == "" || strings.EqualFold(h, "Authorization") {
			req.Header.Set("Authorization", "Bearer "+c.APIKey)
		} else {
			req.Header.Set(h, c.APIKey)
		}
		return nil
	default:
		return &connectors.Error{System: "telemetry", Op: "read credentials", Kind: connectors.KindConfig,
			Err: fmt.Errorf("secret %s has neither apiKey nor tokenUrl, clientId and clientSecret", a.secretID)}
	}
}

// Invalidate forgets the token and the cached secret, in case the key was rotated.
func (a *auth) Invalidate() {
	a.mu.Lock()
	t := a.token
	a.mu.Unlock()
	if t != nil {
		t.Invalidate()
		return
	}
	a.secrets.Invalidate(a.secretID)
}
