package localstack_test

import "github.com/cxbridge/cxbridge/pkg/localstack"

func init() {
	unauthorized := func(reason string) expect {
		return expect{Status: 401, Body: m{"status": "rejected", "error": m{"code": "unauthorized", "field": "MessageBird-Signature-JWT", "message": reason}}}
	}
	expectAll(map[string]expect{
		"messagebird-inbound/first-message.json":                  {Status: 200, Body: m{"status": "created", "target": "description"}},
		"messagebird-inbound/aggregation-before-agent-reply.json": {Status: 200, Body: m{"status": "appended", "target": "description", "requestKey": localstack.RequestDescription}},
		"messagebird-inbound/aggregation-after-agent-reply.json":  {Status: 200, Body: m{"status": "appended", "target": "comment", "requestKey": localstack.RequestComment}},
		"messagebird-inbound/attachment.json":                     {Status: 200, Body: m{"status": "created", "attachment": "attached"}},
		"messagebird-inbound/forged-signature.json":               unauthorized("bad_signature"),
		"messagebird-inbound/expired-signature.json":              unauthorized("expired"),
		"messagebird-inbound/replayed.json":                       unauthorized("replayed"),
		"messagebird-inbound/echo-of-sent-message.json":           {Status: 200, Body: m{"status": "ignored", "reason": "echo"}},
		"messagebird-inbound/jira-public-comment.json":            {Status: 200, Body: m{"status": "sent", "requestKey": localstack.RequestReply}},
		"messagebird-inbound/jira-internal-comment.json":          {Status: 200, Body: m{"status": "ignored", "reason": "internal_comment"}},
		"messagebird-inbound/jira-own-comment-echo.json":          {Status: 200, Body: m{"status": "ignored", "reason": "own_comment"}},
		"messagebird-inbound/jira-window-expired.json":            {Status: 200, Body: m{"status": "not_delivered", "reason": "outside_window", "requestKey": localstack.RequestWindow}},
		"messagebird-inbound/jira-request-done.json":              {Status: 200, Body: m{"status": "closed", "reason": "request_done", "requestKey": localstack.RequestDone}},
		"messagebird-inbound/jira-forged-signature.json":          {Status: 401, Body: m{"status": "rejected", "error": m{"field": "X-Hub-Signature"}}},
	})
}
