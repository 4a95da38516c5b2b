package localstack_test

import "github.com/cxbridge/cxbridge/pkg/localstack"

func init() {
	expectAll(map[string]expect{
		"priority-sync/raised.json": {Status: 200, Body: m{
			"status": "raised", "incidentNumber": "INC0010001", "conversationId": localstack.ConversationAbelWaiting,
			"conversationSource": "lookup", "priority": 1000.0, "previousPriority": 0.0, "repeat": false}},
		"priority-sync/already-raised.json": {Status: 200, Body: m{
			"status": "already_raised", "conversationId": localstack.ConversationVIPWaiting, "conversationSource": "request",
			"priority": 5000.0, "previousPriority": 5000.0}},
		"priority-sync/not-in-queue.json": {Status: 200, Body: m{
			"status": "not_in_queue", "conversationId": localstack.ConversationBethAnswered, "conversationSource": "lookup"}},
		"priority-sync/no-waiting-conversation.json": {Status: 200, Body: m{
			"status": "no_waiting_conversation", "conversationId": ""}},
		"priority-sync/ignored-priority.json": {Status: 200, Body: m{"status": "ignored_priority"}},
		"priority-sync/bad-signature.json": {Status: 401, Body: m{
			"status": "rejected", "error": m{"code": "unauthorized", "field": "X-Cxbridge-Signature",
				"message": "request signature rejected: X-Cxbridge-Signature does not match"}}},
		"priority-sync/replay.json": {Status: 401, Body: m{
			"status": "rejected", "error": m{"code": "unauthorized", "field": "X-Cxbridge-Signature",
				"message": "request signature rejected: X-Cxbridge-Signature already used (replay)"}}},
		"priority-sync/stale-timestamp.json": {Status: 401, Body: m{
			"status": "rejected", "error": m{"code": "unauthorized", "field": "X-Cxbridge-Timestamp"}}},
	})
}
