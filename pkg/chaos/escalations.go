package chaos

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// escalationCase is one escalation the suite raises, as a Genesys flow would.
type escalationCase struct {
	Index          int
	ConversationID string
	Trigger        string
	Target         string
	ID             string // the escalation id cxbridge derives: its ticket marker
	Payload        []byte
	Dup            string // "", "concurrent" or "after the answer"
}

var triggers = []string{"vip", "hold_time", "wrap_up", "manual"}

// newEscalation builds escalation i of a run: alternately Jira and ServiceNow, every trigger, a
// customer e-mail on some (one more Jira call: the customer lookup).
func newEscalation(seed int64, i int) escalationCase {
	c := escalationCase{
		Index:          i,
		ConversationID: "chaos-" + letters(seed) + "-e" + letters(int64(i)),
		Trigger:        triggers[(i/2)%len(triggers)],
		Target:         []string{"jira", "servicenow"}[i%2],
	}
	// cxbridge's escalation id without an idempotencyKey: SHA-256 over "conversation",
	// conversationId and trigger (pkg/escalation). The suite checks it against every answer.
	sum := sha256.Sum256([]byte("conversation\x00" + c.ConversationID + "\x00" + c.Trigger))
	c.ID = hex.EncodeToString(sum[:])[:24]
	body := map[string]any{
		"conversationId": c.ConversationID, "trigger": c.Trigger, "target": c.Target,
		"customerName": fmt.Sprintf("Chaos Caller %d", i), "agentName": "Alex Agent", "queueName": "Support L2",
		"description": fmt.Sprintf("Escalation %d of a fault-injection run (seed %d).", i, seed),
	}
	if c.Trigger == "hold_time" {
		body["holdSeconds"] = 900
	}
	if i%4 == 0 {
		body["customerEmail"] = localstack.JiraCustomerEmail
	}
	c.Payload, _ = json.Marshal(body)
	return c
}

// letters writes n in decimal with the letters g to p for 0 to 9. The suite's ids carry no
// digits, so no id can match the local world's seeded traps (a ServiceNow query with the digits
// 0429 is rate-limited for an hour) and no id is masked as a number.
func letters(n int64) string {
	const alphabet = "ghijklmnop"
	b := []byte(strconv.FormatInt(n, 10))
	for i, c := range b {
		if c >= '0' && c <= '9' {
			b[i] = alphabet[c-'0']
		}
	}
	return strings.ReplaceAll(string(b), "-", "m")
}

// escalations raises every escalation with cfg.Parallel callers; midway it stalls DynamoDB.
func (r *run) escalations(ctx context.Context) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range r.cfg.Parallel {
		wg.Go(func() {
			for i := range jobs {
				r.escalate(ctx, &r.cases[i])
			}
		})
	}
	for i := range r.cases {
		if i == len(r.cases)/2 {
			r.pauseDynamoDB()
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
}

// escalate sends one escalation, and for some a duplicate: at the same time, or once the first
// is answered (Genesys retrying, a flow running the action twice). An answer failed /
// state_unavailable sends the flow down its documented fallback branch: wait a minute and call
// again with the same inputs and the attempt number.
func (r *run) escalate(ctx context.Context, c *escalationCase) {
	if r.plan.roll("duplicate", c.ConversationID) < r.plan.rates.Duplicate {
		c.Dup = "concurrent"
		if r.plan.roll("duplicate-when", c.ConversationID) < 0.5 {
			c.Dup = "after the answer"
		}
	}
	var dup sync.WaitGroup
	var dupAnswer call
	if c.Dup == "concurrent" {
		dup.Go(func() { dupAnswer = r.postEscalation(ctx, c, "duplicate (concurrent)") })
	}
	answers := []call{r.postEscalation(ctx, c, "first")}
	if c.Dup == "after the answer" {
		answers = append(answers, r.postEscalation(ctx, c, "duplicate (after the answer)"))
	}
	dup.Wait()
	if c.Dup == "concurrent" {
		answers = append(answers, dupAnswer)
	}
	for _, a := range answers {
		if stateUnavailable(a) {
			r.bg.Go(func() { r.fallback(c) })
			return
		}
	}
}

// fallback is the flow's branch for failed / state_unavailable: a minute later the same
// request again, with attempt 2 (then 3 and 4), up to three times while the answer stays the
// same, as the escalation-trigger flow outline says.
func (r *run) fallback(c *escalationCase) {
	for n := 1; n <= 3; n++ {
		pause(r.flows, time.Minute)
		if r.flows.Err() != nil {
			return
		}
		var in map[string]any
		if err := json.Unmarshal(c.Payload, &in); err != nil {
			panic(err) // the suite built the payload
		}
		in["attempt"] = n + 1
		payload, _ := json.Marshal(in)
		if !stateUnavailable(r.post(r.flows, c, payload, fmt.Sprintf("fallback %d, a minute after failed/state_unavailable", n))) {
			return
		}
	}
}

func stateUnavailable(c call) bool {
	return c.Status == http.StatusOK && c.Answer.Status == "failed" && c.Answer.Reason == "state_unavailable"
}

func (r *run) postEscalation(ctx context.Context, c *escalationCase, attempt string) call {
	return r.post(ctx, c, c.Payload, attempt)
}

func (r *run) post(ctx context.Context, c *escalationCase, payload []byte, attempt string) call {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.api+"/escalations", bytes.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", localstack.LocalAPIKey)
	began := time.Now()
	cl := call{Route: "/escalations", Key: c.ConversationID, Attempt: attempt, At: began, During: r.plan.on.Load()}
	resp, err := r.client.Do(req)
	if err != nil {
		cl.Took, cl.Err = time.Since(began), err.Error()
		r.calls.add(cl)
		return cl
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cl.Took, cl.Status, cl.Answer = time.Since(began), resp.StatusCode, answerOf(body)
	r.calls.add(cl)
	return cl
}

// pauseDynamoDB stalls DynamoDB Local for cfg.PauseDynamoDB, in the background.
func (r *run) pauseDynamoDB() {
	if r.cfg.PauseDynamoDB <= 0 {
		return
	}
	if err := r.st.DynamoDB.Pause(); err != nil {
		r.pauseErr = err
		return
	}
	r.pausedAt = time.Now()
	r.bg.Go(func() {
		time.Sleep(r.cfg.PauseDynamoDB)
		r.resumeDynamoDB()
	})
}

func (r *run) resumeDynamoDB() {
	r.pauseOnce.Do(func() {
		if err := r.st.DynamoDB.Resume(); err != nil {
			r.pauseErr = err
		}
		r.resumedAt = time.Now()
	})
}
