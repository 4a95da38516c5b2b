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
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/mask"
)

// Redacted replaces the value of an attribute named like a credential.
const Redacted = "[REDACTED]"

// secretKeys are attribute-name fragments whose values are never logged.
var secretKeys = []string{"password", "passwd", "secret", "token", "authorization", "apikey", "api_key", "api-key", "signature", "credential", "cookie", "private", "bearer", "jwt"}

// Attributes named like personal data are logged as a short, non-identifying hint (e.g. the last
// two digits of a phone number). personalFragments are unambiguous anywhere in a name
// ("customerPhoneNumber"); personalWords only as a whole word of it, because as fragments they
// hit innocent names: "ani" is in "organisation", "text" in "context", "name" in "function_name".
var (
	personalFragments = []string{"email", "phone", "msisdn", "address", "description", "summary", "comment"}
	personalWords     = map[string]bool{
		"ani": true, "name": true, "text": true, "body": true, "mail": true, "mobile": true,
		"firstname": true, "lastname": true, "fullname": true, "username": true, "displayname": true,
		"callername": true, "customername": true,
	}
	// "<thing> name" is the name of a thing, not of a person.
	thingNames = map[string]bool{
		"function": true, "service": true, "queue": true, "table": true, "host": true, "file": true,
		"field": true, "metric": true, "system": true, "event": true, "route": true, "stage": true,
		"op": true, "operation": true, "action": true, "tier": true, "skill": true, "flow": true,
		"integration": true, "project": true, "attribute": true, "dimension": true, "region": true,
		"type": true, "group": true, "team": true, "desk": true, "org": true, "organization": true,
		"app": true, "application": true, "env": true, "bucket": true, "index": true, "column": true,
		"param": true, "topic": true, "key": true, "domain": true, "secret": true, "dependency": true,
	}
	// identifiers, counts and timings of personal things are not personal data themselves
	notPersonalLast = map[string]bool{"id": true, "ids": true, "count": true, "ms": true, "len": true, "length": true, "bytes": true, "size": true}
)

func isSecretKey(key string) bool {
	key = strings.ToLower(key)
	for _, s := range secretKeys {
		if strings.Contains(key, s) {
			return true
		}
	}
	return false
}

func isPersonalKey(key string) bool {
	words := keyWords(key)
	if len(words) == 0 || notPersonalLast[words[len(words)-1]] {
		return false
	}
	lower := strings.ToLower(key)
	for _, f := range personalFragments {
		if strings.Contains(lower, f) {
			return true
		}
	}
	for i, w := range words {
		if personalWords[w] && !(w == "name" && i > 0 && thingNames[words[i-1]]) {
			return true
		}
	}
	return false
}

// keyWords splits an attribute name into lower-case words: "callerANINumber" -> caller ani number,
// "function_name" -> function name.
func keyWords(key string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && len(cur) > 0:
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	return words
}

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
	if isSecretKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	v := a.Value.Resolve()
	var s string
	switch v.Kind() {
	case slog.KindString:
		s = v.String()
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64:
		// a MessageBird msisdn is a JSON number; a card number can be one too
		s = v.String()
		if !isPersonalKey(a.Key) {
			if masked, n := mask.Logs.String(s); n > 0 {
				return slog.String(a.Key, masked)
			}
			return a
		}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []byte:
			s = string(x)
		default:
			// Maps, structs and slices would be rendered by the JSON handler as they are, headers
			// and all; render them here and give every key and string inside the same treatment.
			return slog.Any(a.Key, redactStructured(a.Key, x))
		}
	default:
		return a
	}
	if isPersonalKey(a.Key) {
		return slog.String(a.Key, Hint(s))
	}
	masked, _ := mask.Logs.String(s)
	return slog.String(a.Key, masked)
}

// redactStructured renders v as JSON and redacts it as if each object member were an attribute.
func redactStructured(key string, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		masked, _ := mask.Logs.String(fmt.Sprintf("%+v", v))
		return masked
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if dec.Decode(&generic) != nil {
		return "[unloggable value]"
	}
	return redactGeneric(key, generic)
}

func redactGeneric(key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, member := range x {
			switch {
			case isSecretKey(k):
				x[k] = Redacted
			case isPersonalKey(k) && member != nil:
				x[k] = Hint(scalarText(member))
			default:
				x[k] = redactGeneric(k, member)
			}
		}
		return x
	case []any:
		for i := range x {
			x[i] = redactGeneric(key, x[i])
		}
		return x
	case string:
		masked, _ := mask.Logs.String(x)
		return masked
	case json.Number:
		if masked, n := mask.Logs.String(x.String()); n > 0 {
			return masked
		}
		return x
	default:
		return x
	}
}

func scalarText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
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
