package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/cxbridge/cxbridge/pkg/hmacauth"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

func init() {
	addScenario(scenario{order: 20, title: "A caller rings: the screen pop shows who they are, their VIP flag from the directory and their three most recent open incidents", run: screenPop})
	addScenario(scenario{order: 21, title: "A caller rings from an unknown mobile: the employee-ID fallback finds them and learns the number", run: employeeFallback})
	addScenario(scenario{order: 22, title: "The caller's incident turns Critical in ServiceNow while they wait: their queue priority rises", run: criticalRaisesPriority})
}

const abelWaiting = "6b2e9f10-3c4d-4e5f-8a9b-000000000201"

func screenPop(d *demo) error {
	d.st.Genesys().AddWaitingConversation(abelWaiting, "", localstack.QueueL1, 0)
	before := len(d.st.ServiceNow().Received("/api/now/"))
	status, out := d.post("Genesys", "/servicenow/lookup", localstack.LocalAPIKey, nil, map[string]any{
		"ani": "tel:+14155550100", "conversationId": abelWaiting,
	})
	calls := len(d.st.ServiceNow().Received("/api/now/")) - before
	d.check(status == 200 && out["found"] == true && out["matchedBy"] == "ani" && out["userName"] == "abel.tuter", "want Abel by ANI, got %d %v", status, out)
	d.check(out["incidentCount"] == 3.0, "want 3 incidents, got %v", out["incidentCount"])
	d.say("ServiceNow", "%d queries, sent together (user by phone, incidents by the caller's phone): one round trip", calls)
	d.check(calls == 2, "want the user and incident queries only, got %d calls", calls)
	incidents, _ := out["incidents"].([]any)
	for i, inc := range incidents {
		m, _ := inc.(map[string]any)
		d.say("screen pop", "%d. %v %q (%v, %v)", i+1, m["number"], m["shortDescription"], m["state"], m["priority"])
	}
	d.say("screen pop", "%v: %v", out["userDisplayName"], out["userUrl"])
	d.say("screen pop", "VIP in the directory: %v; %v, %v, %v (%v)", out["userVip"], out["userTitle"], out["userCompany"], out["userLocation"], out["userDepartment"])
	d.check(out["userVip"] == true && out["userCompany"] == "ACME Corporation" && out["userLocation"] == "Dublin HQ",
		"want the directory's VIP flag and Abel's company and location by name, got %v", out)
	return nil
}

func employeeFallback(d *demo) error {
	sn := d.st.ServiceNow()
	status, out := d.post("Genesys", "/servicenow/lookup", localstack.LocalAPIKey, nil, map[string]any{
		"ani": "+16505550188", "employeeId": "E20002",
	})
	d.check(status == 200 && out["found"] == true && out["matchedBy"] == "employee_id" && out["learnedPhone"] == true,
		"want David by employee id with the number learned, got %d %v", status, out)
	user, _ := sn.Record("sys_user", localstack.CallerDavid)
	d.say("ServiceNow", "%s's mobile_phone is now %q", user["name"], user["mobile_phone"])
	d.check(user["mobile_phone"] == "+16505550188", "the number was not learned: %q", user["mobile_phone"])

	status, out = d.post("Genesys", "/servicenow/lookup", localstack.LocalAPIKey, nil, map[string]any{"ani": "+16505550188"})
	d.check(status == 200 && out["found"] == true && out["matchedBy"] == "ani", "the next call must match by number, got %d %v", status, out)
	d.say("result", "next call from that mobile: found by number (%v)", out["userDisplayName"])
	return nil
}

func criticalRaisesPriority(d *demo) error {
	g := d.st.Genesys()
	before, _ := g.Conversation(abelWaiting)
	d.say("Genesys", "Abel waits in L1 at priority %d (linked to his ServiceNow user by the screen pop)", before.Participants[1].Priority)

	// The business rule: an incident of Abel's just became 1 - Critical.
	body, _ := json.Marshal(map[string]string{
		"incidentSysId": "059f2ca5eeed9e3d1f41bfca9bfa10dd", "incidentNumber": "INC0010001", "priority": "1",
		"callerSysId": localstack.CallerAbel, "deliveryId": strconv.FormatInt(time.Now().UnixNano(), 16),
	})
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	headers := map[string]string{
		hmacauth.HeaderTimestamp: ts,
		hmacauth.HeaderSignature: hmacauth.Sign([]byte(localstack.LocalServiceNowSigningKey), ts, body),
	}
	status, out := d.post("ServiceNow", "/priority-sync", localstack.LocalServiceNowAPIKey, headers, body)
	d.check(status == 200 && out["status"] == "raised", "want raised, got %d %v", status, out)
	after, _ := g.Conversation(abelWaiting)
	d.say("Genesys", "PATCH /api/v2/routing/conversations/%s -> priority %d (1 point = 1 minute in queue)", short([]byte(abelWaiting)), after.Participants[1].Priority)
	d.check(after.Participants[1].Priority > before.Participants[1].Priority, "the priority did not rise")

	// A replay of the same signed request has no effect.
	status, out = d.post("attacker", "/priority-sync", localstack.LocalServiceNowAPIKey, headers, body)
	d.check(status == 401, "a replayed signature must be refused, got %d %v", status, out)
	d.say("result", "the replayed request was refused: %s", fmt.Sprint(status))
	return nil
}
