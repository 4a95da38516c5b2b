package jira_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
)

// FuzzVerifySignature: a body is accepted only with "sha256=" and the HMAC-SHA256 of exactly
// that body under the secret (recomputed here), and never with an empty secret.
func FuzzVerifySignature(f *testing.F) {
	secret, body := []byte("webhook-secret"), []byte(`{"webhookEvent":"comment_created"}`)
	f.Add(secret, body, jira.Sign(secret, body))
	f.Add(secret, body, strings.ToUpper(jira.Sign(secret, body)))
	f.Add(secret, append(body, ' '), jira.Sign(secret, body))
	f.Add([]byte{}, body, jira.Sign(nil, body))
	f.Add(secret, body, "sha1=0123")
	f.Add(secret, body, "sha256=")
	f.Add(secret, []byte{}, " "+jira.Sign(secret, nil)+" ")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		if jira.VerifySignature(secret, body, header) != nil {
			return
		}
		if len(secret) == 0 {
			t.Fatal("accepted with no secret")
		}
		algo, digest, _ := strings.Cut(strings.TrimSpace(header), "=")
		got, err := hex.DecodeString(digest)
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		if algo != "sha256" || err != nil || !hmac.Equal(got, m.Sum(nil)) {
			t.Fatalf("accepted %q for a body it does not sign", header)
		}
	})
}

// FuzzParseWebhook: any body parses or fails without a panic; a parsed comment's text is what
// CommentText makes of its raw body.
func FuzzParseWebhook(f *testing.F) {
	for _, s := range []string{
		`{"timestamp":1732270000000,"webhookEvent":"comment_created","issue":{"id":"10001","key":"SUPP-1","fields":{"status":{"name":"Done","statusCategory":{"key":"done"}}}},"comment":{"id":"1","body":{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"hi"},{"type":"mention","attrs":{"text":"@Ann"}}]}]},"jsdPublic":true}}`,
		`{"webhookEvent":"jira:issue_updated","changelog":{"items":[{"field":"status","fromString":"Open","toString":"Done"}]}}`,
		`{"webhookEvent":"comment_created","comment":{"body":"plain text"}}`,
		`{"webhookEvent":""}`, `{}`, `[]`, `{"webhookEvent":"x","comment":{"body":{"content":[{"content":[{"content":[]}]}]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := jira.ParseWebhook(body)
		if err != nil {
			return
		}
		if ev.WebhookEvent == "" {
			t.Fatalf("accepted an event without webhookEvent: %s", body)
		}
		if ev.Comment != nil && ev.Comment.Body != jira.CommentText(ev.Comment.RawBody) {
			t.Fatalf("comment text %q is not CommentText of %s", ev.Comment.Body, ev.Comment.RawBody)
		}
		_, _, _ = ev.StatusChange()
		_ = ev.IssueDone()
	})
}

// FuzzADF: any text becomes a valid ADF document whose plain text keeps every word in order,
// and appending to a document keeps what was there.
func FuzzADF(f *testing.F) {
	for _, s := range []string{"one line", "two\nlines", "two\n\nparagraphs", "\r\n\r\n", "", "  ", `{"type":"doc"}`, "emoji 😀 and \u0000 nul"} {
		f.Add(s, "appended")
	}
	f.Fuzz(func(t *testing.T, text, more string) {
		doc := jira.ADFDocument(text)
		if !json.Valid(doc) {
			t.Fatalf("ADFDocument(%q) is not JSON: %s", text, doc)
		}
		plain := jira.ADFText(doc)
		rest := plain
		for _, w := range strings.FieldsFunc(string([]rune(text)), unicode.IsSpace) { // JSON writes each invalid byte as U+FFFD
			k := strings.Index(rest, w)
			if k < 0 {
				t.Fatalf("word %q of %q lost: %q", w, text, plain)
			}
			rest = rest[k+len(w):]
		}
		both, err := jira.AppendADF(doc, more)
		if err != nil || !json.Valid(both) {
			t.Fatalf("AppendADF: %v %s", err, both)
		}
		var a, b struct{ Content []json.RawMessage }
		_ = json.Unmarshal(doc, &a)
		_ = json.Unmarshal(both, &b)
		if len(b.Content) < len(a.Content) {
			t.Fatalf("append lost content: %s -> %s", doc, both)
		}
		for i := range a.Content {
			if string(a.Content[i]) != string(b.Content[i]) {
				t.Fatalf("append changed node %d: %s -> %s", i, a.Content[i], b.Content[i])
			}
		}
	})
}
