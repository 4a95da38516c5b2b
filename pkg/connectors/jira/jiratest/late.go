package jiratest

import (
	"bytes"
	"net/http"
	"strings"
	"time"
)

// late is an injected "answer lost in transit": the request is processed, its effect is
// stored, and only the answer is held back.
type late struct {
	prefix string
	delay  time.Duration
	times  int
}

// AnswerLate makes the next times API requests under prefix take effect at once but be
// answered only after delay (or never, if the client goes away first), as when a Lambda
// times out or crashes after Jira created the request but before it read the answer.
func (s *Server) AnswerLate(prefix string, delay time.Duration, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.late = append(s.late, late{prefix: prefix, delay: delay, times: times})
}

func (s *Server) takeLate(path string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range s.late {
		if !strings.HasPrefix(path, l.prefix) || l.times <= 0 {
			continue
		}
		s.late[i].times--
		return l.delay, true
	}
	return 0, false
}

// route serves r, holding the answer back when AnswerLate asks for it.
func (s *Server) route(w http.ResponseWriter, r *http.Request, path string) {
	delay, ok := s.takeLate(path)
	if !ok {
		s.mux.ServeHTTP(w, r)
		return
	}
	rec := &heldAnswer{header: http.Header{}, status: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	for k, vs := range rec.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

type heldAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (h *heldAnswer) Header() http.Header { return h.header }

func (h *heldAnswer) WriteHeader(status int) {
	if !h.wrote {
		h.status, h.wrote = status, true
	}
}

func (h *heldAnswer) Write(b []byte) (int, error) {
	h.wrote = true
	return h.body.Write(b)
}
