package escalation

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Field templates are JSON values whose strings may hold {{name}} placeholders, e.g.
//
//	{"summary": "{{summary}}", "customfield_10050": "{{conversationId}}",
//	 "customfield_10060": {"value": "{{product}}"}, "labels": ["genesys", "{{trigger}}"]}
//
// Placeholders are the escalation's fields (already masked) plus summary and details, the
// default ticket text. A string that renders empty is left out, and so is an object or array
// left with nothing in it: Jira refuses empty values for many field types.

var placeholderRe = regexp.MustCompile(`\{\{\s*([A-Za-z]+)\s*\}\}`)

// Placeholders lists the names a template may use.
var Placeholders = []string{
	"conversationId", "participantId", "trigger", "triggerLabel", "target", "holdSeconds",
	"customerName", "customerEmail", "customerPhone", "customerAccountId", "callerSysId",
	"agentName", "agentId", "queueName", "wrapUpCode", "recordingUrl", "transcriptSummary",
	"description", "product", "version", "occurredAt", "escalationId", "summary", "details",
}

func knownPlaceholder(name string) bool {
	for _, p := range Placeholders {
		if p == name {
			return true
		}
	}
	return false
}

// checkTemplate reports unknown placeholders and unusable values.
func checkTemplate(v any) error {
	switch x := v.(type) {
	case string:
		var unknown []string
		for _, m := range placeholderRe.FindAllStringSubmatch(x, -1) {
			if !knownPlaceholder(m[1]) {
				unknown = append(unknown, m[1])
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return fmt.Errorf("unknown placeholder {{%s}}; known: %s", unknown[0], strings.Join(Placeholders, ", "))
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if err := checkTemplate(x[k]); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkTemplate(e); err != nil {
				return err
			}
		}
	case float64, bool, nil:
	default:
		return fmt.Errorf("unsupported value %v", x)
	}
	return nil
}

// render fills a template; ok is false when nothing is left.
func render(v any, vars map[string]string) (any, bool) {
	switch x := v.(type) {
	case string:
		out := placeholderRe.ReplaceAllStringFunc(x, func(m string) string {
			return vars[placeholderRe.FindStringSubmatch(m)[1]]
		})
		out = strings.TrimSpace(out)
		return out, out != ""
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if r, ok := render(e, vars); ok {
				out[k] = r
			}
		}
		return out, len(out) > 0
	case []any:
		var out []any
		for _, e := range x {
			if r, ok := render(e, vars); ok {
				out = append(out, r)
			}
		}
		return out, len(out) > 0
	default:
		return x, x != nil
	}
}

// vars are the placeholder values of an escalation.
func (e *Escalation) vars(summary, details string) map[string]string {
	hold := ""
	if e.HoldSeconds > 0 || e.Trigger == HoldTime {
		hold = strconv.FormatInt(e.HoldSeconds, 10)
	}
	return map[string]string{
		"conversationId": e.ConversationID, "participantId": e.ParticipantID, "trigger": string(e.Trigger),
		"triggerLabel": e.Trigger.Label(), "target": e.Target, "holdSeconds": hold,
		"customerName": e.CustomerName, "customerEmail": e.CustomerEmail, "customerPhone": e.CustomerPhone,
		"customerAccountId": e.CustomerAccountID, "callerSysId": e.CallerSysID, "agentName": e.AgentName,
		"agentId": e.AgentID, "queueName": e.QueueName, "wrapUpCode": e.WrapUpCode, "recordingUrl": e.RecordingURL,
		"transcriptSummary": e.TranscriptSummary, "description": e.Description, "product": e.Product,
		"version": e.Version, "occurredAt": formatTime(e.OccurredAt), "escalationId": e.ID,
		"summary": summary, "details": details,
	}
}

// summary is the default one-line title.
func (e *Escalation) summary() string {
	who := e.CustomerName
	if who == "" {
		who = "caller"
	}
	s := fmt.Sprintf("Escalation (%s): call from %s", e.Trigger.Label(), who)
	if e.WrapUpCode != "" {
		s += " - Topic: " + e.WrapUpCode
	}
	return truncate(s, 250)
}

// details is the default description: everything an engineer needs to pick the call up, in
// UTC.
func (e *Escalation) details() string {
	var b strings.Builder
	line := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", label, v)
		}
	}
	trig := e.Trigger.Label()
	if e.Trigger == HoldTime {
		trig += fmt.Sprintf(" (held %d s)", e.HoldSeconds)
	}
	line("Escalation", trig)
	line("Conversation ID", e.ConversationID)
	line("Occurred at (UTC)", formatTime(e.OccurredAt))
	line("Customer", e.CustomerName)
	line("Agent", e.AgentName)
	line("Queue", e.QueueName)
	line("Wrap-up code", e.WrapUpCode)
	line("Product", e.Product)
	line("Version", e.Version)
	line("Recording", e.RecordingURL)
	if e.TranscriptSummary != "" {
		b.WriteString("\nTranscript summary:\n" + e.TranscriptSummary + "\n")
	}
	if e.Description != "" {
		b.WriteString("\nNotes:\n" + e.Description + "\n")
	}
	e.inputProblems(&b)
	fmt.Fprintf(&b, "\nEscalation id: %s (cxbridge)", e.ID)
	return b.String()
}

// inputProblems lists the inputs that were dropped or shortened, so an agent knows what the
// ticket is missing.
func (e *Escalation) inputProblems(b *strings.Builder) {
	if len(e.Warnings) == 0 {
		return
	}
	b.WriteString("\nInput problems (the escalation went on without these values):\n")
	for _, w := range e.Warnings {
		b.WriteString("- " + w + "\n")
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-3, 0)
	for cut > 0 && !isRuneStart(s[cut]) {
		cut-- // never split a character
	}
	return s[:cut] + "..."
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
