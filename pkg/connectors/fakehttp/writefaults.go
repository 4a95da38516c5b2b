package fakehttp

import "time"

// WriteFault is one way a write to another system fails in production, in the terms every
// fake's Failure shares: an answer (a status, a reset connection, or none within the caller's
// budget) before the system applied the write, or after it, when only the answer is lost.
type WriteFault struct {
	Name       string
	Status     int
	RetryAfter int // seconds
	Delay      time.Duration
	Reset      bool
	After      bool // the write took effect; only its answer is lost
}

// WriteFaults are the failures a write must survive without being lost or doubled: half of
// them after the system applied it. hang is how long the hangs last; make it outlast the
// caller's budget.
func WriteFaults(hang time.Duration) []WriteFault {
	return []WriteFault{
		{Name: "500 after the write", Status: 500, After: true},
		{Name: "502 after the write", Status: 502, After: true},
		{Name: "503 with Retry-After after the write", Status: 503, RetryAfter: 1, After: true},
		{Name: "504 after the write", Status: 504, After: true},
		{Name: "reset after the write", Reset: true, After: true},
		{Name: "hang after the write", Delay: hang, After: true},
		{Name: "503 before the write", Status: 503},
		{Name: "reset before the write", Reset: true},
		{Name: "hang before the write", Delay: hang},
		{Name: "429 with Retry-After", Status: 429, RetryAfter: 1},
	}
}
