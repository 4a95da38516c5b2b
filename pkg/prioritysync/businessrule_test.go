package prioritysync_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/prioritysync"
)

// The shipped business rule (integrations/servicenow/cxbridge_priority_sync.js) runs under Node
// with stand-ins for the ServiceNow server APIs it calls, each behaving as ServiceNow documents
// it: GlideCertificateEncryption.generateMac takes a base64 key and returns a base64 MAC,
// GlideDateTime.getNumericValue is milliseconds since the epoch, sn_ws.RESTMessageV2 records
// the request. The request it builds is then sent to priority-sync, which must accept it.
const harness = `
const fs = require('fs'), crypto = require('crypto');
const input = JSON.parse(process.env.RULE_INPUT);
const out = { sent: null, errors: [] };
global.gs = {
  getProperty: (k, d) => (k in input.properties ? input.properties[k] : d),
  error: (m) => out.errors.push(String(m)),
  generateGUID: () => crypto.randomBytes(16).toString('hex'),
};
global.GlideDateTime = function () { this.getNumericValue = () => input.nowMillis; };
global.GlideStringUtil = { base64Encode: (s) => Buffer.from(String(s), 'utf8').toString('base64') };
global.GlideCertificateEncryption = function () {
  this.generateMac = (key, algorithm, data) => {
    if (algorithm !== 'HmacSHA256') throw new Error('unexpected algorithm ' + algorithm);
    return crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(String(data), 'utf8').digest('base64');
  };
};
global.sn_ws = {
  RESTMessageV2: function () {
    const r = { headers: {} };
    this.setEndpoint = (e) => (r.endpoint = e);
    this.setHttpMethod = (m) => (r.method = m);
    this.setRequestHeader = (k, v) => (r.headers[k] = String(v));
    this.setRequestBody = (b) => (r.body = b);
    this.setHttpTimeout = (t) => (r.timeout = t);
    this.executeAsync = () => { out.sent = r; };
    this.execute = () => { throw new Error('the business rule must not wait for the response'); };
  },
};
const rec = input.record;
global.current = {
  caller_id: { nil: () => !rec.caller_id },
  getUniqueValue: () => rec.sys_id,
  getValue: (f) => (f in rec ? rec[f] : null),
  isValidField: (f) => f in rec,
};
eval(fs.readFileSync(input.script, 'utf8'));
process.stdout.write(JSON.stringify(out));
`

type ruleRun struct {
	Sent *struct {
		Endpoint string            `json:"endpoint"`
		Method   string            `json:"method"`
		Headers  map[string]string `json:"headers"`
		Body     string            `json:"body"`
	} `json:"sent"`
	Errors []string `json:"errors"`
}

func runRule(t *testing.T, properties map[string]string, record map[string]string, now time.Time) ruleRun {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is needed to run the ServiceNow business rule (it is also needed for DynamoDB Local): install Node.js 18+")
	}
	script, err := filepath.Abs("../../integrations/servicenow/cxbridge_priority_sync.js")
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(map[string]any{"script": script, "properties": properties, "record": record, "nowMillis": now.UnixMilli()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "-e", harness)
	cmd.Env = append(os.Environ(), "RULE_INPUT="+string(in))
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("business rule failed: %v\n%s", err, stderr)
	}
	var r ruleRun
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("harness output %s: %v", out, err)
	}
	return r
}

var ruleProperties = map[string]string{
	"cxbridge.priority_sync.url":                "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/priority-sync",
	"cxbridge.priority_sync.api_key":            "servicenow-api-key",
	"cxbridge.priority_sync.signing_key":        signingKey,
	"cxbridge.priority_sync.conversation_field": "u_genesys_conversation",
}

func TestBusinessRuleRequestIsAccepted(t *testing.T) {
	if _, err := os.Stat("../../integrations/servicenow/README.md"); err != nil {
		t.Fatalf("the business rule's installation steps are missing: %v", err)
	}
	e := newEnv(t)
	e.gc.AddWaitingConversation(conv, "", "q", 0)
	e.link(t, conv)
	record := map[string]string{"sys_id": incident, "number": "INC0010042", "priority": "1", "caller_id": caller, "u_genesys_conversation": ""}
	r := runRule(t, ruleProperties, record, time.Now())
	if len(r.Errors) != 0 || r.Sent == nil {
		t.Fatalf("rule did not send: %+v", r)
	}
	s := r.Sent
	if s.Method != "POST" || s.Endpoint != ruleProperties["cxbridge.priority_sync.url"] || s.Headers["x-api-key"] != "servicenow-api-key" || s.Headers["Content-Type"] != "application/json" {
		t.Fatalf("request %+v", s)
	}
	if ts, _ := strconv.ParseInt(s.Headers["X-Cxbridge-Timestamp"], 10, 64); time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Fatalf("timestamp %q is not unix seconds now", s.Headers["X-Cxbridge-Timestamp"])
	}
	a := e.post(t, s.Headers, s.Body)
	if a.status != 200 || a.outcome.Status != prioritysync.StatusRaised || a.outcome.ConversationID != conv || a.outcome.IncidentNumber != "INC0010042" {
		t.Fatalf("priority-sync answered %d %s to the business rule's request", a.status, a.raw)
	}

	// With the conversation recorded on the incident, that one is sent.
	record["u_genesys_conversation"] = "conv-on-incident"
	r = runRule(t, ruleProperties, record, time.Now())
	var sent prioritysync.Input
	if err := json.Unmarshal([]byte(r.Sent.Body), &sent); err != nil || sent.ConversationID.Text != "conv-on-incident" || sent.DeliveryID.Text == "" {
		t.Fatalf("body %s (%v)", r.Sent.Body, err)
	}
}

func TestBusinessRuleSendsNothingWithoutCallerOrSettings(t *testing.T) {
	record := map[string]string{"sys_id": incident, "number": "INC0010042", "priority": "1", "caller_id": ""}
	if r := runRule(t, ruleProperties, record, time.Now()); r.Sent != nil || len(r.Errors) != 0 {
		t.Fatalf("no caller: %+v", r)
	}
	record["caller_id"] = caller
	if r := runRule(t, map[string]string{"cxbridge.priority_sync.url": "https://x/priority-sync"}, record, time.Now()); r.Sent != nil || len(r.Errors) != 1 {
		t.Fatalf("missing properties must be logged, not sent: %+v", r)
	}
}
