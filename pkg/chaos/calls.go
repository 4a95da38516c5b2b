package chaos

import (
	"encoding/json"
	"sort"
	"strconv"
	"sync"
	"time"
)

// call is one request into cxbridge and its answer.
type call struct {
	Route   string // /escalations, /jira/webhook, /messagebird/webhook
	Key     string // the escalation's conversation id, or the webhook delivery's key
	Attempt string // first, duplicate (...), retry n
	At      time.Time
	Took    time.Duration
	Status  int    // HTTP status; 0 when no answer came
	Err     string // transport error
	Answer  answer // the body's status fields, when it is JSON
	During  bool   // sent while the faults were on
}

// answer is what the suite reads of a JSON answer.
type answer struct {
	Status       string `json:"status"`
	Reason       string `json:"reason"`
	TicketKey    string `json:"ticketKey"`
	EscalationID string `json:"escalationId"`
	RequestKey   string `json:"requestKey"`
	Message      string `json:"message"` // API Gateway's own answers: {"message": "..."}
}

func answerOf(body []byte) answer {
	var a answer
	_ = json.Unmarshal(body, &a)
	return a
}

// outcome names an answer for the counts: "created", "queued/rate_limited", "http 502", ...
func (c call) outcome() string {
	s := c.Answer.Status
	if c.Answer.Reason != "" {
		s += "/" + c.Answer.Reason
	}
	switch {
	case c.Status == 0:
		return "no answer"
	case c.Status != 200 && s != "":
		return "http " + strconv.Itoa(c.Status) + " " + s
	case c.Status != 200:
		return "http " + strconv.Itoa(c.Status)
	case s == "":
		return "200"
	}
	return s
}

// calls records every call into cxbridge.
type calls struct{ recorder[call] }

// list is every call, in the order they were made.
func (cs *calls) list() []call {
	out := cs.snapshot()
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// recorder is a list that goroutines append to while the suite runs.
type recorder[T any] struct {
	mu    sync.Mutex
	items []T
}

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, v)
}

func (r *recorder[T]) snapshot() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// percentile of durations (p in 0..100); 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
