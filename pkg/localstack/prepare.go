package localstack

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Some events cannot be stored ready to send: a webhook signature covers a time window (a
// MessageBird JWT expires after a minute) or the address of a local fake. Their files hold
// placeholders instead, and a function's preparer fills them in just before the event is sent:
// by the local stack (make invoke, the events test), or by `go run ./cmd/local sign` for
// `sam local invoke -e`, with the user's own keys from the environment.

// preparer fills in an event just before it is sent. s is the stack sending it, or nil when
// the event is prepared for use elsewhere (`go run ./cmd/local sign`); vars looks up the keys and
// addresses to use (names as in the README: MESSAGEBIRD_SIGNING_KEY, JIRA_WEBHOOK_SECRET,
// SERVICENOW_SIGNING_KEY, ...).
type preparer func(ctx context.Context, s *Stack, vars func(string) string, event []byte) ([]byte, error)

// preparers are keyed by "<function>" or, for one file, "<function>/<file>".
var preparers = map[string]preparer{}

// prepareWith registers a preparer for every event of a function ("messagebird-inbound") or for
// one file ("priority-sync/replay.json"); each function's file calls it in init.
func prepareWith(key string, p preparer) { preparers[key] = p }

// preparerFor finds the preparer of an event file (events/<function>/<file>).
func preparerFor(eventPath string) (preparer, string, bool) {
	p := filepath.ToSlash(eventPath)
	dir, file := path.Split(p)
	fn := path.Base(strings.TrimSuffix(dir, "/"))
	if f, ok := preparers[fn+"/"+file]; ok {
		return f, fn, true
	}
	f, ok := preparers[fn]
	return f, fn, ok
}

// Prepare fills in an event file for this stack: its fakes' addresses, its local keys, a
// signature made now. Events that need nothing are returned as they are.
func (s *Stack) Prepare(ctx context.Context, eventPath string, event []byte) ([]byte, error) {
	p, _, ok := preparerFor(eventPath)
	if !ok {
		return event, nil
	}
	return p(ctx, s, s.eventVar, event)
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

// Sign fills in an event file outside any stack (for `sam local invoke -e`), with keys and
// addresses from getenv and the local defaults for what it does not set.
func Sign(ctx context.Context, eventPath string, event []byte, getenv func(string) string) ([]byte, error) {
	p, fn, ok := preparerFor(eventPath)
	if !ok {
		names := map[string]bool{}
		for k := range preparers {
			names[strings.Split(k, "/")[0]] = true
		}
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		return nil, fmt.Errorf("events of %s need no signing (functions with signed events: %s)", fn, strings.Join(list, ", "))
	}
	return p(ctx, nil, func(name string) string { return LocalEventVar(name, getenv) }, event)
}
