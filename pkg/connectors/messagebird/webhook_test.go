package messagebird_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

// publicURL is what the webhook is registered with at MessageBird (the API Gateway custom
// domain, stage path and query); the fake POSTs to the receiver's loopback URL instead.
const publicURL = "https://api.example.com/prod/messagebird/webhook?tenant=acme"

func webhookSetup(t *testing.T) (env, *receiver) {
	e := setup(t)
	rc := newReceiver(t, publicURL, testSigningKey)
	e.fake.SetWebhook(messagebirdtest.Webhook{URL: rc.srv.URL + "/messagebird/webhook", PublicURL: publicURL})
	return e, rc
}

func TestVerifyJWTOnFakeWebhooks(t *testing.T) {
	e, rc := webhookSetup(t)
	inbound := func(sign messagebirdtest.SignOptions) (messagebirdtest.Delivery, verifyResult) {
		t.Helper()
		d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hello", Sign: sign})
		return d, rc.last(t)
	}

	t.Run("valid", func(t *testing.T) {
		before := time.Now()
		d, res := inbound(messagebirdtest.SignOptions{})
		if res.err != nil || d.Status != 200 {
			t.Fatalf("status %d, err %v", d.Status, res.err)
		}
		c := res.claims
		if c.Issuer != "MessageBird" || c.JTI == "" || c.JTI != d.JTI || c.URLHash != messagebird.Hash([]byte(publicURL)) ||
			c.PayloadHash != messagebird.Hash(d.Body) || c.ExpiresAt.Before(before.Add(50*time.Second)) || c.IssuedAt.IsZero() || c.NotBefore.IsZero() {
			t.Fatalf("claims %+v", c)
		}
		if !bytes.Contains(d.Body, []byte(`"msisdn":31612345678`)) {
			t.Fatalf("msisdn is not a JSON number in %s", d.Body)
		}
	})

	t.Run("the receiver's own URL is not the signed URL", func(t *testing.T) {
		d, _ := inbound(messagebirdtest.SignOptions{})
		_, err := messagebird.VerifyJWT(testSigningKey, d.Token, d.URL, d.Body, time.Now())
		if !errors.Is(err, messagebird.ErrURLHash) {
			t.Fatalf("verifying against the posted-to URL: %v", err)
		}
	})

	t.Run("replay carries the same jti", func(t *testing.T) {
		d, first := inbound(messagebirdtest.SignOptions{})
		r := e.fake.Replay(d)
		second := rc.last(t)
		if r.JTI != d.JTI || second.err != nil || second.claims.JTI != first.claims.JTI || !second.duplicate || string(r.Response) != "duplicate" {
			t.Fatalf("replay %+v / %+v", r, second)
		}
	})

	rejected := []struct {
		name string
		sign messagebirdtest.SignOptions
		want error
	}{
		{"tampered body", messagebirdtest.SignOptions{Tamper: func(b []byte) []byte { return bytes.Replace(b, []byte("hello"), []byte("HELLO"), 1) }}, messagebird.ErrPayloadHash},
		{"different URL", messagebirdtest.SignOptions{PublicURL: "https://api.example.com/prod/messagebird/webhook?tenant=other"}, messagebird.ErrURLHash},
		{"wrong key", messagebirdtest.SignOptions{Key: "someone-else"}, messagebird.ErrSignature},
		{"alg none", messagebirdtest.SignOptions{Alg: "none"}, messagebird.ErrAlgorithm},
		{"ES256", messagebirdtest.SignOptions{Alg: "ES256"}, messagebird.ErrAlgorithm},
		{"RS256", messagebirdtest.SignOptions{Alg: "RS256"}, messagebird.ErrAlgorithm},
		{"HMAC signature under an RS256 header", messagebirdtest.SignOptions{HeaderAlg: "RS256"}, messagebird.ErrAlgorithm},
		{"HMAC signature under an ES256 header", messagebirdtest.SignOptions{HeaderAlg: "ES256"}, messagebird.ErrAlgorithm},
		{"expired", messagebirdtest.SignOptions{TTL: -10 * time.Second}, messagebird.ErrExpired},
		{"nbf in the future", messagebirdtest.SignOptions{NotBefore: time.Minute}, messagebird.ErrNotYetValid},
		{"iat in the future", messagebirdtest.SignOptions{Now: time.Now().Add(time.Minute), OmitNotBefore: true}, messagebird.ErrNotYetValid},
		{"missing exp", messagebirdtest.SignOptions{OmitExp: true}, messagebird.ErrMissingExpiry},
		{"missing jti", messagebirdtest.SignOptions{OmitJTI: true}, messagebird.ErrMissingJTI},
		{"wrong issuer", messagebirdtest.SignOptions{Issuer: "Bird"}, messagebird.ErrIssuer},
		{"body without payload_hash", messagebirdtest.SignOptions{OmitPayloadHash: true}, messagebird.ErrPayloadPresent},
	}
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			d, res := inbound(tc.sign)
			if !errors.Is(res.err, tc.want) || d.Status != 401 {
				t.Fatalf("status %d, err %v; want 401 and %v", d.Status, res.err, tc.want)
			}
			var ve *messagebird.VerifyError
			if !errors.As(res.err, &ve) || ve.Check != tc.want {
				t.Fatalf("err %#v does not name the failed check", res.err)
			}
		})
	}

	for _, alg := range []string{"HS384", "HS512"} {
		t.Run(alg+" accepted", func(t *testing.T) {
			d, res := inbound(messagebirdtest.SignOptions{Alg: alg})
			if res.err != nil || d.Status != 200 {
				t.Fatalf("status %d, err %v", d.Status, res.err)
			}
		})
	}

	t.Run("empty body", func(t *testing.T) {
		d := e.fake.Post(nil, messagebirdtest.SignOptions{})
		if res := rc.last(t); d.Status != 200 || res.err != nil || res.claims.PayloadHash != "" {
			t.Fatalf("empty body without payload_hash: %d %v", d.Status, res.err)
		}
		d = e.fake.Post(nil, messagebirdtest.SignOptions{ForcePayloadHash: true})
		if res := rc.last(t); d.Status != 401 || !errors.Is(res.err, messagebird.ErrPayloadMissing) {
			t.Fatalf("empty body with payload_hash: %d %v", d.Status, res.err)
		}
		// The body removed in transit.
		ok := e.fake.Post([]byte(`{"type":"message.created"}`), messagebirdtest.SignOptions{})
		e.fake.PostRaw(nil, ok.Token)
		if res := rc.last(t); !errors.Is(res.err, messagebird.ErrPayloadMissing) {
			t.Fatalf("body removed: %v", res.err)
		}
	})
}

func TestVerifyJWTTimesAndInputs(t *testing.T) {
	fake := messagebirdtest.New(testAccessKey, testSigningKey)
	defer fake.Close()
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"message.created"}`)
	tok, jti := fake.Sign(body, messagebirdtest.SignOptions{Now: t0, TTL: time.Minute, PublicURL: publicURL})
	verify := func(at time.Time) error {
		_, err := messagebird.VerifyJWT(testSigningKey, tok, publicURL, body, at)
		return err
	}
	for _, tc := range []struct {
		at   time.Time
		want error
	}{
		{t0, nil},
		{t0.Add(-time.Second), nil}, // nbf/iat within the 1 s leeway
		{t0.Add(-2 * time.Second), messagebird.ErrNotYetValid},        // beyond it
		{t0.Add(time.Minute + 999*time.Millisecond), nil},             // exp within the leeway
		{t0.Add(time.Minute + 2*time.Second), messagebird.ErrExpired}, // beyond it
	} {
		if err := verify(tc.at); (tc.want == nil && err != nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("at %v: err %v, want %v", tc.at.Sub(t0), err, tc.want)
		}
	}
	c, err := messagebird.VerifyJWT(testSigningKey, tok, publicURL, body, t0)
	if err != nil || c.JTI != jti || !c.ExpiresAt.Equal(t0.Add(time.Minute)) || !c.NotBefore.Equal(t0) || !c.IssuedAt.Equal(t0) {
		t.Fatalf("claims %+v %v", c, err)
	}

	for name, tc := range map[string]struct {
		key, token string
		want       error
	}{
		"no header":      {testSigningKey, "", messagebird.ErrNoSignature},
		"no signing key": {"", tok, messagebird.ErrNoSigningKey},
		"garbage":        {testSigningKey, "not-a-jwt", messagebird.ErrMalformed},
		"two segments":   {testSigningKey, tok[:strings.LastIndex(tok, ".")], messagebird.ErrMalformed},
		"bad signature":  {testSigningKey, tok[:len(tok)-4] + "AAAA", messagebird.ErrSignature},
		"api key as key": {testAccessKey, tok, messagebird.ErrSignature},
	} {
		if _, err := messagebird.VerifyJWT(tc.key, tc.token, publicURL, body, t0); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", name, err, tc.want)
		}
	}
}

// MessageBird's own conformance vectors (messagebird/go-rest-api, signature_jwt/testdata/
// reference.json): tokens their service-side reference produced, verified at 2021-07-05T12:00:00+02:00.
func TestVerifyJWTMessageBirdReferenceVectors(t *testing.T) {
	const secret = "36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb"
	at := time.Date(2021, 7, 5, 10, 0, 0, 0, time.UTC)
	vectors := []struct {
		name, url, payload, token string
		want                      error
	}{
		{"no query, no payload", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.6Fp0rVOsRr1fj9S2GidXAfkmPVofKr8_RTffC6G6r2E", nil},
		{"query and payload", "https://example.com/path?bar=1&foo=2", "Hello, World!",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAiLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0._H--TOuYFLpeEH39-rg5E3IHVkjHozBcaKVWPRC5m9I", nil},
		{"HS384", "https://example.com/", "",
			"eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.KNMW-29X77lZeuPmThmHWc_RUAvTkaDkpxIZK6mqE08v8mWKiU9Edh4QXwAJO2nv", nil},
		{"HS512", "https://example.com/", "",
			"eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.rd6r0iMyNGnVPCwurETphE3Y8rpAyvvnUK0S8WvGUkt2E1QSRAZ7NZJZBHw1Y_Wb5W-sK9HJr_PRL2vz4jRT3Q", nil},
		{"received before nbf", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ4MjgwMCwiZXhwIjoxNjI1NDgyODYwLCJqdGkiOiJmOWY4YzM4Mi0yNDQ5LTQzMTEtYjcyYi0xZGY3MTY4NzkzMWUiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.ZELgDFNGhjZH9CffQKcq3sytBe2I0KciLxpBhcfstHQ", messagebird.ErrNotYetValid},
		{"received after exp", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3NTYwMCwiZXhwIjoxNjI1NDc1NjYwLCJqdGkiOiI1ZjAyZjUyMi02MDMwLTQ2YzgtYjVhMy0wMTI0NjQ3OGQ4YmMiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.45MSST3B_2PsjNUeiuW54_vUQgVw4rBXrdWrOUEz3lM", messagebird.ErrExpired},
		{"query reordered", "https://example.com/path?foo=1&bar=2", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiJhNzVjOTA5Ni1lODIzLTQ0MmItODVmMi03ZDNjOWQ5YjcyNmIiLCJ1cmxfaGFzaCI6IjZhMDIyZDgzNGMxODMzMGJhYWQ4YTJiZDYxMzUxNzNlZDIxNjEwYTQ1NDUxNmJlMGRmM2YxY2MwMTUxNjEwZWEifQ.z6Sw1XQIM0wuEQGBhXBdawDIIrtMg2XnmA_bpDq53pE", messagebird.ErrURLHash},
		{"payload does not match", "https://example.com/", "Hello, World!",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIxNDUwMTUzMi05NmYyLTQ2ODQtOTgzMi02OGYwOTUxYWUzNDIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDciLCJwYXlsb2FkX2hhc2giOiJmYjYyZjAyYWNkYTdkNzQxNzdhNzAxYTFjZTAwNmU2YmFjZDkwYzdkNGQ3YWI0ODE2OTJjMWRhNDdjODEwNzZiIn0.m79RCwO6dGa9pvzsQypkVuXQ6eM0CkRl6_U7MfWg6TM", messagebird.ErrPayloadHash},
		{"different secret", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIyNDNjMjdhZS0yZjAyLTQ2YTAtODg1Mi1jNjZmMzdlYTlmNDYiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.JgSeYyOtlEKAXk8bz30iJI4tXgf4lxknoiezawuVhb4", messagebird.ErrSignature},
		{"payload removed in transit", "https://example.com/", "",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiIxNDUwMTUzMi05NmYyLTQ2ODQtOTgzMi02OGYwOTUxYWUzNDIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDciLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0.bHfsjj3tljfzTufoG3EU3p_yFrQh9CufyzRSaRMd4ss", messagebird.ErrPayloadMissing},
		{"payload added in transit", "https://example.com/", "Hello, World!",
			"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.6Fp0rVOsRr1fj9S2GidXAfkmPVofKr8_RTffC6G6r2E", messagebird.ErrPayloadPresent},
		{"alg none", "https://example.com/", "",
			"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJNZXNzYWdlQmlyZCIsImlhdCI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.", messagebird.ErrAlgorithm},
	}
	for _, v := range vectors {
		_, err := messagebird.VerifyJWT(secret, v.token, v.url, []byte(v.payload), at)
		if (v.want == nil && err != nil) || (v.want != nil && !errors.Is(err, v.want)) {
			t.Errorf("%s: err %v, want %v", v.name, err, v.want)
		}
	}
}

// The client reads the signing key from the secret and picks up a rotated key.
func TestClientVerifyWebhookRotatedKey(t *testing.T) {
	e := setup(t)
	body := []byte(`{"type":"message.created"}`)
	old, _ := e.fake.Sign(body, messagebirdtest.SignOptions{PublicURL: publicURL})
	if _, err := e.client.VerifyWebhook(ctx(t), old, publicURL, body, time.Now()); err != nil {
		t.Fatal(err)
	}
	tok, _ := e.fake.Sign(body, messagebirdtest.SignOptions{PublicURL: publicURL, Key: "rotated-key"})
	e.secrets.set(messagebird.Credentials{AccessKey: testAccessKey, SigningKey: "rotated-key"}) // cache still has the old one
	if _, err := e.client.VerifyWebhook(ctx(t), tok, publicURL, body, time.Now()); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// Forged tokens do not make the client re-read the secret every time.
	inv := e.secrets.invalidations
	for i := 0; i < 5; i++ {
		forged, _ := e.fake.Sign(body, messagebirdtest.SignOptions{PublicURL: publicURL, Key: "attacker"})
		if _, err := e.client.VerifyWebhook(ctx(t), forged, publicURL, body, time.Now()); !errors.Is(err, messagebird.ErrSignature) {
			t.Fatalf("forged: %v", err)
		}
	}
	if n := e.secrets.invalidations - inv; n > 0 {
		t.Errorf("%d secret refreshes within a minute of the last one", n)
	}

	noKey := messagebird.New(e.fake.URL(), newSecrets(messagebird.Credentials{AccessKey: testAccessKey}), secretID, nil)
	if _, err := noKey.VerifyWebhook(ctx(t), tok, publicURL, body, time.Now()); connectors.KindOf(err) != connectors.KindConfig {
		t.Fatalf("no signing key: %v", err)
	}
}
