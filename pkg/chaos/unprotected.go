package chaos

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
)

// unprotectedMessage is create-escalation's log line for a delivery made while the idempotency
// store could not be asked (pkg/escalation): the issue accepts that two such deliveries of one
// escalation, at the same time, can both create.
const unprotectedMessage = "idempotency store unavailable; delivering without duplicate protection"

// unprotectedLog passes the functions' log lines on and notes the escalations delivered
// without duplicate protection.
type unprotectedLog struct {
	next io.Writer

	mu   sync.Mutex
	part []byte
	ids  map[string]bool
}

func newUnprotectedLog(next io.Writer) *unprotectedLog {
	return &unprotectedLog{next: next, ids: map[string]bool{}}
}

func (l *unprotectedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		l.scan(l.part[:i])
		l.part = l.part[i+1:]
	}
	return l.next.Write(p)
}

// scan reads one "<function> | <JSON>" line.
func (l *unprotectedLog) scan(line []byte) {
	if !bytes.Contains(line, []byte(unprotectedMessage)) {
		return
	}
	if i := bytes.IndexByte(line, '{'); i >= 0 {
		var rec struct {
			Message      string `json:"message"`
			EscalationID string `json:"escalation_id"`
		}
		if json.Unmarshal(line[i:], &rec) == nil && rec.Message == unprotectedMessage && rec.EscalationID != "" {
			l.ids[rec.EscalationID] = true
		}
	}
}

// has says whether escalation id was delivered without duplicate protection at least once.
func (l *unprotectedLog) has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ids[id]
}
