package genesys

import (
	"context"
	"net/http"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// QueueObservation is the live state of one queue.
type QueueObservation struct {
	OnQueueUsers int // agents on queue, whatever their routing status (IDLE, INTERACTING, ...)
	Idle         int // of those, the ones whose routing status is IDLE: free for the next call
	Waiting      int // conversations waiting
}

type observationQuery struct {
	Filter  observationFilter `json:"filter"`
	Metrics []string          `json:"metrics"`
}

type observationFilter struct {
	Type       string                 `json:"type"`
	Predicates []observationPredicate `json:"predicates"`
}

type observationPredicate struct {
	Type      string `json:"type"`
	Dimension string `json:"dimension"`
	Operator  string `json:"operator"`
	Value     string `json:"value"`
}

type observationResponse struct {
	Results []struct {
		Group struct {
			QueueID string `json:"queueId"`
		} `json:"group"`
		Data []struct {
			Metric    string `json:"metric"`
			Qualifier string `json:"qualifier"`
			Stats     struct {
				Count int `json:"count"`
			} `json:"stats"`
		} `json:"data"`
	} `json:"results"`
}

// ObserveQueues reads on-queue agents and waiting conversations for several queues in one call
// (POST /api/v2/analytics/queues/observations/query). Results come split by media type and by
// qualifier (oOnQueueUsers per routing status), so counts are summed per queue
// (reference/api-contracts.md section 3.4). Queues missing from the answer are reported with
// zero counts.
func (c *Client) ObserveQueues(ctx context.Context, queueIDs []string) (map[string]QueueObservation, error) {
	q := observationQuery{Filter: observationFilter{Type: "or"}, Metrics: []string{"oOnQueueUsers", "oWaiting"}}
	for _, id := range queueIDs {
		q.Filter.Predicates = append(q.Filter.Predicates, observationPredicate{Type: "dimension", Dimension: "queueId", Operator: "matches", Value: id})
	}
	var resp observationResponse
	req := connectors.Request{Op: "observe queues", Method: http.MethodPost, Path: "/api/v2/analytics/queues/observations/query", Body: q}
	if _, err := c.api.Do(ctx, req, &resp); err != nil {
		return nil, err
	}
	out := make(map[string]QueueObservation, len(queueIDs))
	for _, id := range queueIDs {
		out[id] = QueueObservation{}
	}
	for _, r := range resp.Results {
		o := out[r.Group.QueueID]
		for _, d := range r.Data {
			switch d.Metric {
			case "oOnQueueUsers":
				o.OnQueueUsers += d.Stats.Count
				if d.Qualifier == "IDLE" {
					o.Idle += d.Stats.Count
				}
			case "oWaiting":
				o.Waiting += d.Stats.Count
			}
		}
		out[r.Group.QueueID] = o
	}
	return out, nil
}
