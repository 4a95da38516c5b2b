package escalation

import (
	"sync"
	"time"
)

// recentLimit is how many answers an execution environment remembers.
const recentLimit = 2000

// recentAnswers is an execution environment's memory of the answers it gave, consulted only
// when the idempotency store cannot be asked: a repeat that reaches the same environment (a
// Genesys retry on a warm Lambda) then gets the first answer instead of a second ticket. It is
// bounded; the oldest answers are forgotten first.
type recentAnswers struct {
	mu    sync.Mutex
	byID  map[string]recentAnswer
	order []string
}

type recentAnswer struct {
	res     Result
	expires time.Time
}

func (r *recentAnswers) put(id string, res Result, expires time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID == nil {
		r.byID = map[string]recentAnswer{}
	}
	if _, ok := r.byID[id]; !ok {
		r.order = append(r.order, id)
	}
	r.byID[id] = recentAnswer{res: res, expires: expires}
	for len(r.order) > recentLimit {
		delete(r.byID, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *recentAnswers) get(id string, now time.Time) (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.byID[id]
	if !ok || !now.Before(a.expires) {
		return Result{}, false
	}
	return a.res, true
}
