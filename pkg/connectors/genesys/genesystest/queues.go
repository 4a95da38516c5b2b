package genesystest

import (
	"encoding/json"
	"net/http"
)

// Queue is the live state of a fake queue.
type Queue struct {
	Idle          int // on-queue agents waiting for work
	Interacting   int // on-queue agents busy
	Communicating int // on-queue agents on a non-ACD conversation
	NotResponding int // on-queue agents who let an offer time out
	Waiting       int // conversations waiting
}

// SetQueue sets a queue's live state.
func (s *Server) SetQueue(id string, q Queue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queues[id] = q
}

func (s *Server) registerQueues() {
	s.mux.HandleFunc("POST /api/v2/analytics/queues/observations/query", s.observeQueues)
}

// observeQueues answers like Genesys: one result per queue and media type, oOnQueueUsers split
// by routing-status qualifier, so a client must sum them.
func (s *Server) observeQueues(w http.ResponseWriter, r *http.Request) {
	var q struct {
		Filter struct {
			Type       string `json:"type"`
			Predicates []struct {
				Dimension string `json:"dimension"`
				Value     string `json:"value"`
			} `json:"predicates"`
		} `json:"filter"`
		Metrics []string `json:"metrics"`
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Filter.Predicates) == 0 || len(q.Metrics) == 0 {
		WriteError(w, http.StatusBadRequest, "bad.request", "filter and metrics are required")
		return
	}
	type stat struct {
		Count int `json:"count"`
	}
	type datum struct {
		Metric    string `json:"metric"`
		Qualifier string `json:"qualifier,omitempty"`
		Stats     stat   `json:"stats"`
	}
	type result struct {
		Group map[string]string `json:"group"`
		Data  []datum           `json:"data"`
	}
	var results []result
	s.mu.Lock()
	for _, p := range q.Filter.Predicates {
		if p.Dimension != "queueId" {
			continue
		}
		qs, ok := s.queues[p.Value]
		if !ok {
			continue
		}
		res := result{Group: map[string]string{"queueId": p.Value, "mediaType": "voice"}}
		for _, m := range q.Metrics {
			switch m {
			case "oOnQueueUsers":
				// One datum per routing status with agents; a status with none is left out, so a
				// client must sum what comes rather than expect every status.
				for _, st := range []struct {
					q string
					n int
				}{{"IDLE", qs.Idle}, {"INTERACTING", qs.Interacting}, {"COMMUNICATING", qs.Communicating}, {"NOT_RESPONDING", qs.NotResponding}} {
					if st.n > 0 {
						res.Data = append(res.Data, datum{Metric: m, Qualifier: st.q, Stats: stat{st.n}})
					}
				}
			case "oWaiting":
				res.Data = append(res.Data, datum{Metric: m, Stats: stat{qs.Waiting}})
			}
		}
		results = append(results, res)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}
