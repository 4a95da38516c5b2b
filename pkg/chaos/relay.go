package chaos

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

// senderRetry is the wait before redelivery n (1, 2, ...) of a webhook that was not answered 2xx:
// 1, 2, 4, 8, then every 15 s. Jira and MessageBird redeliver failed webhooks but document no
// schedule; the suite's senders keep trying until the run ends, so what it measures is
// cxbridge, not a sender giving up.
func senderRetry(n int) time.Duration {
	return min(time.Second<<(n-1), 15*time.Second)
}

// relay stands between the fakes' webhook senders and the local API: it forwards each delivery,
// times cxbridge's answer, sends some deliveries twice while the faults are on (a sender or a
// network repeating itself), and redelivers those not answered 2xx, as the senders do.
type relay struct {
	ctx   context.Context // ends the senders' redeliveries
	api   string          // the local API's base URL
	plan  *plan
	calls *calls
	mb    *messagebirdtest.Server // re-signs a MessageBird redelivery whose token expired

	client  *http.Client
	srv     *http.Server
	pending sync.WaitGroup // redeliveries and duplicates still to be sent
}

func newRelay(ctx context.Context, api string, p *plan, c *calls, mb *messagebirdtest.Server) (*relay, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	// Longer than API Gateway's 29 s: the sender sees what the gateway answers.
	r := &relay{ctx: ctx, api: api, plan: p, calls: c, mb: mb, client: &http.Client{Timeout: 40 * time.Second}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, "http://" + ln.Addr().String(), nil
}

func (r *relay) Close() { _ = r.srv.Close() }

// delivery is one webhook as its sender made it.
type delivery struct {
	path   string // /jira/webhook or /messagebird/webhook
	header http.Header
	body   []byte
	key    string // the delivery's identity, for the fault plan and the report
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{path: req.URL.Path, header: req.Header.Clone(), body: body, key: deliveryKey(req.URL.Path, req.Header, body)}
	dup := r.plan.on.Load() && r.plan.roll("duplicate", d.key) < r.plan.rates.Duplicate
	if dup && r.plan.roll("duplicate-when", d.key) < 0.5 {
		r.pending.Go(func() { r.send(d, "duplicate (concurrent)") })
		dup = false
	}
	status, answer := r.send(d, "first")
	w.Header().Set("Content-Type", "application/json")
	if status == 0 {
		status = http.StatusBadGateway
	}
	w.WriteHeader(status)
	_, _ = w.Write(answer)
	if dup {
		r.pending.Go(func() { r.send(d, "duplicate (after the answer)") })
	}
	if status/100 != 2 {
		r.pending.Go(func() { r.redeliver(d) })
	}
}

// redeliver sends a failed delivery again on the sender's schedule until cxbridge takes it.
func (r *relay) redeliver(d delivery) {
	for n := 1; ; n++ {
		pause(r.ctx, senderRetry(n))
		if r.ctx.Err() != nil {
			return
		}
		d = r.refresh(d, n)
		if status, _ := r.send(d, "retry "+strconv.Itoa(n)); status/100 == 2 {
			return
		}
	}
}

// refresh prepares a redelivery: Jira numbers its retries; a MessageBird token about to expire
// is replaced by a new signature, as a sender signing each attempt would.
func (r *relay) refresh(d delivery, n int) delivery {
	d.header = d.header.Clone()
	if d.path == "/jira/webhook" {
		d.header.Set("X-Atlassian-Webhook-Retry", strconv.Itoa(n))
		return d
	}
	if exp, ok := tokenExpiry(d.header.Get("MessageBird-Signature-JWT")); ok && time.Until(exp) < 10*time.Second {
		token, _ := r.mb.Sign(d.body, messagebirdtest.SignOptions{})
		d.header.Set("MessageBird-Signature-JWT", token)
	}
	return d
}

// send posts a delivery to the local API and records the call.
func (r *relay) send(d delivery, attempt string) (int, []byte) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, r.api+d.path, bytes.NewReader(d.body))
	if err != nil {
		return 0, nil
	}
	req.Header = d.header.Clone()
	began := time.Now()
	resp, err := r.client.Do(req)
	c := call{Route: d.path, Key: d.key, Attempt: attempt, At: began, During: r.plan.on.Load()}
	if err != nil {
		c.Took, c.Err = time.Since(began), err.Error()
		r.calls.add(c)
		return 0, nil
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	c.Took, c.Status, c.Answer = time.Since(began), resp.StatusCode, answerOf(answer)
	r.calls.add(c)
	return resp.StatusCode, answer
}

// deliveryKey names a delivery: Jira's delivery id, or MessageBird's event and message id.
func deliveryKey(path string, h http.Header, body []byte) string {
	if id := h.Get("X-Atlassian-Webhook-Identifier"); id != "" {
		key := "jira " + id
		if m := findMarkers("", body); len(m) > 0 {
			key += " " + m[0]
		}
		return key
	}
	var ev struct {
		Type    string `json:"type"`
		Message *struct {
			ID string `json:"id"`
		} `json:"message"`
	}
	_ = json.Unmarshal(body, &ev)
	key := "messagebird " + ev.Type
	if ev.Message != nil {
		key += " " + ev.Message.ID
	}
	if m := findMarkers("", body); len(m) > 0 {
		key += " " + m[0]
	}
	return strings.TrimSpace(key + " " + path)
}

// tokenExpiry reads exp from a JWT without checking it (the receiver does that).
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(c.Exp, 0), true
}
