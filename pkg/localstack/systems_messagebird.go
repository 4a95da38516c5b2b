package localstack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

// MessageBird keys and addresses of the local world.
const (
	LocalMessageBirdAccessKey  = "local-messagebird-access-key"
	LocalMessageBirdSigningKey = "local-messagebird-signing-key"
	// LocalMessageBirdWebhookURL stands for the public URL registered with MessageBird; it is only
	// ever hashed into the JWT's url_hash, so it need not resolve.
	LocalMessageBirdWebhookURL = "https://hooks.cxbridge.local/prod/messagebird/webhook"
	LocalJiraWebhookSecret     = "local-jira-webhook-secret"
	// LocalChatDeskID and LocalChatRequestType are the Jira fake's service desk for conversations
	// (project CHAT), so the events' request keys do not depend on other functions' seed data.
	LocalChatDeskID      = "7"
	LocalChatRequestType = "71"
)

func init() {
	parameters(map[string]string{
		"MessageBirdWebhookUrl":          LocalMessageBirdWebhookURL,
		"MessageBirdServiceDeskId":       LocalChatDeskID,
		"MessageBirdRequestTypeId":       LocalChatRequestType,
		"MessageBirdStatusNotifications": "done=Your request {requestKey} is {status}. Write to us again to open a new one.",
	})
	localEventDefaults["MESSAGEBIRD_SIGNING_KEY"] = LocalMessageBirdSigningKey
	localEventDefaults["MESSAGEBIRD_WEBHOOK_URL"] = LocalMessageBirdWebhookURL
	localEventDefaults["MESSAGEBIRD_BASE_URL"] = messagebird.DefaultBaseURL
	localEventDefaults["JIRA_WEBHOOK_SECRET"] = LocalJiraWebhookSecret
	register(system{
		params: []string{"MessageBirdBaseUrl"},
		name:   "messagebird",
		real:   func(getenv func(string) string) bool { return getenv("MESSAGEBIRD_BASE_URL") != "" },
		setReal: func(s *Stack, getenv func(string) string) string {
			s.values["MessageBirdBaseUrl"] = getenv("MESSAGEBIRD_BASE_URL")
			return getenv("MESSAGEBIRD_BASE_URL")
		},
		start: func(s *Stack) (any, func()) {
			mb := messagebirdtest.New(LocalMessageBirdAccessKey, LocalMessageBirdSigningKey)
			s.Secrets.Put("cxbridge/messagebird", `{"accessKey":"`+LocalMessageBirdAccessKey+`","signingKey":"`+LocalMessageBirdSigningKey+`"}`)
			// The inbound secret holds every inbound caller's key; priority-sync adds its own.
			if err := s.Secrets.AddJSONFields("cxbridge/inbound", map[string]string{"jiraWebhookSecret": LocalJiraWebhookSecret}); err != nil {
				panic(err)
			}
			s.values["MessageBirdBaseUrl"] = mb.URL()
			s.setEventVar("MESSAGEBIRD_BASE_URL", mb.URL())
			return mb, mb.Close
		},
	})
	prepareWith("messagebird-inbound", func(_ context.Context, _ *Stack, vars func(string) string, event []byte) ([]byte, error) {
		return prepareWebhook(event, vars)
	})
}

// MessageBird is the MessageBird fake, or nil when MESSAGEBIRD_BASE_URL points at the real API.
func (s *Stack) MessageBird() *messagebirdtest.Server {
	return fake[*messagebirdtest.Server](s, "messagebird")
}

// prepareWebhook fills in a messagebird-inbound event (an API Gateway REST API event):
//
//   - {{MESSAGEBIRD_BASE_URL}} in the body becomes MESSAGEBIRD_BASE_URL (the local fake's
//     address, where seeded media files live);
//   - a MessageBird-Signature-JWT header "local-sign [key=K] [jti=J] [ttl=D] [url=U]" becomes a
//     JWT signed like MessageBird's, with MESSAGEBIRD_SIGNING_KEY over MESSAGEBIRD_WEBHOOK_URL and
//     the body, valid from now for D (default 5m; negative for an expired one);
//   - an X-Hub-Signature header "local-sign [key=K]" becomes sha256=HMAC(JIRA_WEBHOOK_SECRET, body).
func prepareWebhook(event []byte, vars func(string) string) ([]byte, error) {
	var ev map[string]any
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, fmt.Errorf("event is not a JSON object: %w", err)
	}
	body, _ := ev["body"].(string)
	body = strings.ReplaceAll(body, "{{MESSAGEBIRD_BASE_URL}}", strings.TrimRight(vars("MESSAGEBIRD_BASE_URL"), "/"))
	ev["body"] = body
	headers, _ := ev["headers"].(map[string]any)
	for name, v := range headers {
		s, _ := v.(string)
		rest, ok := strings.CutPrefix(s, "local-sign")
		if !ok {
			continue
		}
		opts := map[string]string{}
		for _, f := range strings.Fields(rest) {
			k, v, _ := strings.Cut(f, "=")
			opts[k] = v
		}
		switch strings.ToLower(name) {
		case strings.ToLower(messagebird.SignatureHeader):
			token, err := signJWT(body, opts, vars)
			if err != nil {
				return nil, err
			}
			headers[name] = token
		case strings.ToLower(jira.HeaderSignature):
			key := opts["key"]
			if key == "" {
				key = vars("JIRA_WEBHOOK_SECRET")
			}
			headers[name] = jira.Sign([]byte(key), []byte(body))
		default:
			return nil, fmt.Errorf("header %s: local-sign applies to %s and %s only", name, messagebird.SignatureHeader, jira.HeaderSignature)
		}
	}
	return json.MarshalIndent(ev, "", "  ")
}

type mbClaims struct {
	jwt.RegisteredClaims
	URLHash     string `json:"url_hash"`
	PayloadHash string `json:"payload_hash,omitempty"`
}

func signJWT(body string, opts map[string]string, vars func(string) string) (string, error) {
	key, url := opts["key"], opts["url"]
	if key == "" {
		key = vars("MESSAGEBIRD_SIGNING_KEY")
	}
	if url == "" {
		url = vars("MESSAGEBIRD_WEBHOOK_URL")
	}
	if key == "" || url == "" {
		return "", errors.New("signing a MessageBird event needs MESSAGEBIRD_SIGNING_KEY and MESSAGEBIRD_WEBHOOK_URL")
	}
	ttl := 5 * time.Minute
	if v := opts["ttl"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return "", fmt.Errorf("local-sign ttl=%s: %w", v, err)
		}
		ttl = d
	}
	jti := opts["jti"]
	if jti == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		jti = hex.EncodeToString(b[:])
	}
	now := time.Now()
	start := now
	if ttl < 0 { // an expired token was valid once
		start = now.Add(2 * ttl)
	}
	c := mbClaims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: messagebird.Issuer, ID: jti, IssuedAt: jwt.NewNumericDate(start),
			NotBefore: jwt.NewNumericDate(start), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))},
		URLHash: sha256Hex(url),
	}
	if body != "" {
		c.PayloadHash = sha256Hex(body)
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// ConnectWebhooks points the MessageBird and Jira fakes' webhooks at a running local API (base
// is its address, e.g. http://127.0.0.1:3000), so an end user's message and an agent's comment
// reach messagebird-inbound as they would in production. Systems that are real are left alone:
// register their webhooks in their consoles.
func (s *Stack) ConnectWebhooks(base string) {
	if mb := s.MessageBird(); mb != nil {
		mb.SetWebhook(messagebirdtest.Webhook{URL: base + "/messagebird/webhook", PublicURL: LocalMessageBirdWebhookURL})
	}
	if j := s.Jira(); j != nil {
		j.RegisterWebhook(base+"/jira/webhook", LocalJiraWebhookSecret)
	}
}
