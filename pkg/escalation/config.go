package escalation

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/mask"
)

// Config is the configuration of create-escalation and escalation-redrive. Everything a
// deployment differs in (desks, request types, field mappings, thresholds, budgets) is here,
// never in code.
type Config struct {
	StateTable       string
	IdempotencyTable string

	// Targets is the default target per trigger (ESCALATION_TARGETS).
	Targets map[Trigger]string
	// HoldThreshold: a hold_time escalation below it is skipped (HOLD_THRESHOLD_SECONDS).
	HoldThreshold time.Duration
	// Budget bounds the delivery attempts of one call (ESCALATION_BUDGET_MS), well under the
	// data action's timeout; what does not fit is queued.
	Budget time.Duration
	// IdempotencyTTL is how long a key replays its first answer (ESCALATION_IDEMPOTENCY_HOURS).
	IdempotencyTTL time.Duration
	// DuplicateWait is how long a concurrent duplicate waits for the first answer
	// (ESCALATION_DUPLICATE_WAIT_MS).
	DuplicateWait time.Duration
	// MaxAge: a queued escalation still undelivered after it is marked failed
	// (ESCALATION_MAX_AGE_MINUTES).
	MaxAge time.Duration
	// OutageMessage is what the IVR may play while calls are linked to a master ticket, unless
	// the outage flag carries its own (OUTAGE_MESSAGE).
	OutageMessage string
	// NoteMaxLinks caps the calls listed in one master note (OUTAGE_NOTE_MAX_LINKS); the rest
	// follow in the next minute's note.
	NoteMaxLinks int
	// AutoOutage is the automatic outage detection of each target that opts in
	// (<TARGET>_OUTAGE_THRESHOLD, ..._BREAKER_SECONDS); a target without an entry never declares
	// an outage by itself.
	AutoOutage map[string]AutoOutage
	// OutageQuiet ends an automatic outage that nobody confirmed once this long has passed
	// without a matching escalation (OUTAGE_QUIET_MINUTES).
	OutageQuiet time.Duration
	// LinkBackPrefix prefixes the Genesys participant attributes written after delivery
	// (LINKBACK_ATTRIBUTE_PREFIX): <prefix>TicketKey, <prefix>TicketUrl, ...
	LinkBackPrefix string
	// LinkBackTimeout bounds the Genesys link-back (LINKBACK_TIMEOUT_MS).
	LinkBackTimeout time.Duration
	// MaskExtra are extra named patterns masked before egress (MASK_EXTRA_PATTERNS).
	MaskExtra map[string]string
	// Repeat: which escalations join their caller's open ticket instead of raising another
	// (REPEAT_CALLER_TRIGGERS, REPEAT_CALLER_HOURS; repeat.go).
	Repeat RepeatCallers

	Jira       JiraConfig
	ServiceNow ServiceNowConfig

	GenesysAPIBaseURL   string
	GenesysLoginBaseURL string
	GenesysSecretID     string
}

// JiraConfig configures the Jira Service Management target. Empty BaseURL disables it.
type JiraConfig struct {
	BaseURL  string // JIRA_BASE_URL: https://{site}.atlassian.net, or the OAuth gateway
	SecretID string // JIRA_SECRET_ID
	// BrowseURL is where people open issues (JIRA_BROWSE_URL, default the base URL); set it to
	// the site when the base URL is the api.atlassian.com gateway.
	BrowseURL string
	// Projects maps a project key to its service desk and request type (JIRA_PROJECTS:
	// "SUPP=1/10;BILL=2/20").
	Projects map[string]JiraProject
	// Seed 002's project-key rules, in order: AlwaysUseDefault, VersionProjects,
	// ProductProjects, the product name itself, DefaultProject.
	DefaultProject   string            // JIRA_DEFAULT_PROJECT
	AlwaysUseDefault bool              // JIRA_ALWAYS_USE_DEFAULT_PROJECT
	VersionProjects  map[string]string // JIRA_VERSION_PROJECTS: "2.1=CORE;Billing:3.0=BILL"
	ProductProjects  map[string]string // JIRA_PRODUCT_PROJECTS: "Billing=BILL;Mobile App=MOB"
	// Fields maps request field ids to templates over the escalation (JIRA_FIELD_MAP, JSON).
	Fields map[string]any
	// KeyField holds the escalation id on the request: "labels" (a label, the default) or a
	// custom field id (JIRA_KEY_FIELD). It must be on the request type's form (it may be
	// hidden): Jira refuses fields that are not.
	KeyField string
	// SearchLag is how long a new request may stay invisible to JQL search
	// (JIRA_SEARCH_LAG_SECONDS). A recovering attempt that does not find its request before
	// then does not create one; it queues the escalation and looks again later.
	SearchLag time.Duration
}

// JiraProject is where a project's escalations are raised.
type JiraProject struct {
	ServiceDeskID string
	RequestTypeID string
}

// ServiceNowConfig configures the ServiceNow target. Empty BaseURL disables it.
type ServiceNowConfig struct {
	BaseURL         string // SERVICENOW_BASE_URL
	SecretID        string // SERVICENOW_SECRET_ID
	Category        string // SERVICENOW_CATEGORY, a choice value (lowercase), default inquiry
	Impact          int    // SERVICENOW_IMPACT 1-3, default 3
	Urgency         int    // SERVICENOW_URGENCY 1-3, default 3
	AssignmentGroup string // SERVICENOW_ASSIGNMENT_GROUP sys_id, optional
}

// DefaultJiraFields is JIRA_FIELD_MAP when unset.
const DefaultJiraFields = `{"summary":"{{summary}}","description":"{{details}}"}`

var (
	customFieldRe = regexp.MustCompile(`^customfield_[0-9]+$`)
	fieldIDRe     = regexp.MustCompile(`^([a-z][a-zA-Z0-9_]*|customfield_[0-9]+)$`)
	sysIDRe       = regexp.MustCompile(`^[0-9a-f]{32}$`)
	projectKeyRe  = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,254}$`)
	deskTypeRe    = regexp.MustCompile(`^([0-9]+)/([0-9]+)$`)
)

// LoadConfig reads the configuration; problems are recorded in r (see r.Err), so a function
// reporting them names every variable at once.
func LoadConfig(r *config.Reader) Config {
	c := Config{
		StateTable:       r.Required("STATE_TABLE"),
		IdempotencyTable: r.Required("IDEMPOTENCY_TABLE"),
		HoldThreshold:    r.Seconds("HOLD_THRESHOLD_SECONDS", 180*time.Second, 0, 24*time.Hour),
		Budget:           r.Millis("ESCALATION_BUDGET_MS", 6*time.Second, 500*time.Millisecond, 12*time.Second), // under the 15 s function timeout
		IdempotencyTTL:   time.Duration(r.Int("ESCALATION_IDEMPOTENCY_HOURS", 24, 1, 24*30)) * time.Hour,
		DuplicateWait:    r.Millis("ESCALATION_DUPLICATE_WAIT_MS", 2*time.Second, 0, 20*time.Second),
		MaxAge:           time.Duration(r.Int("ESCALATION_MAX_AGE_MINUTES", 24*60, 5, 14*24*60)) * time.Minute,
		OutageMessage:    r.String("OUTAGE_MESSAGE", "We are aware of a service outage affecting this request. Your call has been noted against the master incident."),
		NoteMaxLinks:     r.Int("OUTAGE_NOTE_MAX_LINKS", 200, 1, 1000),
		OutageQuiet:      time.Duration(r.Int("OUTAGE_QUIET_MINUTES", 30, 1, 24*60)) * time.Minute,
		LinkBackPrefix:   r.String("LINKBACK_ATTRIBUTE_PREFIX", "escalation"),
		LinkBackTimeout:  r.Millis("LINKBACK_TIMEOUT_MS", 1500*time.Millisecond, 100*time.Millisecond, 10*time.Second),

		GenesysAPIBaseURL:   r.String("GENESYS_API_BASE_URL", ""),
		GenesysLoginBaseURL: r.String("GENESYS_LOGIN_BASE_URL", ""),
		GenesysSecretID:     r.String("GENESYS_SECRET_ID", ""),
	}
	extra, err := mask.ParseExtra(r.String("MASK_EXTRA_PATTERNS", ""))
	if err != nil {
		r.Problem("MASK_EXTRA_PATTERNS", "%v", err)
	}
	c.MaskExtra = extra
	if !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.]{0,63}$`).MatchString(c.LinkBackPrefix) {
		r.Problem("LINKBACK_ATTRIBUTE_PREFIX", "is %q; want a letter then letters, digits, _ or . (at most 64)", c.LinkBackPrefix)
	}
	c.Jira = loadJira(r)
	c.ServiceNow = loadServiceNow(r)
	c.AutoOutage = map[string]AutoOutage{}
	for _, t := range []struct{ target, prefix, base string }{{Jira, "JIRA", "JIRA_BASE_URL"}, {ServiceNow, "SERVICENOW", "SERVICENOW_BASE_URL"}} {
		if a := loadAutoOutage(r, t.prefix); a.On() {
			if !c.enabled(t.target) {
				r.Problem(t.prefix+"_OUTAGE_THRESHOLD", "automatic outage detection for %s is set, but %s is empty", t.target, t.base)
				continue
			}
			c.AutoOutage[t.target] = a
		}
	}
	c.Repeat = loadRepeatCallers(r)
	// With neither target configured the functions still start (a deployment may not use
	// escalations, and escalation-redrive runs every minute regardless); an escalation then
	// fails with reason "configuration", which alarms.
	c.Targets = map[Trigger]string{}
	for _, t := range Triggers {
		c.Targets[t] = c.defaultTarget(t)
	}
	for trig, target := range r.Map("ESCALATION_TARGETS") {
		t := Trigger(strings.ToLower(trig))
		target = strings.ToLower(target)
		switch {
		case !validTrigger(t):
			r.Problem("ESCALATION_TARGETS", "unknown trigger %q; want hold_time, vip, wrap_up or manual", trig)
		case target != Jira && target != ServiceNow:
			r.Problem("ESCALATION_TARGETS", "target %q for %s; want jira or servicenow", target, trig)
		case !c.enabled(target):
			r.Problem("ESCALATION_TARGETS", "%s goes to %s, which is not configured (its base URL is empty)", trig, target)
		default:
			c.Targets[t] = target
		}
	}
	return c
}

// loadAutoOutage reads one target's automatic outage detection (<prefix>_OUTAGE_*).
func loadAutoOutage(r *config.Reader, prefix string) AutoOutage {
	a := AutoOutage{
		Threshold:  r.Int(prefix+"_OUTAGE_THRESHOLD", 0, 0, 100000),
		Window:     time.Duration(r.Int(prefix+"_OUTAGE_WINDOW_MINUTES", 10, 1, maxOutageWindowMinutes)) * time.Minute,
		BreakerFor: r.Seconds(prefix+"_OUTAGE_BREAKER_SECONDS", 0, 0, 24*time.Hour),
	}
	for _, name := range r.List(prefix+"_OUTAGE_TOPIC", []string{"wrapUpCode"}) {
		field, ok := topicField(name)
		if !ok {
			r.Problem(prefix+"_OUTAGE_TOPIC", "%q is not an input a topic can be made of; want %s (comma-separated for several)", name, strings.Join(TopicFields, ", "))
			continue
		}
		if !slices.Contains(a.Topic, field) {
			a.Topic = append(a.Topic, field)
		}
	}
	if len(a.Topic) == 0 {
		a.Topic = []string{"wrapUpCode"}
	}
	return a
}

func loadJira(r *config.Reader) JiraConfig {
	j := JiraConfig{BaseURL: r.String("JIRA_BASE_URL", "")}
	if j.BaseURL == "" {
		return j
	}
	j.BaseURL = r.URL("JIRA_BASE_URL", "")
	j.SecretID = r.Required("JIRA_SECRET_ID")
	j.BrowseURL = strings.TrimRight(r.String("JIRA_BROWSE_URL", j.BaseURL), "/")
	j.AlwaysUseDefault = r.Bool("JIRA_ALWAYS_USE_DEFAULT_PROJECT", false)
	j.SearchLag = r.Seconds("JIRA_SEARCH_LAG_SECONDS", 30*time.Second, 0, 10*time.Minute)
	j.KeyField = r.String("JIRA_KEY_FIELD", "labels")
	if j.KeyField != "labels" && !customFieldRe.MatchString(j.KeyField) {
		r.Problem("JIRA_KEY_FIELD", "is %q; want labels or a custom field id such as customfield_10051", j.KeyField)
	}
	j.Projects = map[string]JiraProject{}
	for key, v := range r.Map("JIRA_PROJECTS") {
		m := deskTypeRe.FindStringSubmatch(v)
		switch {
		case !projectKeyRe.MatchString(key):
			r.Problem("JIRA_PROJECTS", "%q is not a Jira project key (upper case, e.g. SUPP)", key)
		case m == nil:
			r.Problem("JIRA_PROJECTS", "%s=%s: want <serviceDeskId>/<requestTypeId>, e.g. SUPP=1/10", key, v)
		default:
			j.Projects[key] = JiraProject{ServiceDeskID: m[1], RequestTypeID: m[2]}
		}
	}
	if len(j.Projects) == 0 {
		r.Problem("JIRA_PROJECTS", "is required with JIRA_BASE_URL: <projectKey>=<serviceDeskId>/<requestTypeId>;...")
	}
	j.DefaultProject = r.String("JIRA_DEFAULT_PROJECT", "")
	if j.DefaultProject == "" && len(j.Projects) == 1 {
		for k := range j.Projects {
			j.DefaultProject = k
		}
	}
	if _, ok := j.Projects[j.DefaultProject]; !ok && len(j.Projects) > 0 {
		r.Problem("JIRA_DEFAULT_PROJECT", "is %q; want one of the keys of JIRA_PROJECTS (%s)", j.DefaultProject, strings.Join(sortedKeys(j.Projects), ", "))
	}
	j.VersionProjects = projectMap(r, "JIRA_VERSION_PROJECTS", j.Projects)
	j.ProductProjects = projectMap(r, "JIRA_PRODUCT_PROJECTS", j.Projects)
	raw := r.String("JIRA_FIELD_MAP", DefaultJiraFields)
	if err := json.Unmarshal([]byte(raw), &j.Fields); err != nil || j.Fields == nil {
		r.Problem("JIRA_FIELD_MAP", `want a JSON object of request field id -> template, e.g. %s`, DefaultJiraFields)
		return j
	}
	for id, tpl := range j.Fields {
		if !fieldIDRe.MatchString(id) {
			r.Problem("JIRA_FIELD_MAP", "%q is not a request field id (summary, description, customfield_10050, ...)", id)
		}
		if id == j.KeyField && id != "labels" {
			r.Problem("JIRA_FIELD_MAP", "%s holds the escalation id (JIRA_KEY_FIELD); do not map it", id)
		}
		if err := checkTemplate(tpl); err != nil {
			r.Problem("JIRA_FIELD_MAP", "%s: %v", id, err)
		}
	}
	if l, ok := j.Fields["labels"]; ok {
		if _, list := l.([]any); !list {
			r.Problem("JIRA_FIELD_MAP", `labels must be a list of templates, e.g. ["genesys","{{trigger}}"]`)
		}
	}
	if _, ok := j.Fields["summary"]; !ok {
		r.Problem("JIRA_FIELD_MAP", "has no summary; every request type requires one")
	}
	return j
}

func projectMap(r *config.Reader, name string, projects map[string]JiraProject) map[string]string {
	out := map[string]string{}
	for k, v := range r.Map(name) {
		if _, ok := projects[v]; !ok {
			r.Problem(name, "%s maps to project %q, which is not in JIRA_PROJECTS", k, v)
			continue
		}
		out[strings.ToLower(k)] = v
	}
	return out
}

func loadServiceNow(r *config.Reader) ServiceNowConfig {
	s := ServiceNowConfig{BaseURL: r.String("SERVICENOW_BASE_URL", "")}
	if s.BaseURL == "" {
		return s
	}
	s.BaseURL = r.URL("SERVICENOW_BASE_URL", "")
	s.SecretID = r.Required("SERVICENOW_SECRET_ID")
	s.Category = r.String("SERVICENOW_CATEGORY", "inquiry")
	if s.Category != strings.ToLower(s.Category) || strings.ContainsAny(s.Category, " ^=") {
		r.Problem("SERVICENOW_CATEGORY", "is %q; want the choice value (lowercase, e.g. inquiry), not its label", s.Category)
	}
	s.Impact = r.Int("SERVICENOW_IMPACT", 3, 1, 3)
	s.Urgency = r.Int("SERVICENOW_URGENCY", 3, 1, 3)
	s.AssignmentGroup = r.String("SERVICENOW_ASSIGNMENT_GROUP", "")
	if s.AssignmentGroup != "" && !sysIDRe.MatchString(s.AssignmentGroup) {
		r.Problem("SERVICENOW_ASSIGNMENT_GROUP", "is %q; want a sys_id (32 lowercase hexadecimal characters)", s.AssignmentGroup)
	}
	return s
}

func (c Config) enabled(target string) bool {
	switch target {
	case Jira:
		return c.Jira.BaseURL != ""
	case ServiceNow:
		return c.ServiceNow.BaseURL != ""
	}
	return false
}

// defaultTarget: wrap-up goes to ServiceNow (seed 001's outbound path), everything else to
// Jira (seed 000), whichever of the two is configured.
func (c Config) defaultTarget(t Trigger) string {
	first, second := Jira, ServiceNow
	if t == WrapUp {
		first, second = ServiceNow, Jira
	}
	if c.enabled(first) {
		return first
	}
	return second
}

func (c Config) targetFor(t Trigger) string {
	if target := c.Targets[t]; target != "" {
		return target
	}
	return c.defaultTarget(t)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
