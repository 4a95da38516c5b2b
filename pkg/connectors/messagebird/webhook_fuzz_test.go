package messagebird_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
)

const (
	fuzzKey = "fuzz-signing-key"
	fuzzURL = "https://hooks.example.com/messagebird/webhook?source=fuzz"
)

var fuzzNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func fuzzToken(alg jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	if k, ok := key.(string); ok {
		key = []byte(k)
	}
	s, err := jwt.NewWithClaims(alg, claims).SignedString(key)
	if err != nil {
		panic(err)
	}
	return s
}

// FuzzVerifyJWT: whatever the token, body and URL, a token is accepted only when its signature
// is the HMAC of its header and payload under the signing key (recomputed here without the JWT
// library), it names MessageBird as issuer and it hashes this very URL and body.
func FuzzVerifyJWT(f *testing.F) {
	body := `{"type":"message.created","message":{"id":"m1"}}`
	claims := func(extra map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "MessageBird", "jti": "j1", "nbf": fuzzNow.Add(-time.Minute).Unix(), "exp": fuzzNow.Add(time.Minute).Unix(),
			"url_hash": messagebird.Hash([]byte(fuzzURL)), "payload_hash": messagebird.Hash([]byte(body))}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	f.Add(fuzzToken(jwt.SigningMethodHS256, fuzzKey, claims(nil)), []byte(body), fuzzURL)
	f.Add(fuzzToken(jwt.SigningMethodHS512, fuzzKey, claims(nil)), []byte(body), fuzzURL)
	f.Add(fuzzToken(jwt.SigningMethodHS256, "other key", claims(nil)), []byte(body), fuzzURL)
	f.Add(fuzzToken(jwt.SigningMethodHS256, fuzzKey, claims(map[string]any{"iss": "Evil"})), []byte(body), fuzzURL)
	f.Add(fuzzToken(jwt.SigningMethodHS256, fuzzKey, claims(map[string]any{"exp": fuzzNow.Add(-time.Hour).Unix()})), []byte(body), fuzzURL)
	f.Add(fuzzToken(jwt.SigningMethodHS256, fuzzKey, claims(nil)), []byte(body+" "), fuzzURL)
	f.Add(fuzzToken(jwt.SigningMethodHS256, fuzzKey, claims(nil)), []byte(body), fuzzURL+"&x=1")
	f.Add(fuzzToken(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), []byte(body), fuzzURL)
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJNZXNzYWdlQmlyZCJ9.", []byte(""), fuzzURL)
	f.Add("", []byte(body), fuzzURL)
	f.Fuzz(func(t *testing.T, token string, body []byte, url string) {
		if _, err := messagebird.VerifyJWT(fuzzKey, token, url, body, fuzzNow); err != nil {
			return
		}
		parts := strings.Split(strings.TrimSpace(token), ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d parts: %q", len(parts), token)
		}
		var header struct{ Alg string }
		h, _ := base64.RawURLEncoding.DecodeString(parts[0])
		if json.Unmarshal(h, &header) != nil {
			t.Fatalf("accepted a token whose header is not JSON: %q", token)
		}
		var mac func() hash.Hash
		switch header.Alg {
		case "HS256":
			mac = sha256.New
		case "HS384":
			mac = sha512.New384
		case "HS512":
			mac = sha512.New
		default:
			t.Fatalf("accepted alg %q", header.Alg)
		}
		m := hmac.New(mac, []byte(fuzzKey))
		m.Write([]byte(parts[0] + "." + parts[1]))
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
			t.Fatalf("accepted a token not signed with the key: %q", token)
		}
		var c struct {
			Iss         string `json:"iss"`
			URLHash     string `json:"url_hash"`
			PayloadHash string `json:"payload_hash"`
		}
		p, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if json.Unmarshal(p, &c) != nil || c.Iss != "MessageBird" || c.URLHash != messagebird.Hash([]byte(url)) {
			t.Fatalf("accepted claims %s for %q", p, url)
		}
		if len(body) > 0 && c.PayloadHash != messagebird.Hash(body) || len(body) == 0 && c.PayloadHash != "" {
			t.Fatalf("accepted payload_hash %q for body %q", c.PayloadHash, body)
		}
	})
}

// FuzzParseEvent: any body either fails with ErrBadEvent or gives an event whose type is set
// and whose message or conversation is there when the type says so.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{"type":"message.created","contact":{"id":"c1","msisdn":31612345678},"conversation":{"id":"cv1","status":"active"},"message":{"id":"m1","direction":"received","type":"text","content":{"text":"hi"}}}`,
		`{"type":"conversation.updated","conversation":{"id":"cv1"}}`,
		`{"type":"message.created"}`, `{"type":""}`, `{"contact":{"msisdn":"+31612345678"}}`, `{"type":"message.updated","message":{"content":{"image":{"url":"x"}}}}`,
		`[]`, `null`, ``, `{"type":"message.created","message":{"status":"failed","error":{"code":470}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := messagebird.ParseEvent(body)
		if err != nil {
			if !strings.Contains(err.Error(), messagebird.ErrBadEvent.Error()) {
				t.Fatalf("error that is not ErrBadEvent: %v", err)
			}
			return
		}
		if ev.Type == "" || strings.HasPrefix(ev.Type, "message.") && ev.Message == nil || strings.HasPrefix(ev.Type, "conversation.") && ev.Conversation == nil {
			t.Fatalf("accepted an incomplete event: %s", body)
		}
		_ = ev.Inbound()
		if ev.Contact != nil {
			_, _ = ev.Contact.E164(), ev.Contact.Name()
		}
		if ev.Message != nil {
			_ = ev.Message.Failure()
			_, _ = ev.Message.Content.Attachment()
		}
	})
}
