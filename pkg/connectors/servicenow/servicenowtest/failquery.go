package servicenowtest

import (
	"net/http"
	"strings"
)

// queryFailure is a failure for reads whose sysparm_query contains a text.
type queryFailure struct {
	contains string
	f        Failure
}

// FailQuery injects failures for Table API requests whose sysparm_query contains the given
// text (e.g. the digits of one caller's number), so one caller can be rate-limited or slow while
// everyone else is served: what a shared local stack needs to show a 429 next to working
// lookups. Failures are used in order, like Fail's; path failures are applied first.
func (s *Server) FailQuery(contains string, f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, one := range f {
		s.byQuery = append(s.byQuery, queryFailure{contains, one})
	}
}

func (s *Server) takeQueryFailure(query string) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, qf := range s.byQuery {
		if qf.contains == "" || !strings.Contains(query, qf.contains) {
			continue
		}
		switch qf.f.Times {
		case 0: // forever
		case 1:
			s.byQuery = append(s.byQuery[:i:i], s.byQuery[i+1:]...)
		default:
			s.byQuery[i].f.Times--
		}
		return qf.f, true
	}
	return Failure{}, false
}

func (s *Server) injectedForQuery(w http.ResponseWriter, r *http.Request, process http.HandlerFunc) bool {
	q := r.URL.Query().Get("sysparm_query")
	if q == "" {
		return false
	}
	f, ok := s.takeQueryFailure(q)
	if !ok {
		return false
	}
	return s.answerFailure(w, r, f, process)
}
