// Package observe gives every function the same structured logs and CloudWatch metrics.
//
// Logs are JSON lines through log/slog with Powertools' field names (level, message, timestamp,
// service, function_request_id, correlation_id, cold_start). Every record passes a redaction
// layer: attributes named like credentials are replaced, attributes named like personal data are
// masked, and every string (the message included) goes through mask.Logs, so neither a secret nor
// a card number, e-mail address or phone number can reach a log line by accident.
//
// Metrics are CloudWatch Embedded Metric Format lines written to stdout at the end of each
// invocation (see metrics.go).
package observe

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/cxbridge/cxbridge/pkg/mask"
)

// Redacted replaces the value of an attribute named like a credential.
const Redacted = "[REDACTED]"

// secretKeys are attribute-name fragments whose values are never logged.
var secretKeys = []string{"password", "secret", "token", "authorization", "apikey", "api_key", "x-api-key", "signature", "credential", "cookie", "private"}

// personalKeys are attribute-name fragments whose values are personal data; they are logged as a
// short, non-identifying hint (e.g. the last two digits of a phone number).
var personalKeys = []string{"email", "phone", "ani", "msisdn", "name", "address", "text", "description", "summary", "body", "comment"}

// LevelFromEnv reads AWS_LAMBDA_LOG_LEVEL (set by the LoggingConfig of template.yaml), then
// POWERTOOLS_LOG_LEVEL, defaulting to INFO.
func LevelFromEnv() slog.Level {
	for _, k := range []string{"AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_LOG_LEVEL"} {
		var l slog.Level
		if v := os.Getenv(k); v != "" && l.UnmarshalText([]byte(normaliseLevel(v))) == nil {
			return l
		}
	}
	return slog.LevelInfo
}

func normaliseLevel(v string) string {
	switch strings.ToUpper(v) {
	case "TRACE":
		return "DEBUG"
	case "FATAL":
		return "ERROR"
	}
	return v
}

// NewLogger returns a JSON logger writing to w, with the redaction layer and the invocation
// fields carried in contexts (see WithFields). Install it with slog.SetDefault so that packages
// logging through slog.*Context pick up the request and correlation ids.
func NewLogger(w io.Writer, service string, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 {
				switch a.Key {
				case slog.TimeKey:
					a.Key = "timestamp"
				case slog.MessageKey:
					a.Key = "message"
				}
			}
			return redactAttr(a)
		},
	})
	return slog.New(&contextHandler{next: h}).With("service", service)
}

// Setup installs the default logger for a function from its environment and returns it.
func Setup(service string) *slog.Logger {
	l := NewLogger(os.Stdout, service, LevelFromEnv())
	slog.SetDefault(l)
	return l
}

// contextHandler adds the fields stored in the context to each record and masks the message.
type contextHandler struct{ next slog.Handler }

func (h *contextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *contextHandler) Handle(ctx context.Context, r slog.Record) error {
	msg, _ := mask.Logs.String(r.Message)
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	if f := fieldsFrom(ctx); f != nil {
		out.AddAttrs(f.attrs()...)
	}
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	return h.next.Handle(ctx, out)
}

func (h *contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &contextHandler{next: h.next.WithAttrs(as)}
}

func (h *contextHandler) WithGroup(name string) slog.Handler {
	return &contextHandler{next: h.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	key := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(key, s) {
			return slog.String(a.Key, Redacted)
		}
	}
	v := a.Value.Resolve()
	if v.Kind() != slog.KindString && v.Kind() != slog.KindAny {
		return a
	}
	s := v.String()
	if v.Kind() == slog.KindAny {
		if err, ok := v.Any().(error); ok {
			s = err.Error()
		} else if _, ok := v.Any().(interface{ String() string }); !ok {
			return a // structured values are rendered by the JSON handler; keep them out of logs
		}
	}
	for _, p := range personalKeys {
		if strings.Contains(key, p) && !strings.HasSuffix(key, "id") && !strings.HasSuffix(key, "count") && !strings.HasSuffix(key, "_ms") {
			return slog.String(a.Key, Hint(s))
		}
	}
	masked, _ := mask.Logs.String(s)
	return slog.String(a.Key, masked)
}

// Hint renders personal data as something an operator can correlate but not read: its length
// and, for values with digits, the last two digits.
func Hint(s string) string {
	if s == "" {
		return ""
	}
	digits := 0
	var last []byte
	for i := len(s) - 1; i >= 0 && len(last) < 2; i-- {
		if s[i] >= '0' && s[i] <= '9' {
			last = append([]byte{s[i]}, last...)
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits++
		}
	}
	if digits >= 6 {
		return "[MASKED ..." + string(last) + "]"
	}
	return "[MASKED]"
}

// fields are the per-invocation attributes added to every record logged with the context.
type fields struct {
	mu sync.Mutex
	kv []slog.Attr
}

func (f *fields) attrs() []slog.Attr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]slog.Attr(nil), f.kv...)
}

type fieldsKey struct{}

func fieldsFrom(ctx context.Context) *fields {
	f, _ := ctx.Value(fieldsKey{}).(*fields)
	return f
}

// WithFields returns a context whose log records carry the given attributes, on top of any the
// context already had.
func WithFields(ctx context.Context, attrs ...slog.Attr) context.Context {
	f := &fields{}
	if parent := fieldsFrom(ctx); parent != nil {
		f.kv = parent.attrs()
	}
	f.kv = append(f.kv, attrs...)
	return context.WithValue(ctx, fieldsKey{}, f)
}

// SetCorrelationID adds correlation_id to every later record of this invocation. Handlers call
// it once they know the Genesys conversation id.
func SetCorrelationID(ctx context.Context, id string) {
	if id == "" {
		return
	}
	f := fieldsFrom(ctx)
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.kv {
		if a.Key == "correlation_id" {
			f.kv[i] = slog.String("correlation_id", id)
			return
		}
	}
	f.kv = append(f.kv, slog.String("correlation_id", id))
}
