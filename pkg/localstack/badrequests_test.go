package localstack_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/hmacauth"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// The bad-request corpus: every route gets empty, deeply nested, non-UTF-8, repeated-key,
// mistyped, unknown-field, non-object, trailing-data and wrong-content-type bodies, headers in
// odd case, and a 10 MB body, through its function's real bootstrap under the Runtime API
// emulator, as API Gateway delivers them. Every answer is a clear 4xx naming the field (or,
// for a webhook, its documented status), never a 5xx or a crash, and a 4xx changes nothing:
// no call reaches a fake, no item is written to either table.

// badRoute is one route and what a good request to it looks like.
type badRoute struct {
	fn, path string
	event    string // an event under events/ whose body and headers make a good request
	sign     bool   // the route's signature is computed over the body (webhooks, priority-sync)
	// textField takes a string; intField (if any) a whole number.
	textField, intField string
	// lenient routes may accept a malformed optional field and answer 200 with a warning
	// (create-escalation): for them only "no 5xx, a 4xx names a field, no side effect on a 4xx"
	// is checked.
	lenient bool
	// webhook routes answer what MessageBird and Jira expect: a 4xx, or 200 "ignored" for an
	// event they do not act on.
	webhook bool
}

var badRoutes = []badRoute{
	{fn: "telemetry-tier", path: "/telemetry/tier", event: "telemetry-tier/normal.json", textField: "customerId"},
	{fn: "servicenow-lookup", path: "/servicenow/lookup", event: "servicenow-lookup/match-by-ani.json", textField: "ani"},
	{fn: "create-escalation", path: "/escalations", event: "create-escalation/vip.json", textField: "customerName", intField: "holdSeconds", lenient: true},
	{fn: "priority-sync", path: "/priority-sync", event: "priority-sync/raised.json", sign: true, textField: "incidentSysId"},
	{fn: "messagebird-inbound", path: "/messagebird/webhook", event: "messagebird-inbound/echo-of-sent-message.json", sign: true, webhook: true, textField: "type"},
	{fn: "messagebird-inbound", path: "/jira/webhook", event: "messagebird-inbound/jira-internal-comment.json", sign: true, webhook: true, textField: "webhookEvent"},
}

// badCase changes a good request into a bad one.
type badCase struct {
	name string
	// body makes the bad body from the good one (nil: keep it)
	body func(r badRoute, good string) string
	// headers changes the headers (names as sent)
	headers func(h map[string]string)
	// want is the status a strict route answers and the field it names; ok means the request
	// is good after all and must be answered as the good one is.
	status int
	field  func(r badRoute) string
	ok     bool
	// forged is for signed routes only: the signature covers another body, or is missing.
	forged, unsigned bool
}

func named(f string) func(badRoute) string { return func(badRoute) string { return f } }

// withField sets key to value (raw JSON, written as given) in the good body's object.
func withField(good, key, value string) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(good), &m); err != nil {
		panic(err)
	}
	delete(m, key)
	rest, _ := json.Marshal(m)
	if len(m) == 0 {
		return "{" + strconv.Quote(key) + ":" + value + "}"
	}
	return "{" + strconv.Quote(key) + ":" + value + "," + string(rest[1:])
}

// twice sends key a second time, first, in the good body.
func twice(good, key, value string) string {
	return "{" + strconv.Quote(key) + ":" + value + "," + strings.TrimPrefix(strings.TrimSpace(good), "{")
}

var badCases = []badCase{
	{name: "empty body", body: func(badRoute, string) string { return "" }, status: 400, field: named("body")},
	{name: "whitespace body", body: func(badRoute, string) string { return " \n\t " }, status: 400, field: named("body")},
	{name: "deeply nested JSON", body: func(r badRoute, _ string) string { // deeper than any JSON decoder goes
		return `{"` + r.textField + `":` + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "}"
	}, status: 400, field: named("body")},
	{name: "deeply nested and large", body: func(r badRoute, _ string) string {
		return `{"` + r.textField + `":` + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000) + "}"
	}, status: 413, field: named("body")},
	{name: "nested JSON within the limit", body: func(r badRoute, good string) string {
		return withField(good, r.textField, strings.Repeat(`{"a":`, 500)+"1"+strings.Repeat("}", 500))
	}, status: 400, field: func(r badRoute) string { return r.textField }},
	{name: "invalid UTF-8", body: func(r badRoute, good string) string { return withField(good, r.textField, "\"\xff\xfe\xfd\"") },
		status: 400, field: func(r badRoute) string { return r.textField }},
	{name: "duplicate key", body: func(r badRoute, good string) string { return twice(good, r.textField, `"first"`) },
		status: 400, field: func(r badRoute) string { return r.textField }},
	{name: "object where a string belongs", body: func(r badRoute, good string) string { return withField(good, r.textField, `{"value":"x"}`) },
		status: 400, field: func(r badRoute) string { return r.textField }},
	{name: "array where a string belongs", body: func(r badRoute, good string) string { return withField(good, r.textField, `["x","y"]`) },
		status: 400, field: func(r badRoute) string { return r.textField }},
	{name: "string where a number belongs", body: func(r badRoute, good string) string {
		if r.intField == "" {
			return withField(good, r.textField, `{}`)
		}
		return withField(good, r.intField, `"four minutes"`)
	}, status: 400, field: func(r badRoute) string { return cmp(r.intField, r.textField) }},
	{name: "unknown field", body: func(_ badRoute, good string) string { return withField(good, "conversation_id", `"x"`) },
		status: 400, field: named("conversation_id")},
	{name: "array body", body: func(badRoute, string) string { return `[{"a":1}]` }, status: 400, field: named("body")},
	{name: "string body", body: func(badRoute, string) string { return `"hello"` }, status: 400, field: named("body")},
	{name: "null body", body: func(badRoute, string) string { return `null` }, status: 400, field: named("body")},
	{name: "truncated JSON", body: func(_ badRoute, good string) string { return good[:len(good)/2] }, status: 400, field: named("body")},
	{name: "trailing data", body: func(_ badRoute, good string) string { return good + `{}` }, status: 400, field: named("body")},
	{name: "wrong content type", headers: func(h map[string]string) { setH(h, "Content-Type", "text/plain") }, status: 415, field: named("Content-Type")},
	{name: "form content type", headers: func(h map[string]string) { setH(h, "Content-Type", "application/x-www-form-urlencoded") }, status: 415, field: named("Content-Type")},
	{name: "no content type", headers: func(h map[string]string) { delH(h, "Content-Type") }, status: 415, field: named("Content-Type")},
	{name: "no signature", unsigned: true, status: 401},
	{name: "signature of another body", forged: true, status: 401},
	{name: "headers in odd case", headers: func(h map[string]string) {
		for k, v := range h {
			delete(h, k)
			h[oddCase(k)] = v
		}
	}, ok: true},
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func setH(h map[string]string, name, value string) {
	delH(h, name)
	h[name] = value
}

func delH(h map[string]string, name string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
}

// oddCase writes a header name in alternating case: content-type -> cOnTeNt-tYpE.
func oddCase(s string) string {
	b := []byte(strings.ToLower(s))
	for i := range b {
		if i%2 == 1 && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

func TestBadRequestsThroughTheRealBootstraps(t *testing.T) {
	st := stack(t)
	ctx := context.Background()
	root, err := dynamotest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range badRoutes {
		raw, err := os.ReadFile(filepath.Join(root, "events", r.event))
		if err != nil {
			t.Fatal(err)
		}
		var good events.APIGatewayProxyRequest
		if err := json.Unmarshal(raw, &good); err != nil {
			t.Fatal(err)
		}
		fn, err := st.Function(ctx, r.fn)
		if err != nil {
			t.Fatal(err)
		}
		send := func(t *testing.T, body string, headers map[string]string, c badCase) (int, string) {
			t.Helper()
			ev := good
			ev.Headers, ev.MultiValueHeaders, ev.Body, ev.IsBase64Encoded = headers, nil, body, false
			if !utf8.ValidString(body) { // what API Gateway does with bytes that are not text
				ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(body)), true
			}
			switch {
			case c.unsigned:
			case c.forged:
				sign(headers, r, []byte(body+" "), st)
			case r.sign: // a valid signature over exactly these bytes: the body is what is bad
				sign(headers, r, []byte(body), st)
			}
			event, _ := json.Marshal(ev)
			res, err := fn.Invoke(ctx, event)
			if err != nil {
				t.Fatal(err)
			}
			if res.FunctionError != "" {
				t.Fatalf("the function failed (%s): %s", res.FunctionError, res.Payload)
			}
			var resp events.APIGatewayProxyResponse
			if err := json.Unmarshal(res.Payload, &resp); err != nil || resp.StatusCode == 0 {
				t.Fatalf("not a proxy response: %s", res.Payload)
			}
			return resp.StatusCode, resp.Body
		}
		goodHeaders := func() map[string]string {
			h := map[string]string{}
			for k, v := range good.Headers {
				h[k] = v
			}
			return h
		}
		goodStatus, goodBody := send(t, good.Body, goodHeaders(), badCase{})
		if goodStatus != 200 {
			t.Fatalf("%s: the good request is answered %d: %s", r.path, goodStatus, goodBody)
		}

		for _, c := range badCases {
			if (c.unsigned || c.forged) && !r.sign {
				continue // Genesys-facing routes are authorised by API Gateway's key
			}
			t.Run(r.path+"/"+c.name, func(t *testing.T) {
				body, headers := good.Body, goodHeaders()
				if c.body != nil {
					body = c.body(r, good.Body)
				}
				if c.ok {
					body = fresh(body) // a good request sent again is a new delivery, not a replay
				}
				if c.headers != nil {
					c.headers(headers)
				}
				before := snapshot(t, st)
				status, answer := send(t, body, headers, c)
				after := snapshot(t, st)
				short := answer
				if len(short) > 300 {
					short = short[:300] + "..."
				}
				t.Logf("answered %d: %s", status, short)
				if status >= 500 {
					t.Fatalf("answered %d: %s", status, short)
				}
				if c.ok {
					if status != goodStatus {
						t.Fatalf("answered %d, the same request in canonical case %d: %s", status, goodStatus, short)
					}
					return
				}
				if status == 200 && (r.lenient || r.webhook && (strings.Contains(answer, `"status":"ignored"`) || strings.Contains(answer, `"status":"duplicate"`))) {
					return // accepted with a warning; a webhook event acknowledged and ignored, or a delivery seen before
				}
				if status < 400 || status > 499 {
					t.Fatalf("answered %d; want a 4xx: %s", status, short)
				}
				var rej struct {
					Status string
					Error  struct{ Code, Message, Field string }
				}
				if json.Unmarshal([]byte(answer), &rej) != nil || rej.Status != "rejected" || rej.Error.Field == "" || rej.Error.Message == "" {
					t.Fatalf("a %d must name the field: %s", status, short)
				}
				if c.unsigned || c.forged {
					if status != 401 {
						t.Errorf("answered %d; want 401: %s", status, short)
					}
				} else if want := c.field(r); !r.lenient && !r.webhook && (status != c.status || rej.Error.Field != want) {
					t.Errorf("answered %d naming %q; want %d naming %q: %s", status, rej.Error.Field, c.status, want, short)
				}
				if d := before.diff(after); d != "" {
					t.Errorf("a %d had side effects: %s", status, d)
				}
			})
		}
	}

	// 10 MB through the local API, as API Gateway receives it: Lambda takes at most 6 MB, so
	// the gateway answers 413 and the function never runs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: st.API()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	big := `{"x":"` + strings.Repeat("a", 10<<20-8) + `"}`
	for _, r := range badRoutes {
		t.Run(r.path+"/10 MB body", func(t *testing.T) {
			before := snapshot(t, st)
			req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+r.path, bytes.NewReader([]byte(big)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("x-api-key", localstack.LocalAPIKey)
			if r.fn == "priority-sync" {
				req.Header.Set("x-api-key", localstack.LocalServiceNowAPIKey)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "Request Too Long") {
				t.Fatalf("10 MB: %d %s", resp.StatusCode, b)
			}
			if d := before.diff(snapshot(t, st)); d != "" {
				t.Errorf("side effects: %s", d)
			}
		})
	}
}

// sign signs a request to a webhook or priority-sync as its sender would.
func sign(h map[string]string, r badRoute, body []byte, st *localstack.Stack) {
	switch r.path {
	case "/priority-sync":
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		setH(h, hmacauth.HeaderTimestamp, ts)
		setH(h, hmacauth.HeaderSignature, hmacauth.Sign([]byte(localstack.LocalServiceNowSigningKey), ts, body))
	case "/messagebird/webhook":
		token, _ := st.MessageBird().Sign(body, messagebirdtest.SignOptions{PublicURL: localstack.LocalMessageBirdWebhookURL})
		setH(h, messagebird.SignatureHeader, token)
	case "/jira/webhook":
		setH(h, jira.HeaderSignature, jira.Sign([]byte(localstack.LocalJiraWebhookSecret), body))
	}
}

// fresh gives a good request a new delivery id, where it has one, so sending it again is not
// a replay.
func fresh(body string) string {
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) != nil {
		return body
	}
	if _, ok := m["deliveryId"]; !ok {
		return body
	}
	m["deliveryId"] = fmt.Sprintf("%032x", time.Now().UnixNano())
	b, _ := json.Marshal(m)
	return string(b)
}

// world is what a request could have changed: calls each fake received, items in each table.
type world map[string]int

func snapshot(t *testing.T, st *localstack.Stack) world {
	t.Helper()
	w := world{
		"ServiceNow calls":  st.ServiceNow().Calls(""),
		"Jira calls":        len(st.Jira().Received("")),
		"Genesys calls":     len(st.Genesys().Received("")),
		"MessageBird calls": len(st.MessageBird().Received("")),
		"telemetry calls":   len(st.Telemetry().Received()),
	}
	db := st.DynamoDB.Client()
	for name, table := range map[string]string{"state items": st.Tables.State, "idempotency items": st.Tables.Idempotency} {
		out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), Select: types.SelectCount})
		if err != nil {
			t.Fatal(err)
		}
		w[name] = int(out.Count)
	}
	return w
}

func (w world) diff(after world) string {
	var d []string
	for k, v := range w {
		if after[k] != v {
			d = append(d, fmt.Sprintf("%s %d -> %d", k, v, after[k]))
		}
	}
	return strings.Join(d, ", ")
}
