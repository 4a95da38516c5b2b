package lookup

import (
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
)

// LearnMode says whether a fallback match teaches ServiceNow the number the caller dialled from.
type LearnMode string

const (
	// LearnOff never writes to ServiceNow.
	LearnOff LearnMode = "off"
	// LearnIfEmpty writes mobile_phone only when it is empty, so a number maintained by HR or
	// a directory sync is never overwritten by a call from a borrowed phone. The default.
	LearnIfEmpty LearnMode = "if_empty"
	// LearnAlways replaces mobile_phone with the calling number.
	LearnAlways LearnMode = "always"
)

// DefaultEmployeeIDPattern accepts 2 to 20 letters and digits; set LOOKUP_EMPLOYEE_ID_PATTERN
// to your own format (e.g. E[0-9]{5}) so a mistyped ID is refused before ServiceNow is asked.
const DefaultEmployeeIDPattern = `[A-Za-z0-9]{2,20}`

// Config is servicenow-lookup's configuration.
type Config struct {
	ServiceNowBaseURL  string
	ServiceNowSecretID string
	// DefaultRegion (ISO 3166 alpha-2, e.g. US, GB) reads ANIs and stored phone numbers written
	// in national format, without a country code.
	DefaultRegion string
	// EmployeeIDs validates employee IDs before they reach an encoded query.
	EmployeeIDs *servicenow.TokenPattern
	Learn       LearnMode
	// Timeout is the whole budget of a lookup; when ServiceNow cannot answer in it, the flow
	// hears status "unavailable".
	Timeout time.Duration
	// WaitingTTL is how long the caller -> waiting conversation link is kept.
	WaitingTTL time.Duration
	StateTable string
}

// LoadConfig reads the configuration; problems are recorded in r (see r.Err).
func LoadConfig(r *config.Reader) Config {
	c := Config{
		ServiceNowBaseURL:  r.URL("SERVICENOW_BASE_URL", ""),
		ServiceNowSecretID: r.Required("SERVICENOW_SECRET_ID"),
		DefaultRegion:      strings.ToUpper(r.String("LOOKUP_DEFAULT_REGION", "US")),
		Learn:              LearnMode(r.OneOf("LOOKUP_LEARN_MOBILE", string(LearnIfEmpty), string(LearnOff), string(LearnIfEmpty), string(LearnAlways))),
		Timeout:            r.Millis("LOOKUP_TIMEOUT_MS", 1500*time.Millisecond, 200*time.Millisecond, 10*time.Second),
		WaitingTTL:         r.Seconds("LOOKUP_WAITING_TTL_SECONDS", 4*time.Hour, time.Minute, 48*time.Hour),
		StateTable:         r.Required("STATE_TABLE"),
	}
	if !phonenumbers.GetSupportedRegions()[c.DefaultRegion] {
		r.Problem("LOOKUP_DEFAULT_REGION", "is %q; want an ISO 3166 alpha-2 region code such as US, GB or DE", c.DefaultRegion)
	}
	pattern := r.String("LOOKUP_EMPLOYEE_ID_PATTERN", DefaultEmployeeIDPattern)
	p, err := servicenow.NewTokenPattern(pattern)
	if err != nil {
		r.Problem("LOOKUP_EMPLOYEE_ID_PATTERN", "is not a valid regular expression: %v", err)
	}
	c.EmployeeIDs = p
	return c
}
