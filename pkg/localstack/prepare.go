package localstack

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// Some events cannot be stored ready to send: a webhook signature covers a time window (a
// MessageBird JWT expires after a minute) or the address of a local fake. Their files hold
// placeholders instead, and a function's preparer fills them in just before the event is sent:
// by the local stack (make invoke, the events test), or by `go run ./cmd/local sign` for
// `sam local invoke -e`, with the user's own keys from the environment.

// preparer fills in an event's placeholders; vars looks up the keys and addresses to use
// (names as in the README: MESSAGEBIRD_SIGNING_KEY, JIRA_WEBHOOK_SECRET, ...).
type preparer func(event []byte, vars func(string) string) ([]byte, error)

var preparers = map[string]preparer{}

// prepareWith registers a function's preparer; each function's file calls it in init.
func prepareWith(function string, p preparer) { preparers[function] = p }

// Prepare fills in an event for this stack: its fakes' addresses and its local keys. Events of
// functions without a preparer are returned as they are.
func (s *Stack) Prepare(function string, event []byte) ([]byte, error) {
	p, ok := preparers[function]
	if !ok {
		return event, nil
	}
	return p(event, s.eventVar)
}

// eventVar resolves a preparer's variable in the stack: what a system's fake registered, else
// the environment, else the local default.
func (s *Stack) eventVar(name string) string {
	s.mu.Lock()
	v, ok := s.eventVars[name]
	s.mu.Unlock()
	if ok {
		return v
	}
	return LocalEventVar(name, os.Getenv)
}

// setEventVar records a value preparers of this stack use (a fake's URL, a local key).
func (s *Stack) setEventVar(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eventVars == nil {
		s.eventVars = map[string]string{}
	}
	s.eventVars[name] = value
}

// localEventDefaults are the preparers' variables in the local world; each function's file adds
// its own.
var localEventDefaults = map[string]string{}

// LocalEventVar returns getenv(name), or the local world's value when it is unset.
func LocalEventVar(name string, getenv func(string) string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return localEventDefaults[name]
}

// Sign fills in an event outside any stack (for `sam local invoke -e`), with keys and addresses
// from getenv and the local defaults for what it does not set.
func Sign(function string, event []byte, getenv func(string) string) ([]byte, error) {
	p, ok := preparers[function]
	if !ok {
		names := make([]string, 0, len(preparers))
		for n := range preparers {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("events of %s need no signing (functions with signed events: %s)", function, strings.Join(names, ", "))
	}
	return p(event, func(name string) string { return LocalEventVar(name, getenv) })
}
