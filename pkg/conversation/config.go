package conversation

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/mask"
)

// Route is where a channel's new conversations become requests.
type Route struct {
	ServiceDeskID string
	RequestTypeID string
}

// Config is messagebird-inbound's configuration. Service desks, request types, templates and
// notification texts come from here, never from code.
type Config struct {
	// WebhookURL is the exact public URL registered with MessageBird; the JWT's url_hash covers
	// it, so it is configuration, never rebuilt from the request.
	WebhookURL          string
	MessageBirdBaseURL  string
	MessageBirdSecretID string // {"accessKey","signingKey"}
	JiraBaseURL         string
	JiraSecretID        string
	// InboundSecretID holds {"jiraWebhookSecret":"..."}, the secret of the Jira admin webhook.
	InboundSecretID string
	// JiraAccountID is cxbridge's own Jira account; when empty it is read once from
	// GET /rest/api/3/myself. Comments by this account are never sent to a customer.
	JiraAccountID string
	StateTable    string

	// Default is the service desk and request type for channels Routes does not name.
	Default Route
	// Routes by channel id or platform ("whatsapp", "sms").
	Routes map[string]Route

	// EmailDetail is the contact customDetails key holding the customer's e-mail address.
	EmailDetail string
	// EmailTemplate builds an e-mail address from the contact when it has none, e.g.
	// "{msisdn}@whatsapp.example.com"; empty: requests without an address are raised by the
	// integration account, with the contact named in the description.
	EmailTemplate string

	// WindowTemplate is sent instead of a reply outside WhatsApp's 24-hour window; nil: the
	// reply is not delivered and an internal comment says so.
	WindowTemplate *messagebird.Template
	// WindowTemplateParams are the template's parameters; {requestKey}, {agent} and {status}
	// are replaced.
	WindowTemplateParams []string
	// StatusNotifications maps a status name, or a status category key (new, indeterminate,
	// done), to the text sent to the end user when a request moves into it; {requestKey} and
	// {status} are replaced. Empty: no notifications.
	StatusNotifications map[string]string

	MaxAttachmentBytes int64
	// Budget bounds the work of one webhook; the rest of the Lambda timeout is headroom.
	Budget time.Duration
	// SearchLag is how long a new request may stay invisible to JQL search
	// (JIRA_SEARCH_LAG_SECONDS): a request create whose outcome is unknown is looked for by its
	// label, and not created again, until this has passed.
	SearchLag time.Duration

	Masker *mask.Masker
}

// LoadConfig reads the configuration; problems are recorded in r (see r.Err).
func LoadConfig(r *config.Reader) Config {
	c := Config{
		WebhookURL:          r.URL("MESSAGEBIRD_WEBHOOK_URL", ""),
		MessageBirdBaseURL:  r.URL("MESSAGEBIRD_BASE_URL", messagebird.DefaultBaseURL),
		MessageBirdSecretID: r.Required("MESSAGEBIRD_SECRET_ID"),
		JiraBaseURL:         r.URL("JIRA_BASE_URL", ""),
		JiraSecretID:        r.Required("JIRA_SECRET_ID"),
		InboundSecretID:     r.Required("INBOUND_SECRET_ID"),
		JiraAccountID:       r.String("JIRA_ACCOUNT_ID", ""),
		StateTable:          r.Required("STATE_TABLE"),
		Default: Route{
			ServiceDeskID: r.Required("MESSAGEBIRD_SERVICE_DESK_ID"),
			RequestTypeID: r.Required("MESSAGEBIRD_REQUEST_TYPE_ID"),
		},
		Routes:              map[string]Route{},
		EmailDetail:         r.String("MESSAGEBIRD_CUSTOMER_EMAIL_DETAIL", "email"),
		EmailTemplate:       r.String("MESSAGEBIRD_CUSTOMER_EMAIL_TEMPLATE", ""),
		StatusNotifications: map[string]string{},
		MaxAttachmentBytes:  int64(r.Int("MESSAGEBIRD_MAX_ATTACHMENT_BYTES", 10<<20, 1024, 100<<20)),
		Budget:              r.Millis("MESSAGEBIRD_WEBHOOK_BUDGET_MS", 15*time.Second, time.Second, 25*time.Second),
		SearchLag:           r.Seconds("JIRA_SEARCH_LAG_SECONDS", 30*time.Second, 0, 10*time.Minute),
	}
	if id := c.Default.ServiceDeskID; id != "" && !isDigits(id) {
		r.Problem("MESSAGEBIRD_SERVICE_DESK_ID", "is %q; want a numeric JSM service desk id", id)
	}
	if id := c.Default.RequestTypeID; id != "" && !isDigits(id) {
		r.Problem("MESSAGEBIRD_REQUEST_TYPE_ID", "is %q; want a numeric JSM request type id", id)
	}
	for channel, v := range r.Map("MESSAGEBIRD_CHANNEL_ROUTES") {
		desk, rt, ok := strings.Cut(v, "/")
		if !ok || !isDigits(desk) || !isDigits(rt) {
			r.Problem("MESSAGEBIRD_CHANNEL_ROUTES", "%s=%s: want <channel id or platform>=<serviceDeskId>/<requestTypeId>, e.g. whatsapp=1/11", channel, v)
			continue
		}
		c.Routes[strings.ToLower(channel)] = Route{ServiceDeskID: desk, RequestTypeID: rt}
	}
	if t := r.String("MESSAGEBIRD_CUSTOMER_EMAIL_TEMPLATE", ""); t != "" && (!strings.Contains(t, "@") || !strings.Contains(t, "{msisdn}")) {
		r.Problem("MESSAGEBIRD_CUSTOMER_EMAIL_TEMPLATE", "is %q; want an address containing {msisdn}, e.g. {msisdn}@whatsapp.example.com", t)
	}
	if v := r.String("MESSAGEBIRD_WINDOW_TEMPLATE", ""); v != "" {
		parts := strings.Split(v, "/")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			r.Problem("MESSAGEBIRD_WINDOW_TEMPLATE", "is %q; want <namespace>/<template name>/<language>, e.g. 5ba2a7d4_0d6f_4d7e/support_reply/en", v)
		} else {
			c.WindowTemplate = &messagebird.Template{Namespace: parts[0], Name: parts[1], Language: parts[2]}
		}
	}
	c.WindowTemplateParams = r.List("MESSAGEBIRD_WINDOW_TEMPLATE_PARAMS", nil)
	for k, v := range r.Map("MESSAGEBIRD_STATUS_NOTIFICATIONS") {
		if v == "" {
			r.Problem("MESSAGEBIRD_STATUS_NOTIFICATIONS", "%s has no text", k)
			continue
		}
		c.StatusNotifications[strings.ToLower(k)] = v
	}
	extra, err := mask.ParseExtra(r.String("MASK_EXTRA_PATTERNS", ""))
	if err != nil {
		r.Problem("MASK_EXTRA_PATTERNS", "%v", err)
	}
	if c.Masker, err = mask.New(mask.EgressRules(), extra); err != nil {
		r.Problem("MASK_EXTRA_PATTERNS", "%v", err)
		c.Masker = mask.Egress
	}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err == nil && u.Scheme != "https" && !local(u) {
			r.Problem("MESSAGEBIRD_WEBHOOK_URL", "is %q; MessageBird calls an https:// URL", c.WebhookURL)
		}
	}
	return c
}

// local allows http only for loopback addresses (the local stack and tests).
func local(u *url.URL) bool {
	h := u.Hostname()
	return h == "127.0.0.1" || h == "localhost" || h == "::1"
}

// route picks the service desk and request type for a channel.
func (c Config) route(channelID, platform string) Route {
	if r, ok := c.Routes[strings.ToLower(channelID)]; ok {
		return r
	}
	if r, ok := c.Routes[strings.ToLower(platform)]; ok {
		return r
	}
	return c.Default
}

// notification returns the text configured for a status (by name, then by category key).
func (c Config) notification(status, category string) (string, bool) {
	if t, ok := c.StatusNotifications[strings.ToLower(strings.TrimSpace(status))]; ok {
		return t, true
	}
	t, ok := c.StatusNotifications[strings.ToLower(category)]
	return t, ok
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// fill replaces {name} placeholders.
func fill(text string, values map[string]string) string {
	for k, v := range values {
		text = strings.ReplaceAll(text, "{"+k+"}", v)
	}
	return text
}

func (r Route) String() string {
	return fmt.Sprintf("service desk %s, request type %s", r.ServiceDeskID, r.RequestTypeID)
}
