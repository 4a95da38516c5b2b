package chaos

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
)

// Rates are the probabilities of each fault, per request to an external system (Kill: per
// ticket create; Duplicate: per call into cxbridge) while the faults are on.
type Rates struct {
	ServerError float64 // 500, 502, 503 or 504, half of them after the system applied the request
	RateLimited float64 // 429 with Retry-After, never applied
	Hang        float64 // no answer until the caller gives up, half of them after applying the request
	Kill        float64 // the function process is killed after its ticket create was applied
	Duplicate   float64 // the same call into cxbridge is sent twice, at once or after the answer
}

// DefaultRates are the rates of the promise's proof.
var DefaultRates = Rates{ServerError: 0.20, RateLimited: 0.10, Hang: 0.05, Kill: 0.02, Duplicate: 0.20}

// kind is the fault a request gets.
type kind int

const (
	pass kind = iota
	serverError
	rateLimited
	hang
	kill
)

func (k kind) String() string {
	return [...]string{"pass", "5xx", "429", "hang", "kill"}[k]
}

// fault is the decision for one request.
type fault struct {
	kind        kind
	status      int  // serverError, rateLimited
	afterCommit bool // forward first, let the system apply it, then fail
	retryAfter  int  // seconds; 0: no Retry-After
}

// plan decides faults from the seed and the identity of each request, not from the order in
// which concurrent requests happen to arrive: the n-th request of a kind for one escalation
// gets the same fault in every run with the same seed.
type plan struct {
	seed  int64
	rates Rates
	on    atomic.Bool
	// slow delays every request by a second, no fault: the warm-up's calls then overlap, so
	// each gets an execution environment of its own.
	slow atomic.Bool

	mu   sync.Mutex
	seen map[string]int
}

func newPlan(seed int64, r Rates) *plan {
	return &plan{seed: seed, rates: r, seen: map[string]int{}}
}

// roll returns a number in [0, 1) for a key, the same for the same seed and key. SHA-256, not
// a fast hash: keys differing in their last character (the n-th request of a kind) must give
// unrelated numbers.
func (p *plan) roll(parts ...string) float64 {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(p.seed))
	h.Write(b[:])
	for _, s := range parts {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	// The top 53 bits make an evenly spread float64.
	return float64(binary.BigEndian.Uint64(h.Sum(nil))>>11) / float64(uint64(1)<<53)
}

// occurrence counts requests with the same identity: the first is 0.
func (p *plan) occurrence(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.seen[key]
	p.seen[key] = n + 1
	return n
}

// decide picks the fault of one request. create says the request makes a ticket (the only ones
// whose process may be killed); write says it changes something (only then does "after commit"
// mean anything, but reads get the same mix so that the proportions hold).
func (p *plan) decide(key string, create bool) fault {
	if !p.on.Load() {
		return fault{kind: pass}
	}
	n := p.occurrence(key)
	id := key + "#" + strconv.Itoa(n)
	r := p.rates
	u := p.roll("fault", id)
	sub := p.roll("detail", id)
	if create {
		if p.roll("kill", id) < r.Kill {
			return fault{kind: kill, afterCommit: true}
		}
	}
	switch {
	case u < r.ServerError:
		f := fault{kind: serverError, status: []int{500, 502, 503, 504}[int(sub*4)%4], afterCommit: sub*8-math.Floor(sub*8) < 0.5}
		if f.status == 503 && p.roll("retry-after", id) < 0.5 {
			f.retryAfter = 1 + int(p.roll("seconds", id)*3)
		}
		return f
	case u < r.ServerError+r.RateLimited:
		return fault{kind: rateLimited, status: 429, retryAfter: 1 + int(sub*3)}
	case u < r.ServerError+r.RateLimited+r.Hang:
		return fault{kind: hang, afterCommit: sub < 0.5}
	}
	return fault{kind: pass}
}
