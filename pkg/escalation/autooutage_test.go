package escalation_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/secrets"
)

// startOfMinute moves the service's clock to just after the next minute begins, so a test's
// counts all fall in one minute of the window.
func (e *env) startOfMinute() {
	now := e.clock.Now()
	e.clock.Jump(now.Truncate(time.Minute).Add(time.Minute + 200*time.Millisecond).Sub(now))
}

// masterRequests are the Jira requests that carry an automatic outage's marker (the label of
// an outage id: the only labelled requests besides escalations, whose ids are known).
func masterRequests(e *env, outageID string) []jiratest.Request {
	var out []jiratest.Request
	for _, r := range e.jira.Requests() {
		if slices.Contains(r.Labels(), escalation.Marker(outageID)) {
			out = append(out, r)
		}
	}
	return out
}

// masterIncidents are the ServiceNow incidents an automatic outage raised.
func masterIncidents(e *env) []map[string]string {
	var out []map[string]string
	for _, r := range e.sn.Records("incident") {
		if strings.HasPrefix(r["correlation_id"], "cxb.outage.") {
			out = append(out, r)
		}
	}
	return out
}

func flagOf(t *testing.T, e *env, target string) escalation.Flag {
	t.Helper()
	f, _, err := e.svc.Outage.ReadFlag(context.Background(), target, true)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func payments(i int, product string) string {
	return body("conversationId", fmt.Sprintf("7a000000-0000-4000-8000-%012d", i), "trigger", "vip", "customerName", fmt.Sprintf("Caller %d", i), "product", product)
}

// Five VIP escalations about one product within the window declare an outage: the fifth is
// linked to a master request the same call created, later ones about the product are linked
// to it, others still get tickets, and the redrive notes the links on the master.
func TestRateThresholdDeclaresAnOutageAndCreatesItsMaster(t *testing.T) {
	e := newEnv(t, with("JIRA_OUTAGE_THRESHOLD", "5"), with("JIRA_OUTAGE_WINDOW_MINUTES", "10"), with("JIRA_OUTAGE_TOPIC", "product"),
		with("OUTAGE_MESSAGE", "We know about the payments outage; your call is noted."))
	e.startOfMinute()
	for i := range 4 {
		if c := e.post(payments(i, "Payments")); c.res.Status != escalation.StatusCreated {
			t.Fatalf("call %d below the threshold: %s", i, c.raw)
		}
	}
	requestsBefore := e.jira.RequestCount()
	began := time.Now()
	fifth := e.post(payments(4, "Payments"))
	answered := time.Since(began)
	f := flagOf(t, e, escalation.Jira)
	if !f.Auto || f.Cause != escalation.CauseRate || f.Topic.String() != `product "Payments"` || f.Pending || f.Master.Key == "" {
		t.Fatalf("flag after the threshold: %+v", f)
	}
	masters := masterRequests(e, f.OutageID)
	if len(masters) != 1 || e.jira.RequestCount() != requestsBefore+1 {
		t.Fatalf("%d master requests, %d new requests; want one master, nothing else", len(masters), e.jira.RequestCount()-requestsBefore)
	}
	m := masters[0]
	if fifth.res.Status != escalation.StatusLinked || fifth.res.TicketKey != m.Key || !fifth.res.CatastropheMode || fifth.res.Reason != "" ||
		fifth.res.Message != "We know about the payments outage; your call is noted." || !strings.HasSuffix(fifth.res.TicketURL, "/browse/"+m.Key) {
		t.Fatalf("the call that crossed the threshold: %s", fifth.raw)
	}
	if !strings.Contains(m.Summary(), `product "Payments"`) || !strings.Contains(m.Text("description"), "5 escalations to Jira about product \"Payments\"") ||
		m.Reporter != jiratest.APIUserAccountID {
		t.Fatalf("master request: %q / %q, reporter %s", m.Summary(), m.Text("description"), m.Reporter)
	}
	if !strings.Contains(fifth.metrics, `"OutageDeclared":1`) || !strings.Contains(fifth.metrics, `"Cause":"rate"`) {
		t.Fatalf("no OutageDeclared metric: %s", fifth.metrics)
	}
	var create time.Time
	for _, r := range e.jira.Received("/rest/servicedeskapi/request") {
		if r.Method == http.MethodPost && r.Path == "/rest/servicedeskapi/request" {
			create = r.At
		}
	}
	t.Logf("threshold -> master: Jira got the master's create %s after the fifth call was sent; the call was answered in %s",
		create.Sub(began).Round(time.Millisecond), answered.Round(time.Millisecond))

	// Later: the same product (however it is typed) is linked, another is delivered.
	same := e.post(payments(5, "  payments "))
	other := e.post(payments(6, "Billing"))
	if same.res.Status != escalation.StatusLinked || same.res.TicketKey != m.Key {
		t.Fatalf("same topic: %s", same.raw)
	}
	if other.res.Status != escalation.StatusCreated || other.res.TicketKey == m.Key {
		t.Fatalf("another topic: %s", other.raw)
	}
	sum, _ := e.redrive()
	if sum.Notes != 1 || sum.Linked != 2 {
		t.Fatalf("redrive: %+v", sum)
	}
	comments := e.jira.Comments(m.Key)
	if len(comments) != 1 || comments[0].Public || !strings.Contains(comments[0].Body, "7a000000-0000-4000-8000-000000000004") ||
		!strings.Contains(comments[0].Body, "7a000000-0000-4000-8000-000000000005") {
		t.Fatalf("the master's note: %+v", comments)
	}
}

// Eight execution environments cross the threshold at once, 48 calls in all: exactly one
// outage is declared and one master incident created; every call is a ticket (below the
// threshold) or a link, and every link is noted once.
func TestConcurrentEnvironmentsCrossingTheThresholdMakeOneMaster(t *testing.T) {
	const threshold, calls, envs = 10, 48, 8
	e := newEnv(t, with("SERVICENOW_OUTAGE_THRESHOLD", fmt.Sprint(threshold)), with("ESCALATION_BUDGET_MS", "12000"))
	e.startOfMinute()
	fleet := []*env{e}
	for range envs - 1 {
		fleet = append(fleet, e.rewire(t, nil))
	}
	answers := make([]call, calls)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = fleet[i%envs].post(body("conversationId", fmt.Sprintf("7b000000-0000-4000-8000-%012d", i), "trigger", "wrap_up",
				"wrapUpCode", "E-mail not working", "customerName", fmt.Sprintf("Caller %d", i)))
		}()
	}
	close(start)
	wg.Wait()
	count := map[string]int{}
	var linked []string
	for i, a := range answers {
		count[a.res.Status]++
		if a.res.Status == escalation.StatusLinked {
			linked = append(linked, fmt.Sprintf("7b000000-0000-4000-8000-%012d", i))
		}
	}
	masters := masterIncidents(e)
	f := flagOf(t, e, escalation.ServiceNow)
	t.Logf("answers %v; %d master incident(s)", count, len(masters))
	if len(masters) != 1 || f.Master.Key != masters[0]["number"] {
		t.Fatalf("%d master incidents, flag %+v; want exactly one, named by the flag", len(masters), f)
	}
	if count[escalation.StatusCreated] != threshold-1 || count[escalation.StatusLinked] != calls-threshold+1 {
		t.Fatalf("answers %v; want %d created below the threshold and the rest linked", count, threshold-1)
	}
	declared := 0
	for _, a := range answers {
		declared += strings.Count(a.metrics, `"OutageDeclared":1`)
		if a.res.Status == escalation.StatusLinked && a.res.TicketKey != f.Master.Key && a.res.Reason != escalation.ReasonMasterPending {
			t.Fatalf("linked to something else: %s", a.raw)
		}
	}
	if declared != 1 {
		t.Fatalf("%d environments declared the outage; want one", declared)
	}
	if n := len(e.sn.Records("incident")); n != threshold-1+1 {
		t.Fatalf("%d incidents; want %d tickets and the master", n, threshold-1)
	}
	e.redrive()
	notes := e.sn.Journal("incident", masters[0]["sys_id"])
	listed := map[string]int{}
	for _, n := range notes {
		for _, m := range conversationInNote.FindAllStringSubmatch(n.Value, -1) {
			listed[m[1]]++
		}
	}
	for _, c := range linked {
		if listed[c] != 1 {
			t.Fatalf("conversation %s listed %d times in %d note(s)", c, listed[c], len(notes))
		}
	}
}

// A Jira create of the master whose answer is lost (503 after Jira made it) is not repeated:
// callers are linked while it is pending, and the redrive, once the search can show it, finds
// it and uses it.
func TestJiraMasterCreateInDoubtIsFoundNotRepeated(t *testing.T) {
	e := newEnv(t, with("JIRA_OUTAGE_THRESHOLD", "3"), with("JIRA_OUTAGE_TOPIC", "product"), with("JIRA_SEARCH_LAG_SECONDS", "30"))
	e.startOfMinute()
	for i := range 2 {
		if c := e.post(payments(i, "Payments")); c.res.Status != escalation.StatusCreated {
			t.Fatalf("%s", c.raw)
		}
	}
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503, AfterEffect: true, Times: 1, Method: http.MethodPost})
	third := e.post(payments(2, "Payments"))
	if third.res.Status != escalation.StatusLinked || third.res.Reason != escalation.ReasonMasterPending || third.res.TicketKey != "" {
		t.Fatalf("the create's answer was lost: %s", third.raw)
	}
	f := flagOf(t, e, escalation.Jira)
	if !f.Pending || len(masterRequests(e, f.OutageID)) != 1 {
		t.Fatalf("flag %+v, %d master requests; want pending, and the one Jira made", f, len(masterRequests(e, f.OutageID)))
	}
	fourth := e.post(payments(3, "Payments"))
	if fourth.res.Status != escalation.StatusLinked || fourth.res.Reason != escalation.ReasonMasterPending {
		t.Fatalf("while pending: %s", fourth.raw)
	}
	// Within the search lag nothing is attempted.
	sum, _ := e.redrive()
	if sum.MastersPending != 1 || sum.Notes != 0 || len(masterRequests(e, f.OutageID)) != 1 {
		t.Fatalf("inside the search lag: %+v, %d masters", sum, len(masterRequests(e, f.OutageID)))
	}
	e.clock.Jump(31 * time.Second)
	sum, _ = e.redrive()
	masters := masterRequests(e, f.OutageID)
	if len(masters) != 1 || sum.Notes != 1 || sum.Linked != 2 {
		t.Fatalf("after the lag: %+v, %d master requests; want the one found and noted", sum, len(masters))
	}
	if f := flagOf(t, e, escalation.Jira); f.Pending || f.Master.Key != masters[0].Key {
		t.Fatalf("flag after verification: %+v", f)
	}
	if c := e.post(payments(4, "Payments")); c.res.TicketKey != masters[0].Key {
		t.Fatalf("after verification: %s", c.raw)
	}
}

// ServiceNow reads are consistent: a master create answered 504 after the incident was made
// is found by the next call of the same attempt, within the caller's budget.
func TestServiceNowMasterCreateInDoubtIsFoundAtOnce(t *testing.T) {
	e := newEnv(t, with("SERVICENOW_OUTAGE_THRESHOLD", "2"))
	e.startOfMinute()
	wrapUp := func(i int) string {
		return body("conversationId", fmt.Sprintf("7c000000-0000-4000-8000-%012d", i), "trigger", "wrap_up", "wrapUpCode", "VPN down")
	}
	if c := e.post(wrapUp(0)); c.res.Status != escalation.StatusCreated {
		t.Fatalf("%s", c.raw)
	}
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 504, AfterEffect: true, Times: 1, Method: http.MethodPost})
	c := e.post(wrapUp(1))
	masters := masterIncidents(e)
	if len(masters) != 1 || c.res.Status != escalation.StatusLinked || c.res.TicketKey != masters[0]["number"] {
		t.Fatalf("%d masters; %s", len(masters), c.raw)
	}
	if masters[0]["impact"] != "1" || !strings.HasPrefix(masters[0]["short_description"], "Outage: many callers about wrapUpCode") {
		t.Fatalf("master incident %v", masters[0])
	}
}

// ServiceNow is down (its breaker open) when the threshold is crossed: the outage is declared
// with its master pending, callers are linked at once, escalations queued about the topic
// become links, and once ServiceNow answers the redrive creates the master, then notes every
// linked call on it. Not one incident besides the master.
func TestPendingMasterWhileTheTargetIsDownIsCreatedOnRecovery(t *testing.T) {
	e := newEnv(t, with("SERVICENOW_OUTAGE_THRESHOLD", "6"), with("SERVICENOW_OUTAGE_WINDOW_MINUTES", "15"))
	e.startOfMinute()
	// Down: every read of the incident table fails (nothing is written, so nothing is in doubt).
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 503, Method: http.MethodGet})
	conversation := func(i int) string { return fmt.Sprintf("7d000000-0000-4000-8000-%012d", i) }
	wrapUp := func(i int) string {
		return body("conversationId", conversation(i), "trigger", "wrap_up", "wrapUpCode", "E-mail not working", "customerName", fmt.Sprintf("Caller %d", i))
	}
	for i := range 5 { // threshold 3 of the test breaker opens it on the way
		if c := e.post(wrapUp(i)); c.res.Status != escalation.StatusQueued {
			t.Fatalf("call %d: %s", i, c.raw)
		}
	}
	sixth := e.post(wrapUp(5))
	if sixth.res.Status != escalation.StatusLinked || sixth.res.Reason != escalation.ReasonMasterPending || !sixth.res.CatastropheMode || sixth.res.TicketKey != "" {
		t.Fatalf("crossing the threshold while ServiceNow is down: %s", sixth.raw)
	}
	seventh := e.post(wrapUp(6))
	if seventh.res.Status != escalation.StatusLinked || seventh.res.Reason != escalation.ReasonMasterPending {
		t.Fatalf("%s", seventh.raw)
	}
	// Still down: the redrive converts the queued escalations, the master waits.
	sum, _ := e.redrive()
	if sum.Converted != 5 || sum.MastersPending != 1 || sum.Notes != 0 {
		t.Fatalf("redrive while down: %+v", sum)
	}
	if len(e.snCalls(http.MethodPost)) != 0 {
		t.Fatalf("ServiceNow got a create while its breaker was open")
	}
	// A repeat of a converted request replays the link.
	if c := e.post(wrapUp(0)); c.res.Status != escalation.StatusLinked {
		t.Fatalf("repeat of a converted escalation: %s", c.raw)
	}
	// ServiceNow recovers; the breaker's open time passes; the next run creates the master
	// and notes all seven calls.
	e.sn.ClearFailures()
	e.clock.Jump(61 * time.Second)
	sum, _ = e.redrive()
	masters := masterIncidents(e)
	if len(masters) != 1 || sum.Notes != 1 || sum.Linked != 7 || sum.MastersPending != 0 {
		t.Fatalf("redrive after recovery: %+v, %d masters", sum, len(masters))
	}
	if n := len(e.sn.Records("incident")); n != 1 {
		t.Fatalf("%d incidents; want only the master", n)
	}
	notes := e.sn.Journal("incident", masters[0]["sys_id"])
	for i := range 7 {
		if len(notes) != 1 || !strings.Contains(notes[0].Value, conversation(i)) {
			t.Fatalf("conversation %d missing from the master's note: %+v", i, notes)
		}
	}
	if f := flagOf(t, e, escalation.ServiceNow); f.Pending || f.Master.Key != masters[0]["number"] {
		t.Fatalf("flag %+v", f)
	}
	if c := e.post(wrapUp(7)); c.res.Status != escalation.StatusLinked || c.res.TicketKey != masters[0]["number"] {
		t.Fatalf("after the master exists: %s", c.raw)
	}
}

// The breaker refusing calls for SERVICENOW_OUTAGE_BREAKER_SECONDS declares an outage: the
// refused escalation and the queued ones (whatever their topic) are linked, the master is
// created when ServiceNow answers; an escalation whose create's outcome is unknown is never
// linked (it could be a ticket already), it is verified and delivered instead.
func TestBreakerOpenForLongDeclaresAnOutage(t *testing.T) {
	e := newEnv(t, with("SERVICENOW_OUTAGE_BREAKER_SECONDS", "90"))
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 503, Method: http.MethodGet})
	wrapUp := func(i int, code string) string {
		return body("conversationId", fmt.Sprintf("7e000000-0000-4000-8000-%012d", i), "trigger", "wrap_up", "wrapUpCode", code)
	}
	for i := range 4 {
		if c := e.post(wrapUp(i, fmt.Sprintf("topic %d", i))); c.res.Status != escalation.StatusQueued {
			t.Fatalf("%s", c.raw)
		}
	}
	// Not yet: open for less than 90 s.
	e.clock.Jump(30 * time.Second)
	if c := e.post(wrapUp(4, "other")); c.res.Status != escalation.StatusQueued || c.res.Reason != escalation.ReasonBreakerOpen {
		t.Fatalf("%s", c.raw)
	}
	if f := flagOf(t, e, escalation.ServiceNow); f.Set(e.clock.Now()) {
		t.Fatalf("declared too early: %+v", f)
	}
	// The probe after a minute fails and re-opens it; down since the first open all the same.
	e.clock.Jump(35 * time.Second)
	if c := e.post(wrapUp(5, "probe")); c.res.Status != escalation.StatusQueued {
		t.Fatalf("%s", c.raw)
	}
	e.clock.Jump(30 * time.Second)
	c := e.post(wrapUp(6, "anything"))
	if c.res.Status != escalation.StatusLinked || c.res.Reason != escalation.ReasonMasterPending {
		t.Fatalf("after 95 s down: %s", c.raw)
	}
	f := flagOf(t, e, escalation.ServiceNow)
	if !f.Auto || f.Cause != escalation.CauseBreaker || f.Active || !strings.Contains(f.Why, "servicenow circuit breaker has refused calls since") {
		t.Fatalf("flag %+v", f)
	}
	sum, _ := e.redrive()
	if sum.Converted != 6 {
		t.Fatalf("redrive: %+v; want the six queued escalations linked", sum)
	}
	e.sn.ClearFailures()
	e.clock.Jump(61 * time.Second)
	sum, _ = e.redrive()
	if masters := masterIncidents(e); len(masters) != 1 || sum.Notes != 1 || sum.Linked != 7 {
		t.Fatalf("after recovery: %+v, %d masters", sum, len(masterIncidents(e)))
	}
	// The target answers again: escalations are delivered (the breaker outage takes only
	// what the open breaker refuses).
	if c := e.post(wrapUp(8, "fresh")); c.res.Status != escalation.StatusCreated {
		t.Fatalf("ServiceNow is back: %s", c.raw)
	}
}

// A Jira escalation whose create's answer was lost is in doubt: when an outage is declared
// it is not converted to a link, and ends as exactly one ticket.
func TestQueuedEscalationInDoubtIsNeverConverted(t *testing.T) {
	e := newEnv(t, with("JIRA_OUTAGE_THRESHOLD", "2"), with("JIRA_OUTAGE_TOPIC", "product"))
	e.startOfMinute()
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 502, AfterEffect: true, Times: 1, Method: http.MethodPost})
	first := e.post(payments(0, "Payments"))
	if first.res.Status != escalation.StatusQueued || first.res.Reason != escalation.ReasonVerifying {
		t.Fatalf("%s", first.raw)
	}
	if c := e.post(payments(1, "Payments")); c.res.Status != escalation.StatusLinked {
		t.Fatalf("%s", c.raw)
	}
	sum, _ := e.redrive()
	if sum.Converted != 0 || sum.Delivered != 1 {
		t.Fatalf("redrive: %+v; want the item in doubt verified (found), not linked", sum)
	}
	n := 0
	for _, r := range e.jira.Requests() {
		if slices.Contains(r.Labels(), escalation.Marker(first.res.EscalationID)) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d requests for the escalation in doubt; want 1", n)
	}
}

// Nobody confirms the outage and no call about it comes for OUTAGE_QUIET_MINUTES: it ends by
// itself, and calls get tickets again. A linked call moves the end; a confirmed outage stays.
func TestAutomaticOutageEndsAfterTheQuietPeriod(t *testing.T) {
	e := newEnv(t, with("JIRA_OUTAGE_THRESHOLD", "2"), with("JIRA_OUTAGE_TOPIC", "product"), with("JIRA_OUTAGE_WINDOW_MINUTES", "5"),
		with("OUTAGE_QUIET_MINUTES", "20"))
	e.startOfMinute()
	e.post(payments(0, "Payments"))
	if c := e.post(payments(1, "Payments")); c.res.Status != escalation.StatusLinked {
		t.Fatalf("%s", c.raw)
	}
	e.clock.Jump(15 * time.Minute)
	if sum, _ := e.redrive(); sum.OutagesEnded != 0 {
		t.Fatalf("ended after 15 of 20 quiet minutes: %+v", sum)
	}
	if c := e.post(payments(2, "Payments")); c.res.Status != escalation.StatusLinked {
		t.Fatalf("%s", c.raw)
	}
	e.clock.Jump(15 * time.Minute) // 15 minutes after the last linked call
	if sum, _ := e.redrive(); sum.OutagesEnded != 0 {
		t.Fatalf("a linked call did not move the end: %+v", sum)
	}
	e.clock.Jump(6 * time.Minute)
	sum, metrics := e.redrive()
	if sum.OutagesEnded != 1 || !strings.Contains(metrics, `"OutageEnded":1`) {
		t.Fatalf("after 21 quiet minutes: %+v", sum)
	}
	if f, exists, _ := e.svc.Outage.ReadFlag(t.Context(), escalation.Jira, true); exists || f.Set(e.clock.Now()) {
		t.Fatalf("flag still there: %+v", f)
	}
	if c := e.post(payments(3, "Payments")); c.res.Status != escalation.StatusCreated {
		t.Fatalf("after the end: %s", c.raw)
	}

	// A new outage, confirmed by the on-call: it stays.
	e.post(payments(4, "Payments"))
	if f := flagOf(t, e, escalation.Jira); !f.Auto {
		t.Fatalf("no second outage: %+v", f)
	}
	if _, err := e.svc.Outage.Confirm(t.Context(), escalation.Jira, "oncall", ""); err != nil {
		t.Fatal(err)
	}
	e.clock.Jump(2 * time.Hour)
	if sum, _ := e.redrive(); sum.OutagesEnded != 0 {
		t.Fatalf("a confirmed outage ended by itself: %+v", sum)
	}
	if c := e.post(payments(5, "Payments")); c.res.Status != escalation.StatusLinked {
		t.Fatalf("confirmed outage: %s", c.raw)
	}
}

// A flag the on-call set wins: a standby master means no automatic outage is declared.
func TestTheOnCallsFlagWins(t *testing.T) {
	e := newEnv(t, with("JIRA_OUTAGE_THRESHOLD", "2"), with("JIRA_OUTAGE_TOPIC", "product"))
	e.startOfMinute()
	if err := e.svc.Outage.SetFlag(t.Context(), escalation.Flag{Target: escalation.Jira, Master: escalation.Master{Key: "SUPP-900"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if c := e.post(payments(i, "Payments")); c.res.Status != escalation.StatusCreated {
			t.Fatalf("call %d with a standby master set: %s", i, c.raw)
		}
	}
	if f := flagOf(t, e, escalation.Jira); f.Auto || f.Master.Key != "SUPP-900" {
		t.Fatalf("flag %+v", f)
	}
}

// With the state store hung, detection does not happen and the escalation is still delivered.
func TestDetectionNeverFailsAnEscalation(t *testing.T) {
	e := newEnv(t, with("JIRA_OUTAGE_THRESHOLD", "1"), with("JIRA_OUTAGE_TOPIC", "product"))
	down := e.withStore(t, hungStore(t))
	c := down.post(payments(0, "Payments"))
	if c.res.Status != escalation.StatusCreated {
		t.Fatalf("%s", c.raw)
	}
}

// The on-call replaces a pending master with their own: it is never created, and every link
// is noted on theirs.
func TestReplacingAPendingMasterNotesEverythingOnTheNewOne(t *testing.T) {
	e := newEnv(t, with("SERVICENOW_OUTAGE_THRESHOLD", "2"))
	e.startOfMinute()
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 503})
	for i := range 3 {
		e.post(body("conversationId", fmt.Sprintf("7f000000-0000-4000-8000-%012d", i), "trigger", "wrap_up", "wrapUpCode", "Printer"))
	}
	if f := flagOf(t, e, escalation.ServiceNow); !f.Pending {
		t.Fatalf("the master's create failed; want it pending: %+v", f)
	}
	e.sn.ClearFailures()
	own := masterIncident(t, e)
	f, err := e.svc.Outage.Replace(t.Context(), escalation.ServiceNow, own, "oncall", "")
	if err != nil || f.Master.Key != own.Key || f.Pending || !f.Confirmed {
		t.Fatalf("replace: %+v %v", f, err)
	}
	e.clock.Jump(61 * time.Second)
	sum, _ := e.redrive()
	if len(masterIncidents(e)) != 0 || sum.Notes != 1 {
		t.Fatalf("%+v, %d masters created; want none, and the note on %s", sum, len(masterIncidents(e)), own.Key)
	}
	notes := e.sn.Journal("incident", own.SysID)
	keys := make([]string, 0, 3)
	for _, m := range conversationInNote.FindAllStringSubmatch(notes[0].Value, -1) {
		keys = append(keys, m[1])
	}
	sort.Strings(keys)
	if len(keys) != 3 {
		t.Fatalf("listed %v; want the two linked calls and the queued one converted", keys)
	}
}

// The on-call ends an automatic outage: the calls that declared it do not declare it again at
// once (the count restarts), and a breaker still open from the same down time does not either.
func TestTheOnCallsEndIsNotUndoneAtOnce(t *testing.T) {
	e := newEnv(t, with("JIRA_OUTAGE_THRESHOLD", "2"), with("JIRA_OUTAGE_TOPIC", "product"),
		with("SERVICENOW_OUTAGE_BREAKER_SECONDS", "60"))
	e.startOfMinute()
	e.post(payments(0, "Payments"))
	if c := e.post(payments(1, "Payments")); c.res.Status != escalation.StatusLinked {
		t.Fatalf("%s", c.raw)
	}
	if _, was, err := e.svc.Outage.End(t.Context(), escalation.Jira, "oncall"); err != nil || !was {
		t.Fatalf("end: %v %v", was, err)
	}
	if c := e.post(payments(2, "Payments")); c.res.Status != escalation.StatusCreated {
		t.Fatalf("the first call after the end: %s", c.raw)
	}
	if c := e.post(payments(3, "Payments")); c.res.Status != escalation.StatusLinked {
		t.Fatalf("a new threshold crossed after the end: %s", c.raw)
	}

	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 503, Method: http.MethodGet})
	wrapUp := func(i int) string {
		return body("conversationId", fmt.Sprintf("7f100000-0000-4000-8000-%012d", i), "trigger", "wrap_up", "wrapUpCode", fmt.Sprint(i))
	}
	for i := range 3 {
		e.post(wrapUp(i))
	}
	e.clock.Jump(61 * time.Second) // the probe fails, the breaker re-opens: down for over 60 s
	e.post(wrapUp(3))
	if c := e.post(wrapUp(4)); c.res.Status != escalation.StatusLinked {
		t.Fatalf("down for a minute: %s", c.raw)
	}
	if _, _, err := e.svc.Outage.End(t.Context(), escalation.ServiceNow, "oncall"); err != nil {
		t.Fatal(err)
	}
	if c := e.post(wrapUp(5)); c.res.Status != escalation.StatusQueued || c.res.Reason != escalation.ReasonBreakerOpen {
		t.Fatalf("the same down time after the on-call ended it: %s", c.raw)
	}
}

// What detection costs an ordinary escalation: one escalation to Jira, with the target not
// opted in and opted in (counted, below the threshold), side by side against the same
// DynamoDB Local (each deployment with its own tables and fakes), both warmed up first.
//
//	go test -run '^$' -bench DetectionCost -benchtime 300x ./pkg/escalation/
func BenchmarkDetectionCost(b *testing.B) {
	off := newEnv(b)
	on := newEnv(b, with("JIRA_OUTAGE_THRESHOLD", "100000"), with("JIRA_OUTAGE_TOPIC", "product"))
	n := 0
	post := func(e *env) {
		n++
		if r := e.post(payments(100000+n, fmt.Sprintf("product %d", n%7))); r.res.Status != escalation.StatusCreated {
			b.Fatalf("%s", r.raw)
		}
	}
	for range 30 {
		post(off)
		post(on)
	}
	for _, c := range []struct {
		name string
		env  *env
	}{{"off", off}, {"on", on}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				post(c.env)
			}
		})
	}
}

// An attempt to create the master that died after Jira made it (its lease ran out, nothing
// recorded) is taken for one that may have created it: the next attempt finds the request by
// its marker and does not create another.
func TestDeadMasterAttemptIsFoundNotRepeated(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	f, won, err := e.svc.Outage.Declare(ctx, escalation.Declaration{Target: escalation.Jira, Cause: escalation.CauseRate, Active: true,
		Topic: escalation.Topic{Fields: []string{"product"}, Values: []string{"Payments"}}, Why: "test", Quiet: time.Hour, By: "test"})
	if err != nil || !won {
		t.Fatalf("declare: %v %v", won, err)
	}
	// The dead attempt: its lease, expired, still on the record, and the request it made.
	key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "OUTAGE#jira#" + f.OutageID}, "sk": &types.AttributeValueMemberS{Value: "MASTER"}}
	if _, err := e.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(e.tables.State), Key: key,
		UpdateExpression:          aws.String("SET attempt_until = :u, attempt_owner = :o"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":u": &types.AttributeValueMemberN{Value: fmt.Sprint(e.clock.Now().Add(-time.Second).UnixMilli())}, ":o": &types.AttributeValueMemberS{Value: "dead"}},
	}); err != nil {
		t.Fatal(err)
	}
	api := jira.New(e.jira.URL(), secrets.New(e.secrets.Client()), "cxbridge/jira", nil)
	made, err := api.CreateRequest(ctx, jira.NewRequest{ServiceDeskID: "1", RequestTypeID: "10", Fields: map[string]any{"summary": "the dead attempt's master", "labels": []any{escalation.Marker(f.OutageID)}}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.svc.Outage.EnsureMaster(ctx, e.svc.Targets[escalation.Jira], e.svc.Guards[escalation.Jira], escalation.Jira, f.OutageID)
	if err != nil || rec.Master.Key != made.IssueKey {
		t.Fatalf("ensure: %+v %v; want %s found", rec, err, made.IssueKey)
	}
	if n := len(masterRequests(e, f.OutageID)); n != 1 {
		t.Fatalf("%d master requests; want the dead attempt's only", n)
	}
}
