package health

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
)

// Config is what integration-health checks, from the same variables the other functions read
// (so the template passes it the same parameters), plus its own HEALTH_* settings.
type Config struct {
	StateTable string
	// Interval is how often the checks run (HEALTH_CHECK_INTERVAL_MINUTES, default 60); the
	// function itself runs every minute for the gauges.
	Interval time.Duration
	// Skip lists systems not to check (HEALTH_SKIP_SYSTEMS), for deployments that do not use one.
	Skip map[string]bool

	Jira        JiraConfig
	ServiceNow  ServiceNowConfig
	Genesys     GenesysConfig
	MessageBird MessageBirdConfig
	Telemetry   TelemetryConfig
}

// Desk is a JSM service desk and request type cxbridge raises requests in.
type Desk struct {
	ServiceDeskID, RequestTypeID string
	ProjectKey                   string // as configured (JIRA_PROJECTS); "" for MessageBird routes
	Use                          string // "escalations" or "conversations"
}

// JiraConfig is the Jira side of create-escalation, escalation-redrive and messagebird-inbound.
type JiraConfig struct {
	BaseURL, SecretID string
	Desks             []Desk
	Fields            []string // request field ids JIRA_FIELD_MAP fills
	KeyField          string   // JIRA_KEY_FIELD
}

// ServiceNowConfig is the ServiceNow side of servicenow-lookup and the escalations.
type ServiceNowConfig struct {
	BaseURL, SecretID string
	// WriteProbe creates an incident and deletes it again to prove write access
	// (HEALTH_SERVICENOW_WRITE_PROBE, off by default: agents may see it for a moment).
	WriteProbe bool
}

// GenesysConfig is the Genesys side of priority-sync, the link-back and the tier cascade.
type GenesysConfig struct {
	APIBaseURL, LoginBaseURL, SecretID string
	Cascade                            bool
	Queues                             []string // the tier queues observed with TIER_CASCADE
}

// MessageBirdConfig is the MessageBird side of messagebird-inbound.
type MessageBirdConfig struct {
	BaseURL, SecretID, WebhookURL string
	Channels                      []string // channel ids routed by MESSAGEBIRD_CHANNEL_ROUTES
}

// TelemetryConfig is the telemetry side of telemetry-tier.
type TelemetryConfig struct {
	URL, SecretID string
	// ProbeCustomer is a customer id the endpoint knows (HEALTH_TELEMETRY_CUSTOMER_ID); without
	// one a made-up id is sent and a 404 still proves reachability and credentials.
	ProbeCustomer string
}

// ProbeCustomerDefault is the customer id sent when none is configured.
const ProbeCustomerDefault = "cxbridge-health-probe"

var (
	projectKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]+$`)
	digits     = regexp.MustCompile(`^[0-9]+$`)
)

// LoadConfig reads the configuration; problems are recorded in r, naming the variable.
func LoadConfig(r *config.Reader) Config {
	c := Config{
		StateTable: r.String("STATE_TABLE", ""),
		Interval:   time.Duration(r.Int("HEALTH_CHECK_INTERVAL_MINUTES", 60, 5, 1440)) * time.Minute,
		Skip:       map[string]bool{},
	}
	for _, s := range r.List("HEALTH_SKIP_SYSTEMS", nil) {
		s = strings.ToLower(s)
		switch s {
		case Jira, ServiceNow, Genesys, MessageBird, Telemetry:
			c.Skip[s] = true
		default:
			r.Problem("HEALTH_SKIP_SYSTEMS", "%q is not a system; want a comma-separated list of jira, servicenow, genesys, messagebird, telemetry", s)
		}
	}

	j := &c.Jira
	j.BaseURL = strings.TrimRight(r.String("JIRA_BASE_URL", ""), "/")
	j.SecretID = r.String("JIRA_SECRET_ID", "cxbridge/jira")
	j.KeyField = r.String("JIRA_KEY_FIELD", "labels")
	projects := r.Map("JIRA_PROJECTS")
	for _, key := range sortedKeys(projects) {
		desk, rt, ok := strings.Cut(projects[key], "/")
		if !projectKey.MatchString(key) || !ok || !digits.MatchString(desk) || !digits.MatchString(rt) {
			r.Problem("JIRA_PROJECTS", "%s=%s: want <projectKey>=<serviceDeskId>/<requestTypeId>, e.g. SUPP=1/10", key, projects[key])
			continue
		}
		j.Desks = append(j.Desks, Desk{ServiceDeskID: desk, RequestTypeID: rt, ProjectKey: key, Use: "escalations"})
	}
	fields := map[string]json.RawMessage{}
	if raw := r.String("JIRA_FIELD_MAP", `{"summary":"{{summary}}","description":"{{details}}"}`); json.Unmarshal([]byte(raw), &fields) != nil {
		r.Problem("JIRA_FIELD_MAP", "is not a JSON object of request field id -> template")
	}
	j.Fields = sortedKeys(fields)

	mbDesk, mbType := r.String("MESSAGEBIRD_SERVICE_DESK_ID", ""), r.String("MESSAGEBIRD_REQUEST_TYPE_ID", "")
	if mbDesk != "" && mbType != "" {
		j.Desks = append(j.Desks, Desk{ServiceDeskID: mbDesk, RequestTypeID: mbType, Use: "conversations"})
	}
	routes := r.Map("MESSAGEBIRD_CHANNEL_ROUTES")
	for _, ch := range sortedKeys(routes) {
		desk, rt, ok := strings.Cut(routes[ch], "/")
		if !ok || !digits.MatchString(desk) || !digits.MatchString(rt) {
			r.Problem("MESSAGEBIRD_CHANNEL_ROUTES", "%s=%s: want <channel>=<serviceDeskId>/<requestTypeId>", ch, routes[ch])
			continue
		}
		j.Desks = appendDesk(j.Desks, Desk{ServiceDeskID: desk, RequestTypeID: rt, Use: "conversations"})
		if !platforms[strings.ToLower(ch)] {
			c.MessageBird.Channels = append(c.MessageBird.Channels, ch)
		}
	}

	sn := &c.ServiceNow
	sn.BaseURL = strings.TrimRight(r.String("SERVICENOW_BASE_URL", ""), "/")
	sn.SecretID = r.String("SERVICENOW_SECRET_ID", "cxbridge/servicenow")
	sn.WriteProbe = r.Bool("HEALTH_SERVICENOW_WRITE_PROBE", false)

	g := &c.Genesys
	g.APIBaseURL = strings.TrimRight(r.String("GENESYS_API_BASE_URL", "https://api.mypurecloud.com"), "/")
	g.LoginBaseURL = strings.TrimRight(r.String("GENESYS_LOGIN_BASE_URL", "https://login.mypurecloud.com"), "/")
	g.SecretID = r.String("GENESYS_SECRET_ID", "")
	g.Cascade = r.Bool("TIER_CASCADE", false)
	for _, name := range []string{"TIER_L1_QUEUE_ID", "TIER_L2_QUEUE_ID", "TIER_L3_QUEUE_ID"} {
		if q := r.String(name, ""); q != "" {
			g.Queues = append(g.Queues, q)
		}
	}

	mb := &c.MessageBird
	mb.BaseURL = r.String("MESSAGEBIRD_BASE_URL", "https://conversations.messagebird.com/v1")
	mb.SecretID = r.String("MESSAGEBIRD_SECRET_ID", "cxbridge/messagebird")
	mb.WebhookURL = r.String("MESSAGEBIRD_WEBHOOK_URL", "")

	t := &c.Telemetry
	t.URL = r.String("TELEMETRY_URL", "")
	t.SecretID = r.String("TELEMETRY_SECRET_ID", "cxbridge/telemetry")
	t.ProbeCustomer = r.String("HEALTH_TELEMETRY_CUSTOMER_ID", "")
	return c
}

// platforms are MESSAGEBIRD_CHANNEL_ROUTES keys that name a platform, not a channel id.
var platforms = map[string]bool{"whatsapp": true, "sms": true, "messenger": true, "facebook": true, "telegram": true,
	"line": true, "instagram": true, "email": true, "wechat": true, "viber": true, "googlebm": true}

func appendDesk(ds []Desk, d Desk) []Desk {
	for _, o := range ds {
		if o.ServiceDeskID == d.ServiceDeskID && o.RequestTypeID == d.RequestTypeID && o.Use == d.Use {
			return ds
		}
	}
	return append(ds, d)
}

// checks reports whether a system is configured and not skipped.
func (c Config) checks(system string) bool {
	if c.Skip[system] {
		return false
	}
	switch system {
	case Jira:
		return c.Jira.BaseURL != ""
	case ServiceNow:
		return c.ServiceNow.BaseURL != ""
	case Genesys:
		return c.Genesys.SecretID != ""
	case MessageBird:
		return c.MessageBird.WebhookURL != ""
	case Telemetry:
		return c.Telemetry.URL != ""
	}
	return false
}

// Systems lists the systems the configuration checks.
func (c Config) Systems() []string {
	var out []string
	for _, s := range []string{Jira, ServiceNow, Genesys, MessageBird, Telemetry} {
		if c.checks(s) {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (d Desk) String() string {
	s := fmt.Sprintf("desk %s / request type %s", d.ServiceDeskID, d.RequestTypeID)
	if d.ProjectKey != "" {
		s = d.ProjectKey + " (" + s + ")"
	}
	return s
}
