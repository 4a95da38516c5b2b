package lookup

import (
	"fmt"
	"regexp"
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
	// UserFields are the extra sys_user fields the screen pop returns (LOOKUP_USER_FIELDS), each
	// as its display value under the output OutputName(field): company -> userCompany. They come
	// in the same query as the rest of the user, so they cost no round trip.
	UserFields []servicenow.Field
}

// DefaultUserFields is LOOKUP_USER_FIELDS when unset: what a flow or an agent script most
// often shows beside the name (the directory's VIP flag is always returned, as userVip).
var DefaultUserFields = []string{"company", "title", "location", "department"}

// MaxUserFields bounds LOOKUP_USER_FIELDS: each is an output of the data action.
const MaxUserFields = 10

// OutputName is the flat output a sys_user field is returned under: "user" and the field's
// words in camel case (company -> userCompany, cost_center -> userCostCenter, location.city ->
// userLocationCity).
func OutputName(f servicenow.Field) string {
	var b strings.Builder
	b.WriteString("user")
	for _, w := range strings.FieldsFunc(string(f), func(r rune) bool { return r == '_' || r == '.' }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// userFieldRe: lowercase field names, dot-walks of up to two references (location.city).
var userFieldRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,79}(\.[a-z][a-z0-9_]{0,79}){0,2}$`)

// ParseUserFields reads a LOOKUP_USER_FIELDS value ("none" for no extra field).
func ParseUserFields(list []string) ([]servicenow.Field, error) {
	if len(list) == 1 && strings.EqualFold(list[0], "none") {
		return nil, nil
	}
	if len(list) > MaxUserFields {
		return nil, fmt.Errorf("has %d fields; at most %d", len(list), MaxUserFields)
	}
	reserved := map[string]bool{}
	for _, name := range resultNames() {
		reserved[name] = true
	}
	read := map[servicenow.Field]bool{servicenow.FieldVIP: true}
	for _, f := range userFields {
		read[f] = true
	}
	var out []servicenow.Field
	seen := map[string]string{}
	for _, name := range list {
		f := servicenow.Field(strings.ToLower(name))
		out1 := OutputName(f)
		switch {
		case !userFieldRe.MatchString(string(f)):
			return nil, fmt.Errorf("%q is not a field name (lowercase letters, digits and _, dot-walks such as location.city)", name)
		case read[f]:
			return nil, fmt.Errorf("%s is returned already", name)
		case reserved[out1]:
			return nil, fmt.Errorf("%s would be returned as %s, which is another output", name, out1)
		case seen[out1] != "":
			return nil, fmt.Errorf("%s and %s would both be returned as %s", seen[out1], name, out1)
		}
		seen[out1] = name
		out = append(out, f)
	}
	return out, nil
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
	fields, err := ParseUserFields(r.List("LOOKUP_USER_FIELDS", DefaultUserFields))
	if err != nil {
		r.Problem("LOOKUP_USER_FIELDS", "%v", err)
	}
	c.UserFields = fields
	return c
}
