// Package messagebird is a client for the classic MessageBird Conversations API
// (https://conversations.messagebird.com/v1, reference/api-contracts.md section 4): reply to a
// conversation with text or a WhatsApp template, read and archive conversations, read messages,
// download inbound media, and verify and parse the webhooks MessageBird sends.
//
// Callers depend on the Messenger interface, so Bird's newer APIs (api.bird.com, or the
// {region}.platform.bird.com generation) can be added as another implementation later.
//
// # Credentials
//
// MESSAGEBIRD_SECRET_ID holds {"accessKey":"...","signingKey":"..."}. The access key authorises
// REST calls (Authorization: AccessKey <key>); the signing key verifies webhook JWTs and is not
// the API key. The secret is read lazily, on the first call that needs it.
//
// # Errors
//
// Every failure is a *connectors.Error. Error bodies {"errors":[{"code","description",
// "parameter"}]} become Code (the vendor codes, comma separated) and Message. 429 and 5xx are
// outages (connectors.IsOutage). Sends are not idempotent: a timeout after the request left is
// ambiguous, so do not blindly retry a send.
//
// # The WhatsApp customer-service window
//
// A free-form WhatsApp message more than 24 hours after the customer's last inbound message is
// refused; only an approved template ("hsm") may be sent then. MessageBird documents this as a
// message-level error, code 470 ("Failed to send message because you are outside the support
// window for freeform messages to this user. Please use a valid message template."), attached to
// a message whose status is "rejected" or "failed" (developers.messagebird.com, "Troubleshooting
// WhatsApp"). It can therefore arrive three ways, all of which satisfy
// errors.Is(err, ErrOutsideWindow):
//
//   - in the 2xx answer to the send (status rejected|failed, error.code 470): SendText returns
//     the message and an error;
//   - later, on the message (GetMessage, or a message.updated webhook): Message.Failure();
//   - as an HTTP 4xx with errors[].code 470 (not documented; handled defensively).
//
// Whether MessageBird ever answers the send itself with a 4xx for this case is UNCONFIRMED.
package messagebird

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// System is the connectors.Error System of this package.
const System = "messagebird"

// DefaultBaseURL is the classic Conversations API (MESSAGEBIRD_BASE_URL overrides it).
const DefaultBaseURL = "https://conversations.messagebird.com/v1"

// DefaultMediaHosts are the hosts that receive the AccessKey on media downloads, besides the
// API host itself: inbound media URLs look like https://media.messagebird.com/v1/media/{uuid},
// and the File Storage API is messaging.messagebird.com. Whether these URLs need the key is
// UNCONFIRMED; sending it to them is harmless, sending it anywhere else is not.
var DefaultMediaHosts = []string{"media.messagebird.com", "messaging.messagebird.com"}

// CustomerServiceWindow is how long after a customer's last inbound WhatsApp message a
// free-form reply is allowed.
const CustomerServiceWindow = 24 * time.Hour

// WindowErrorCode is MessageBird's (WhatsApp's) code for a free-form message outside the
// customer-service window.
const WindowErrorCode = 470

var (
	// ErrOutsideWindow: a free-form WhatsApp message was refused because the customer-service
	// window is closed; send a template, or wait for the customer to write again.
	ErrOutsideWindow = errors.New("outside the WhatsApp 24-hour customer-service window: only a template can be sent")
	// ErrNotDelivered: the message was accepted by the API but its status is rejected or failed
	// for another reason (the message's error code and description say why).
	ErrNotDelivered = errors.New("message rejected or failed")
	// ErrMediaTooLarge: a media download exceeded its size limit.
	ErrMediaTooLarge = errors.New("media exceeds the size limit")
	// ErrMediaHostNotAllowed: a media URL points to a host this client does not download from.
	ErrMediaHostNotAllowed = errors.New("media host is not allowed")
)

// Credentials is the JSON shape of MESSAGEBIRD_SECRET_ID.
type Credentials struct {
	AccessKey  string `json:"accessKey"`
	SigningKey string `json:"signingKey"`
}

// Messenger is what the bridge needs from a conversations provider. *Client implements it for
// the classic MessageBird Conversations API.
type Messenger interface {
	// SendText replies with free text. channelID may be empty (the conversation's last used
	// channel). When the conversation was archived the provider may open a new one: the
	// returned message's ConversationID says where the message went.
	SendText(ctx context.Context, conversationID, channelID, text string) (Message, error)
	// SendTemplate sends an approved WhatsApp template, allowed outside the 24 h window.
	SendTemplate(ctx context.Context, conversationID, channelID string, t Template) (Message, error)
	GetConversation(ctx context.Context, id string) (Conversation, error)
	GetMessage(ctx context.Context, id string) (Message, error)
	// Archive closes a conversation; the customer's next message opens a new one.
	Archive(ctx context.Context, conversationID string) error
	// DownloadMedia fetches an inbound attachment, at most maxBytes of it.
	DownloadMedia(ctx context.Context, mediaURL string, maxBytes int64) (Media, error)
}

var _ Messenger = (*Client)(nil)

// Client calls the classic Conversations API.
type Client struct {
	api       connectors.Client
	base      *url.URL
	auth      *accessKey
	media     mediaPolicy
	mediaHTTP *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithMediaHosts replaces DefaultMediaHosts: https hosts ("host" or "host:port") that receive
// the AccessKey on media downloads. The API host always does.
func WithMediaHosts(hosts ...string) Option {
	return func(c *Client) { c.media.authHosts = normaliseHosts(hosts) }
}

// WithPublicMedia allows downloading media from other http(s) hosts, without the AccessKey.
// Off by default: a media URL is then only fetched from MessageBird's hosts.
func WithPublicMedia(allow bool) Option {
	return func(c *Client) { c.media.allowPublic = allow }
}

// New returns a client. baseURL is MESSAGEBIRD_BASE_URL (DefaultBaseURL when empty); the
// credentials are read from secretID on first use; hc nil means connectors.DefaultHTTPClient.
func New(baseURL string, secrets connectors.SecretReader, secretID string, hc *http.Client, opts ...Option) *Client {
	baseURL = strings.TrimRight(strings.TrimSpace(baseURL), "/")
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	base, _ := url.Parse(baseURL)
	if base == nil {
		base = &url.URL{}
	}
	auth := &accessKey{secrets: secrets, secretID: secretID}
	c := &Client{
		base: base,
		auth: auth,
		api: connectors.Client{
			System:     System,
			BaseURL:    baseURL,
			HTTP:       hc,
			Creds:      auth,
			ParseError: ParseError,
		},
		media: mediaPolicy{authHosts: normaliseHosts(DefaultMediaHosts)},
	}
	for _, o := range opts {
		o(c)
	}
	c.mediaHTTP = mediaHTTPClient(hc, c.mediaAuthorised)
	return c
}

// ParseError reads {"errors":[{"code":2,"description":"...","parameter":"..."}]}: the codes
// comma separated, the descriptions (with their parameter) joined by "; ".
func ParseError(body []byte) (string, string) {
	var e struct {
		Errors []struct {
			Code        json.Number `json:"code"`
			Description string      `json:"description"`
			Message     string      `json:"message"` // one docs example uses "message"
			Parameter   *string     `json:"parameter"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	var codes, msgs []string
	for _, x := range e.Errors {
		if x.Code != "" {
			codes = append(codes, x.Code.String())
		}
		m := x.Description
		if m == "" {
			m = x.Message
		}
		if x.Parameter != nil && *x.Parameter != "" {
			m += " (parameter: " + *x.Parameter + ")"
		}
		if m != "" {
			msgs = append(msgs, m)
		}
	}
	return strings.Join(codes, ","), connectors.Truncate(strings.Join(msgs, "; "), 300)
}

// do sends a request and marks window refusals that come back as an HTTP error.
func (c *Client) do(ctx context.Context, r connectors.Request, out any) error {
	_, err := c.api.Do(ctx, r, out)
	var ce *connectors.Error
	if errors.As(err, &ce) && ce.Err == nil && ce.Status >= 400 && ce.Status < 500 && isWindowError(ce.Code, ce.Message) {
		ce.Err = ErrOutsideWindow
	}
	return err
}

func isWindowError(codes, description string) bool {
	for _, c := range strings.Split(codes, ",") {
		if strings.TrimSpace(c) == strconv.Itoa(WindowErrorCode) {
			return true
		}
	}
	d := strings.ToLower(description)
	return strings.Contains(d, "outside the support window") || strings.Contains(d, "customer service window") ||
		strings.Contains(d, "more than 24 hours have passed")
}

// Template is an approved WhatsApp message template (classic API type "hsm").
type Template struct {
	Namespace string
	Name      string   // templateName
	Language  string   // e.g. "en", "pt_BR"; sent with policy "deterministic"
	Params    []string // body parameters, in order
}

type replyRequest struct {
	Type      string       `json:"type"`
	Content   replyContent `json:"content"`
	ChannelID string       `json:"channelId,omitempty"`
}

type replyContent struct {
	Text string   `json:"text,omitempty"`
	HSM  *wireHSM `json:"hsm,omitempty"`
}

type wireHSM struct {
	Namespace    string         `json:"namespace"`
	TemplateName string         `json:"templateName"`
	Language     wireLanguage   `json:"language"`
	Params       []wireHSMParam `json:"params,omitempty"`
}

type wireLanguage struct {
	Policy string `json:"policy"`
	Code   string `json:"code"`
}

type wireHSMParam struct {
	Default string `json:"default"`
}

// SendText replies to a conversation with free text (POST /conversations/{id}/messages).
// A message the API accepted but marked rejected or failed comes back with an error:
// errors.Is(err, ErrOutsideWindow) for the WhatsApp 24 h window, ErrNotDelivered otherwise.
func (c *Client) SendText(ctx context.Context, conversationID, channelID, text string) (Message, error) {
	if strings.TrimSpace(text) == "" {
		return Message{}, &connectors.Error{System: System, Op: "send text", Kind: connectors.KindRejected, Err: errors.New("text is empty")}
	}
	return c.reply(ctx, "send text", conversationID, replyRequest{Type: "text", Content: replyContent{Text: text}, ChannelID: channelID})
}

// SendTemplate sends an approved WhatsApp template (type "hsm"), which is allowed outside the
// customer-service window.
func (c *Client) SendTemplate(ctx context.Context, conversationID, channelID string, t Template) (Message, error) {
	if t.Namespace == "" || t.Name == "" || t.Language == "" {
		return Message{}, &connectors.Error{System: System, Op: "send template", Kind: connectors.KindRejected,
			Err: errors.New("template namespace, name and language are required")}
	}
	h := &wireHSM{Namespace: t.Namespace, TemplateName: t.Name, Language: wireLanguage{Policy: "deterministic", Code: t.Language}}
	for _, p := range t.Params {
		h.Params = append(h.Params, wireHSMParam{Default: p})
	}
	return c.reply(ctx, "send template", conversationID, replyRequest{Type: "hsm", Content: replyContent{HSM: h}, ChannelID: channelID})
}

func (c *Client) reply(ctx context.Context, op, conversationID string, body replyRequest) (Message, error) {
	if conversationID == "" {
		return Message{}, &connectors.Error{System: System, Op: op, Kind: connectors.KindRejected, Err: errors.New("conversation id is empty")}
	}
	var m Message
	err := c.do(ctx, connectors.Request{Op: op, Method: http.MethodPost, Path: "/conversations/" + url.PathEscape(conversationID) + "/messages", Body: body}, &m)
	if err != nil {
		return Message{}, err
	}
	if m.ConversationID == "" {
		m.ConversationID = conversationID
	}
	if f := m.Failure(); f != nil {
		var ce *connectors.Error
		errors.As(f, &ce)
		ce.Op = op
		return m, ce
	}
	return m, nil
}

// GetConversation reads a conversation (GET /conversations/{id}).
func (c *Client) GetConversation(ctx context.Context, id string) (Conversation, error) {
	var conv Conversation
	err := c.do(ctx, connectors.Request{Op: "get conversation", Method: http.MethodGet, Path: "/conversations/" + url.PathEscape(id)}, &conv)
	return conv, err
}

// GetMessage reads a message (GET /messages/{id}), e.g. to learn whether a reply was delivered.
func (c *Client) GetMessage(ctx context.Context, id string) (Message, error) {
	var m Message
	err := c.do(ctx, connectors.Request{Op: "get message", Method: http.MethodGet, Path: "/messages/" + url.PathEscape(id)}, &m)
	return m, err
}

// Archive closes a conversation (PATCH /conversations/{id} {"status":"archived"}). Archiving an
// archived conversation succeeds.
func (c *Client) Archive(ctx context.Context, conversationID string) error {
	return c.do(ctx, connectors.Request{Op: "archive conversation", Method: http.MethodPatch, Path: "/conversations/" + url.PathEscape(conversationID),
		Body: map[string]string{"status": ConversationArchived}}, nil)
}

// SigningKey returns the webhook signing key from the secret.
func (c *Client) SigningKey(ctx context.Context) (string, error) {
	cr, err := c.auth.credentials(ctx)
	if err != nil {
		return "", err
	}
	if cr.SigningKey == "" {
		return "", &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig,
			Err: fmt.Errorf("secret %s has no signingKey", c.auth.secretID)}
	}
	return cr.SigningKey, nil
}

// VerifyWebhook is VerifyJWT with the signing key from the secret. When the signature does not
// match it re-reads the secret (at most once a minute, so forged requests cannot hammer Secrets
// Manager) and tries once more, in case the key was rotated.
func (c *Client) VerifyWebhook(ctx context.Context, header, publicURL string, body []byte, now time.Time) (Claims, error) {
	key, err := c.SigningKey(ctx)
	if err != nil {
		return Claims{}, err
	}
	claims, err := VerifyJWT(key, header, publicURL, body, now)
	if errors.Is(err, ErrSignature) && c.auth.mayRefresh(time.Now()) {
		c.auth.Invalidate()
		key2, kerr := c.SigningKey(ctx)
		if kerr == nil && key2 != key {
			return VerifyJWT(key2, header, publicURL, body, now)
		}
	}
	return claims, err
}

// accessKey applies "Authorization: AccessKey <key>" from the secret.
type accessKey struct {
	secrets  connectors.SecretReader
	secretID string

	mu          sync.Mutex
	lastRefresh time.Time
}

func (a *accessKey) credentials(ctx context.Context) (Credentials, error) {
	var c Credentials
	if a.secrets == nil {
		return c, &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig, Err: errors.New("no secret reader configured")}
	}
	if err := a.secrets.JSON(ctx, a.secretID, &c); err != nil {
		return c, &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig, Err: err}
	}
	return c, nil
}

func (a *accessKey) key(ctx context.Context) (string, error) {
	c, err := a.credentials(ctx)
	if err != nil {
		return "", err
	}
	if c.AccessKey == "" {
		return "", &connectors.Error{System: System, Op: "read credentials", Kind: connectors.KindConfig,
			Err: fmt.Errorf("secret %s has no accessKey", a.secretID)}
	}
	return c.AccessKey, nil
}

func (a *accessKey) Apply(ctx context.Context, req *http.Request) error {
	k, err := a.key(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "AccessKey "+k)
	return nil
}

// Invalidate forgets the cached secret, so a rotated key is picked up.
func (a *accessKey) Invalidate() {
	if a.secrets != nil {
		a.secrets.Invalidate(a.secretID)
	}
}

func (a *accessKey) mayRefresh(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.lastRefresh.IsZero() && now.Sub(a.lastRefresh) < time.Minute {
		return false
	}
	a.lastRefresh = now
	return true
}
