package observe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/observe"
)

// logLines parses what a logger wrote: one JSON object per line.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

func oneLine(t *testing.T, log func(l *slog.Logger)) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	log(observe.NewLogger(&buf, "cxbridge", slog.LevelDebug))
	lines := logLines(t, &buf)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines; want 1:\n%s", len(lines), buf.String())
	}
	return lines[0]
}

func TestLogLineShape(t *testing.T) {
	line := oneLine(t, func(l *slog.Logger) { l.Warn("telemetry slow", "latency_ms", 812) })
	if line["level"] != "WARN" || line["message"] != "telemetry slow" || line["service"] != "cxbridge" || line["latency_ms"] != 812.0 {
		t.Errorf("line = %v", line)
	}
	ts, _ := line["timestamp"].(string)
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("timestamp %q is not RFC 3339: %v", ts, err)
	}
	for _, k := range []string{"time", "msg"} {
		if _, ok := line[k]; ok {
			t.Errorf("line has %q; Powertools names are timestamp and message", k)
		}
	}
}

func TestLevelFiltering(t *testing.T) {
	var buf bytes.Buffer
	l := observe.NewLogger(&buf, "cxbridge", slog.LevelWarn)
	l.Info("routine")
	l.Debug("noise")
	l.Error("broken")
	lines := logLines(t, &buf)
	if len(lines) != 1 || lines[0]["message"] != "broken" {
		t.Errorf("lines = %v; want only the error", lines)
	}
}

func TestContextFields(t *testing.T) {
	var buf bytes.Buffer
	l := observe.NewLogger(&buf, "cxbridge", slog.LevelInfo)
	ctx := observe.WithFields(context.Background(), slog.String("function_request_id", "req-1"), slog.Bool("cold_start", true))
	l.InfoContext(ctx, "before the conversation id is known")
	observe.SetCorrelationID(ctx, "conv-1")
	l.InfoContext(ctx, "after")
	observe.SetCorrelationID(ctx, "conv-2") // replaces, does not add a second key
	observe.SetCorrelationID(ctx, "")       // ignored
	child := observe.WithFields(ctx, slog.String("dependency", "servicenow"))
	l.InfoContext(child, "child")
	l.Info("no context")

	lines := logLines(t, &buf)
	if len(lines) != 4 {
		t.Fatalf("got %d lines", len(lines))
	}
	if lines[0]["function_request_id"] != "req-1" || lines[0]["cold_start"] != true || lines[0]["correlation_id"] != nil {
		t.Errorf("line 1 = %v", lines[0])
	}
	if lines[1]["correlation_id"] != "conv-1" {
		t.Errorf("line 2 = %v; want correlation_id conv-1", lines[1])
	}
	if lines[2]["correlation_id"] != "conv-2" || lines[2]["function_request_id"] != "req-1" || lines[2]["dependency"] != "servicenow" {
		t.Errorf("line 3 = %v; want the parent's fields, the new correlation id and its own", lines[2])
	}
	if strings.Count(buf.String(), `"correlation_id"`) != 2 {
		t.Errorf("correlation_id must appear once per line:\n%s", buf.String())
	}
	if lines[3]["function_request_id"] != nil {
		t.Errorf("line 4 = %v; a record without the context has no invocation fields", lines[3])
	}
	// no fields in the context: nothing to set, nothing to break
	observe.SetCorrelationID(context.Background(), "conv-3")
}

func TestSecretAttributesRedacted(t *testing.T) {
	for _, key := range []string{"token", "access_token", "refreshToken", "password", "Authorization", "apiKey", "api_key", "x-api-key", "signature", "X-Cxbridge-Signature", "MessageBird-Signature-JWT", "client_secret", "clientSecret", "cookie", "privateKey", "credentials", "webhook_secret"} {
		line := oneLine(t, func(l *slog.Logger) {
			l.Info("calling", key, "s3cr3t-value", key+"_n", 12345)
		})
		if line[key] != observe.Redacted || line[key+"_n"] != observe.Redacted {
			t.Errorf("%s = %v, %s_n = %v; want %s", key, line[key], key, line[key+"_n"], observe.Redacted)
		}
	}
	// With() attributes go through the same layer
	var buf bytes.Buffer
	observe.NewLogger(&buf, "cxbridge", slog.LevelInfo).With("token", "abc").Info("x")
	if strings.Contains(buf.String(), "abc") {
		t.Errorf("With(token) leaked: %s", buf.String())
	}
}

func TestPersonalAttributesHinted(t *testing.T) {
	tests := []struct {
		key  string
		val  any
		want string
	}{
		{"email", "jane.doe@example.com", "[MASKED]"},
		{"phone", "+15551234567", "[MASKED ...67]"},
		{"ani", "tel:+15551234567", "[MASKED ...67]"},
		{"callerANI", "tel:+15551234589", "[MASKED ...89]"},
		{"msisdn", int64(31612345678), "[MASKED ...78]"}, // MessageBird sends it as a JSON number
		{"customerName", "Jane Doe", "[MASKED]"},
		{"customer_name", "Jane Doe", "[MASKED]"},
		{"name", "Jane Doe", "[MASKED]"},
		{"description", "Caller Jane says order 12 is late", "[MASKED]"},
		{"short_description", "Jane's laptop", "[MASKED]"},
		{"summary", "VIP escalation for Jane", "[MASKED]"},
		{"comment_body", "thanks", "[MASKED]"},
		{"text", "hello from whatsapp", "[MASKED]"},
		{"mobilePhoneNumber", "0612345678", "[MASKED ...78]"},
		{"emailAddress", "j@example.com", "[MASKED]"},
		{"address", "1 Main St", "[MASKED]"},
	}
	for _, tt := range tests {
		line := oneLine(t, func(l *slog.Logger) { l.Info("x", tt.key, tt.val) })
		if line[tt.key] != tt.want {
			t.Errorf("%s=%v logged as %v; want %q", tt.key, tt.val, line[tt.key], tt.want)
		}
	}
}

// Names that merely contain a personal word must stay readable: an operator needs them.
func TestOperationalAttributesKept(t *testing.T) {
	tests := []struct {
		key string
		val any
	}{
		{"function_name", "telemetry-tier"},
		{"queueName", "Support L2"},
		{"queue_name", "Support L2"},
		{"hostname", "acme.service-now.com"},
		{"context", "lookup"},
		{"organisation", "acme"},
		{"mechanism", "oauth"},
		{"customerId", "C-1001"},
		{"conversationId", "8f1c2a4e"},
		{"phone_count", 2.0},
		{"comment_count", 3.0},
		{"email_ms", 12.0},
		{"body_bytes", 2048.0},
		{"tier", "L2"},
		{"status", "queued"},
	}
	for _, tt := range tests {
		line := oneLine(t, func(l *slog.Logger) { l.Info("x", tt.key, tt.val) })
		if line[tt.key] != tt.val {
			t.Errorf("%s=%v logged as %v; want it unchanged", tt.key, tt.val, line[tt.key])
		}
	}
}

type ticket struct{ id string }

func (t ticket) String() string { return "ticket for jane@example.com " + t.id }

func TestContentMasked(t *testing.T) {
	line := oneLine(t, func(l *slog.Logger) {
		l.Error("caller jane@example.com read card 4111 1111 1111 1111 from +15551234567",
			"note", "pay with 5555-5555-5555-4444 please",
			"error", fmt.Errorf("create incident: %w", errors.New("HTTP 400: caller +15551234567 unknown, Bearer abc.def")),
			"ticket", ticket{"INC1"},
			"raw", []byte("ssn 123-45-6789"),
			"reference", int64(4111111111111111),
			"count", 4111111111111112, // not a card (Luhn): a number stays a number
		)
	})
	msg := line["message"].(string)
	for _, leak := range []string{"jane@example.com", "4111 1111", "5551234567"} {
		if strings.Contains(msg, leak) {
			t.Errorf("message %q leaks %q", msg, leak)
		}
	}
	if !strings.Contains(msg, "[MASKED:card]") || !strings.Contains(msg, "[MASKED:email]") || !strings.Contains(msg, "[MASKED:phone]") {
		t.Errorf("message = %q", msg)
	}
	if line["note"] != "pay with [MASKED:card] please" {
		t.Errorf("note = %v", line["note"])
	}
	if e := line["error"].(string); strings.Contains(e, "5551234567") || strings.Contains(e, "abc.def") || !strings.Contains(e, "create incident") {
		t.Errorf("error = %q; want it masked but readable", e)
	}
	if line["ticket"] != "ticket for [MASKED:email] INC1" {
		t.Errorf("ticket = %v", line["ticket"])
	}
	if line["raw"] != "ssn [MASKED:ssn]" {
		t.Errorf("raw = %v", line["raw"])
	}
	if line["reference"] != "[MASKED:card]" {
		t.Errorf("reference = %v", line["reference"])
	}
	if line["count"] != 4111111111111112.0 {
		t.Errorf("count = %v", line["count"])
	}
}

// Maps and structs are rendered by the logger; what is inside them is redacted like any attribute.
func TestStructuredValuesRedacted(t *testing.T) {
	type caller struct {
		Email string `json:"email"`
		Tier  string `json:"tier"`
		Note  string `json:"note"`
	}
	line := oneLine(t, func(l *slog.Logger) {
		l.Info("request",
			"headers", http.Header{"Authorization": {"Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"}, "X-Request-Id": {"abc-1"}},
			"caller", caller{Email: "jane@example.com", Tier: "L2", Note: "card 4111111111111111"},
			"items", []map[string]any{{"password": "hunter2", "queue": "L1"}},
			slog.Group("contact", slog.String("phone", "+15551234567"), slog.String("channel", "whatsapp")),
		)
	})
	out, _ := json.Marshal(line)
	for _, leak := range []string{"eyJhbGciOiJIUzI1NiJ9", "jane@example.com", "4111111111111111", "hunter2", "5551234567"} {
		if strings.Contains(string(out), leak) {
			t.Errorf("line leaks %q: %s", leak, out)
		}
	}
	headers := line["headers"].(map[string]any)
	if headers["Authorization"] != observe.Redacted || fmt.Sprint(headers["X-Request-Id"]) != "[abc-1]" {
		t.Errorf("headers = %v", headers)
	}
	c := line["caller"].(map[string]any)
	if c["tier"] != "L2" || c["email"] != "[MASKED]" || c["note"] != "card [MASKED:card]" {
		t.Errorf("caller = %v", c)
	}
	contact := line["contact"].(map[string]any)
	if contact["phone"] != "[MASKED ...67]" || contact["channel"] != "whatsapp" {
		t.Errorf("contact = %v", contact)
	}
}

func TestHint(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"Jane":             "[MASKED]",
		"+15551234567":     "[MASKED ...67]",
		"tel:+44 20 79460": "[MASKED ...60]",
		"12345":            "[MASKED]", // too few digits to be worth a hint
		"123456":           "[MASKED ...56]",
	} {
		if got := observe.Hint(in); got != want {
			t.Errorf("Hint(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestLevelFromEnv(t *testing.T) {
	tests := []struct {
		aws, powertools string
		want            slog.Level
	}{
		{"", "", slog.LevelInfo},
		{"DEBUG", "", slog.LevelDebug},
		{"debug", "", slog.LevelDebug},
		{"TRACE", "", slog.LevelDebug},
		{"WARN", "", slog.LevelWarn},
		{"ERROR", "", slog.LevelError},
		{"FATAL", "", slog.LevelError},
		{"", "WARN", slog.LevelWarn},
		{"ERROR", "DEBUG", slog.LevelError}, // Lambda's own setting wins
		{"verbose", "WARN", slog.LevelWarn}, // unreadable: try the next
		{"verbose", "", slog.LevelInfo},
	}
	for _, tt := range tests {
		t.Setenv("AWS_LAMBDA_LOG_LEVEL", tt.aws)
		t.Setenv("POWERTOOLS_LOG_LEVEL", tt.powertools)
		if got := observe.LevelFromEnv(); got != tt.want {
			t.Errorf("LevelFromEnv(AWS %q, Powertools %q) = %v; want %v", tt.aws, tt.powertools, got, tt.want)
		}
	}
}
