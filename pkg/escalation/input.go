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
// Text and Int accept what Genesys renders (numbers unquoted, strings for numbers). Only
// conversationId and trigger (and holdSeconds for hold_time) can make a request impossible; every
// other input is Loose: a bad value is dropped or shortened with a warning, never a 400.
type Input struct {
	ConversationID    apigw.Text      `json:"conversationId"`
	ParticipantID     apigw.LooseText `json:"participantId"`
	Trigger           apigw.Text      `json:"trigger"`
	Target            apigw.LooseText `json:"target"`
	HoldSeconds       apigw.LooseInt  `json:"holdSeconds"`
	CustomerName      apigw.LooseText `json:"customerName"`
	CustomerEmail     apigw.LooseText `json:"customerEmail"`
	CustomerPhone     apigw.LooseText `json:"customerPhone"`
	CustomerAccountID apigw.LooseText `json:"customerAccountId"`
	CallerSysID       apigw.LooseText `json:"callerSysId"`
	AgentName         apigw.LooseText `json:"agentName"`
	AgentID           apigw.LooseText `json:"agentId"`
	QueueName         apigw.LooseText `json:"queueName"`
	WrapUpCode        apigw.LooseText `json:"wrapUpCode"`
	RecordingURL      apigw.LooseText `json:"recordingUrl"`
	TranscriptSummary apigw.LooseText `json:"transcriptSummary"`
	Description       apigw.LooseText `json:"description"`
	Product           apigw.LooseText `json:"product"`
	Version           apigw.LooseText `json:"version"`
	OccurredAt        apigw.LooseText `json:"occurredAt"`
	IdempotencyKey    apigw.LooseText `json:"idempotencyKey"`
	// Attempt is the flow's count of its calls for this escalation (1, or absent, for the
	// first). A flow that calls again after failed / state_unavailable sends 2 and up.
	Attempt apigw.LooseInt `json:"attempt"`
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

// parse validates the input and returns the escalation (not yet masked, its Warnings set) and
// the payload hash for idempotency. now is the receive time. Only a missing or malformed
// conversationId or trigger, or holdSeconds for hold_time, is an error.
func (s *Service) parse(in Input, now time.Time) (*Escalation, string, *apigw.Error) {
	e := &Escalation{ReceivedAt: now.UTC()}
	var ws apigw.Warnings
	// loose reads an optional input; a value of the wrong JSON type is dropped.
	loose := func(field string, v apigw.LooseText) string {
		if v.Malformed != "" {
			ws.Add(field, "%s instead of text; ignored", v.Malformed)
		}
		return string(v.Text)
	}
	// text keeps free text, without control characters and at most max bytes long.
	text := func(field string, v apigw.LooseText, max int, multiline bool) string {
		str := loose(field, v)
		if strings.IndexFunc(str, func(r rune) bool { return badControl(r, multiline) }) >= 0 {
			str = strings.Map(func(r rune) rune {
				if badControl(r, multiline) {
					return ' '
				}
				return r
			}, str)
			ws.Add(field, "control characters replaced by spaces")
		}
		if len(str) > max {
			str = truncate(str, max)
			ws.Add(field, "longer than %d characters; shortened", max)
		}
		return str
	}
	// ident keeps an identifier that passes ok, and drops any other.
	ident := func(field string, v apigw.LooseText, ok func(string) bool, want string) string {
		str := loose(field, v)
		if str != "" && !ok(str) {
			ws.Add(field, "not %s; ignored", want)
			return ""
		}
		return str
	}

	e.ConversationID = string(in.ConversationID)
	switch {
	case e.ConversationID == "":
		return nil, "", apigw.Missing("conversationId")
	case !genesysID(e.ConversationID):
		return nil, "", apigw.Invalid("conversationId", "invalid_field", "conversationId must be a Genesys id (letters, digits and hyphens, at most %d)", maxIDLen)
	}
	trig := Trigger(strings.ToLower(string(in.Trigger)))
	switch {
	case trig == "":
		return nil, "", apigw.Missing("trigger")
	case !validTrigger(trig):
		return nil, "", apigw.Invalid("trigger", "invalid_field", "trigger is %q; want hold_time, vip, wrap_up or manual", string(in.Trigger))
	}
	e.Trigger = trig
	switch h := in.HoldSeconds; {
	case trig == HoldTime && !h.Set && h.Malformed == "":
		return nil, "", apigw.Invalid("holdSeconds", "missing_field", "holdSeconds is required for trigger hold_time")
	case trig == HoldTime && (h.Malformed != "" || h.Value < 0 || h.Value > maxHoldSeconds):
		return nil, "", apigw.Invalid("holdSeconds", "invalid_field", "holdSeconds must be a whole number of seconds, 0 to %d", maxHoldSeconds)
	case h.Malformed != "":
		ws.Add("holdSeconds", "%s instead of a whole number; ignored", h.Malformed)
	case h.Set && (h.Value < 0 || h.Value > maxHoldSeconds):
		ws.Add("holdSeconds", "outside 0 to %d; ignored", maxHoldSeconds)
	case h.Set:
		e.HoldSeconds = h.Value
	}

	e.Target = s.Config.targetFor(trig)
	switch t := strings.ToLower(loose("target", in.Target)); {
	case t == "":
	case t != Jira && t != ServiceNow:
		ws.Add("target", "not jira or servicenow; the %s default, %s, is used", trig, e.Target)
	case !s.Config.enabled(t):
		ws.Add("target", "%s is not configured in this deployment; the %s default, %s, is used", t, trig, e.Target)
	default:
		e.Target = t
	}

	e.ParticipantID = ident("participantId", in.ParticipantID, genesysID, "a Genesys id (the ticket is not written back to the participant)")
	e.CustomerName = text("customerName", in.CustomerName, maxNameLen, false)
	e.AgentName = text("agentName", in.AgentName, maxNameLen, false)
	e.QueueName = text("queueName", in.QueueName, maxNameLen, false)
	e.WrapUpCode = text("wrapUpCode", in.WrapUpCode, maxNameLen, false)
	e.Product = text("product", in.Product, maxNameLen, false)
	e.Version = text("version", in.Version, maxNameLen, false)
	e.TranscriptSummary = text("transcriptSummary", in.TranscriptSummary, maxLongText, true)
	e.Description = text("description", in.Description, maxLongText, true)
	printable := func(max int) func(string) bool {
		return func(v string) bool { return len(v) <= max && strings.IndexFunc(v, unicode.IsControl) < 0 }
	}
	e.CustomerPhone = ident("customerPhone", in.CustomerPhone, printable(maxIDLen), fmt.Sprintf("a phone number of at most %d characters", maxIDLen))
	e.AgentID = ident("agentId", in.AgentID, printable(maxKeyLen), fmt.Sprintf("an id of at most %d characters", maxKeyLen))
	e.CustomerEmail = ident("customerEmail", in.CustomerEmail, looksLikeEmail, "an e-mail address")
	e.CustomerAccountID = ident("customerAccountId", in.CustomerAccountID, func(v string) bool {
		return len(v) <= maxKeyLen && strings.IndexFunc(v, func(r rune) bool { return notIDRune(r) && r != ':' && r != '_' }) < 0
	}, "an Atlassian accountId")
	e.CallerSysID = strings.ToLower(ident("callerSysId", in.CallerSysID, func(v string) bool {
		return len(v) == 32 && strings.IndexFunc(strings.ToLower(v), func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }) < 0
	}, "a ServiceNow sys_id (32 hexadecimal characters; the incident has no caller)"))
	e.RecordingURL = ident("recordingUrl", in.RecordingURL, func(v string) bool {
		u, err := url.Parse(v)
		return len(v) <= maxURLLen && err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
	}, fmt.Sprintf("an http(s) URL of at most %d characters", maxURLLen))
	e.OccurredAt = e.ReceivedAt
	if v := loose("occurredAt", in.OccurredAt); v != "" {
		if t, ok := ParseTime(v); ok {
			e.OccurredAt = t.UTC()
		} else {
			ws.Add("occurredAt", "not an ISO-8601 date-time with an offset (e.g. 2026-11-22T10:15:00Z); the time the request arrived is used")
		}
	}

	switch a := in.Attempt; {
	case a.Malformed != "":
		ws.Add("attempt", "%s instead of a whole number; ignored", a.Malformed)
	case a.Set && a.Value < 1:
		ws.Add("attempt", "below 1; ignored")
	case a.Set:
		e.Attempt = int(min(a.Value, 1000))
	}
	// A repeat is the same escalation, whichever attempt it is.
	in.Attempt = apigw.LooseInt{}

	// The key is hashed into the escalation id, so any text serves; only a value of the wrong
	// JSON type cannot be a key.
	key := loose("idempotencyKey", in.IdempotencyKey)
	validation := ""
	if key != "" {
		e.ExplicitKey = true
		e.ID = escalationID("key", key)
		in.IdempotencyKey = apigw.LooseText{}
		b, _ := json.Marshal(in) // every field of the payload but the key itself, as sent
		validation = hashHex(b)
	} else {
		// One escalation per conversation and trigger: Genesys retries and repeated flow
		// calls land on the same key. There is no key the caller could have misused, so a
		// repeat with other details replays the first answer rather than failing.
		e.ID = escalationID("conversation", e.ConversationID, string(e.Trigger))
	}
	e.warnings, e.Warnings = ws, ws.Strings()
	return e, validation, nil
}

func badControl(r rune, multiline bool) bool {
	return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t'))
}

func genesysID(s string) bool {
	return s != "" && len(s) <= maxIDLen && strings.IndexFunc(s, notIDRune) < 0
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
