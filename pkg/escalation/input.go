package escalation

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/mask"
)

// Input is the data action's request: a flat object, as Genesys input contracts require.
// Text and Int accept what Genesys renders (numbers unquoted, strings for numbers).
type Input struct {
	ConversationID    apigw.Text `json:"conversationId"`
	ParticipantID     apigw.Text `json:"participantId"`
	Trigger           apigw.Text `json:"trigger"`
	Target            apigw.Text `json:"target"`
	HoldSeconds       apigw.Int  `json:"holdSeconds"`
	CustomerName      apigw.Text `json:"customerName"`
	CustomerEmail     apigw.Text `json:"customerEmail"`
	CustomerPhone     apigw.Text `json:"customerPhone"`
	CustomerAccountID apigw.Text `json:"customerAccountId"`
	CallerSysID       apigw.Text `json:"callerSysId"`
	AgentName         apigw.Text `json:"agentName"`
	AgentID           apigw.Text `json:"agentId"`
	QueueName         apigw.Text `json:"queueName"`
	WrapUpCode        apigw.Text `json:"wrapUpCode"`
	RecordingURL      apigw.Text `json:"recordingUrl"`
	TranscriptSummary apigw.Text `json:"transcriptSummary"`
	Description       apigw.Text `json:"description"`
	Product           apigw.Text `json:"product"`
	Version           apigw.Text `json:"version"`
	OccurredAt        apigw.Text `json:"occurredAt"`
	IdempotencyKey    apigw.Text `json:"idempotencyKey"`
}

// Field limits. Long text fits a Jira text field (32,767 characters) with room for the rest of
// the description.
const (
	maxIDLen       = 64
	maxNameLen     = 255
	maxLongText    = 16000
	maxURLLen      = 2048
	maxKeyLen      = 128
	maxHoldSeconds = 7 * 24 * 3600
)

// parse validates the input and returns the escalation (not yet masked) and the payload hash
// for idempotency. now is the receive time.
func (s *Service) parse(in Input, now time.Time) (*Escalation, string, *apigw.Error) {
	e := &Escalation{ReceivedAt: now.UTC()}
	text := func(field string, v apigw.Text, max int, multiline bool) (string, *apigw.Error) {
		str := string(v)
		if len(str) > max {
			return "", apigw.Invalid(field, "invalid_field", "%s is longer than %d characters", field, max)
		}
		if strings.IndexFunc(str, func(r rune) bool {
			return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t'))
		}) >= 0 {
			return "", apigw.Invalid(field, "invalid_field", "%s contains control characters", field)
		}
		return str, nil
	}
	id := func(field string, v apigw.Text) (string, *apigw.Error) {
		str := string(v)
		if str != "" && (len(str) > maxIDLen || strings.IndexFunc(str, notIDRune) >= 0) {
			return "", apigw.Invalid(field, "invalid_field", "%s must be a Genesys id (letters, digits and hyphens, at most %d)", field, maxIDLen)
		}
		return str, nil
	}
	var err *apigw.Error
	if e.ConversationID, err = id("conversationId", in.ConversationID); err != nil {
		return nil, "", err
	}
	if e.ConversationID == "" {
		return nil, "", apigw.Missing("conversationId")
	}
	if e.ParticipantID, err = id("participantId", in.ParticipantID); err != nil {
		return nil, "", err
	}
	trig := Trigger(strings.ToLower(string(in.Trigger)))
	switch {
	case trig == "":
		return nil, "", apigw.Missing("trigger")
	case !validTrigger(trig):
		return nil, "", apigw.Invalid("trigger", "invalid_field", "trigger is %q; want hold_time, vip, wrap_up or manual", string(in.Trigger))
	}
	e.Trigger = trig
	if t := strings.ToLower(string(in.Target)); t != "" {
		if t != Jira && t != ServiceNow {
			return nil, "", apigw.Invalid("target", "invalid_field", "target is %q; want jira or servicenow", string(in.Target))
		}
		if !s.Config.enabled(t) {
			return nil, "", apigw.Invalid("target", "target_not_configured", "target %s is not configured in this deployment", t)
		}
		e.Target = t
	} else {
		e.Target = s.Config.targetFor(trig)
	}
	if in.HoldSeconds.Set {
		if in.HoldSeconds.Value < 0 || in.HoldSeconds.Value > maxHoldSeconds {
			return nil, "", apigw.Invalid("holdSeconds", "invalid_field", "holdSeconds must be 0 to %d", maxHoldSeconds)
		}
		e.HoldSeconds = in.HoldSeconds.Value
	} else if trig == HoldTime {
		return nil, "", apigw.Invalid("holdSeconds", "missing_field", "holdSeconds is required for trigger hold_time")
	}
	fields := []struct {
		name      string
		v         apigw.Text
		dst       *string
		max       int
		multiline bool
	}{
		{"customerName", in.CustomerName, &e.CustomerName, maxNameLen, false},
		{"customerPhone", in.CustomerPhone, &e.CustomerPhone, maxIDLen, false},
		{"agentName", in.AgentName, &e.AgentName, maxNameLen, false},
		{"agentId", in.AgentID, &e.AgentID, maxKeyLen, false},
		{"queueName", in.QueueName, &e.QueueName, maxNameLen, false},
		{"wrapUpCode", in.WrapUpCode, &e.WrapUpCode, maxNameLen, false},
		{"transcriptSummary", in.TranscriptSummary, &e.TranscriptSummary, maxLongText, true},
		{"description", in.Description, &e.Description, maxLongText, true},
		{"product", in.Product, &e.Product, maxNameLen, false},
		{"version", in.Version, &e.Version, maxNameLen, false},
	}
	for _, f := range fields {
		if *f.dst, err = text(f.name, f.v, f.max, f.multiline); err != nil {
			return nil, "", err
		}
	}
	if v := string(in.CustomerEmail); v != "" {
		if !looksLikeEmail(v) {
			return nil, "", apigw.Invalid("customerEmail", "invalid_field", "customerEmail is not an e-mail address")
		}
		e.CustomerEmail = v
	}
	if v := string(in.CustomerAccountID); v != "" {
		if len(v) > maxKeyLen || strings.IndexFunc(v, func(r rune) bool { return notIDRune(r) && r != ':' && r != '_' }) >= 0 || strings.Contains(v, "@") {
			return nil, "", apigw.Invalid("customerAccountId", "invalid_field", "customerAccountId must be an Atlassian accountId (not an e-mail address)")
		}
		e.CustomerAccountID = v
	}
	if v := strings.ToLower(string(in.CallerSysID)); v != "" {
		if len(v) != 32 || strings.IndexFunc(v, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }) >= 0 {
			return nil, "", apigw.Invalid("callerSysId", "invalid_field", "callerSysId must be a ServiceNow sys_id (32 hexadecimal characters)")
		}
		e.CallerSysID = v
	}
	if v := string(in.RecordingURL); v != "" {
		u, perr := url.Parse(v)
		if len(v) > maxURLLen || perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, "", apigw.Invalid("recordingUrl", "invalid_field", "recordingUrl must be an http(s) URL of at most %d characters", maxURLLen)
		}
		e.RecordingURL = v
	}
	if v := string(in.OccurredAt); v != "" {
		t, ok := ParseTime(v)
		if !ok {
			return nil, "", apigw.Invalid("occurredAt", "invalid_field", "occurredAt must be an ISO-8601 date-time with an offset, e.g. 2026-11-22T10:15:00Z or 2026-11-22T11:15:00+01:00")
		}
		e.OccurredAt = t.UTC()
	} else {
		e.OccurredAt = e.ReceivedAt
	}
	key := string(in.IdempotencyKey)
	if len(key) > maxKeyLen || strings.IndexFunc(key, unicode.IsControl) >= 0 {
		return nil, "", apigw.Invalid("idempotencyKey", "invalid_field", "idempotencyKey must be at most %d printable characters", maxKeyLen)
	}
	validation := ""
	if key != "" {
		e.ExplicitKey = true
		e.ID = escalationID("key", key)
		in.IdempotencyKey = ""
		b, _ := json.Marshal(in) // every field of the payload but the key itself, as sent
		validation = hashHex(b)
	} else {
		// One escalation per conversation and trigger: Genesys retries and repeated flow
		// calls land on the same key. There is no key the caller could have misused, so a
		// repeat with other details replays the first answer rather than failing.
		e.ID = escalationID("conversation", e.ConversationID, string(e.Trigger))
	}
	return e, validation, nil
}

// mask masks every free-text field in place and records the count.
func (e *Escalation) mask(m *mask.Masker) {
	c := mask.Counter{M: m}
	for _, p := range []*string{&e.CustomerName, &e.AgentName, &e.QueueName, &e.WrapUpCode, &e.RecordingURL,
		&e.TranscriptSummary, &e.Description, &e.Product, &e.Version} {
		*p = c.Mask(*p)
	}
	e.Masked = c.N
}

// escalationID is 24 hex characters (96 bits) of SHA-256 over the key's parts: short enough
// for a Jira label and a ServiceNow correlation_id, long enough never to collide.
func escalationID(parts ...string) string {
	return hashHex([]byte(strings.Join(parts, "\x00")))[:24]
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func validTrigger(t Trigger) bool {
	for _, x := range Triggers {
		if x == t {
			return true
		}
	}
	return false
}

func notIDRune(r rune) bool {
	return r != '-' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
}

func looksLikeEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".") &&
		len(s) <= 254 && strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0 &&
		!strings.Contains(domain, "@")
}

// timeLayouts are the ISO-8601 forms with an offset that Genesys and people send.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04Z0700",
	"2006-01-02T15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999Z07:00",
}

// ParseTime reads an ISO-8601 date-time that carries an offset (Z, +01:00, +0100, +01). A time
// without an offset is refused: its zone would be a guess, which is the seed's "2 PM vs 9 AM"
// problem.
func ParseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// formatTime writes t in UTC, as everything sent onward is.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// String describes an escalation for logs without personal data.
func (e *Escalation) String() string {
	return fmt.Sprintf("escalation %s (%s -> %s)", e.ID, e.Trigger, e.Target)
}
