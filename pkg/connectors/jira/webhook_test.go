package jira_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

func TestVerifySignature(t *testing.T) {
	secret := []byte("webhook-secret")
	body := []byte(`{"webhookEvent":"comment_created","comment":{"id":"1"}}`)
	good := jira.Sign(secret, body)
	if !strings.HasPrefix(good, "sha256=") || len(good) != len("sha256=")+64 || strings.ToLower(good) != good {
		t.Fatalf("signature format %q", good)
	}
	if err := jira.VerifySignature(secret, body, good); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	bad := map[string]struct {
		secret []byte
		body   []byte
		header string
	}{
		"tampered body":     {secret, []byte(`{"webhookEvent":"comment_created","comment":{"id":"2"}}`), good},
		"wrong secret":      {[]byte("other"), body, good},
		"missing header":    {secret, body, ""},
		"missing prefix":    {secret, body, strings.TrimPrefix(good, "sha256=")},
		"other algorithm":   {secret, body, "sha1=" + strings.TrimPrefix(good, "sha256=")},
		"not hex":           {secret, body, "sha256=zz" + good[len("sha256=")+2:]},
		"truncated digest":  {secret, body, good[:len(good)-2]},
		"empty secret":      {nil, body, jira.Sign(nil, body)},
		"re-encoded body":   {secret, []byte(`{"comment":{"id":"1"},"webhookEvent":"comment_created"}`), good},
		"signature-256 use": {secret, body, "sha256 " + strings.TrimPrefix(good, "sha256=")},
	}
	for name, c := range bad {
		err := jira.VerifySignature(c.secret, c.body, c.header)
		if !errors.Is(err, jira.ErrSignature) {
			t.Errorf("%s: err = %v, want ErrSignature", name, err)
		}
	}
}

func TestParseWebhookStringComment(t *testing.T) {
	body := `{"timestamp":1764000000000,"webhookEvent":"comment_created",
	 "comment":{"id":"10101","author":{"accountId":"5b10a2844c20165700ede21f","displayName":"Alex Agent","active":true},
	  "body":"Hi Ana,\nwe are on it.","created":"2026-11-22T10:00:00.000+0000","jsdPublic":true},
	 "issue":{"id":10001,"key":"SUPP-1","fields":{"summary":"x","status":{"name":"Waiting for support","statusCategory":{"id":2,"key":"new"}}}}}`
	ev, err := jira.ParseWebhook([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if ev.WebhookEvent != jira.EventCommentCreated || ev.Issue.Key != "SUPP-1" || ev.Issue.ID.String() != "10001" {
		t.Fatalf("event %+v", ev)
	}
	c := ev.Comment
	if c == nil || c.ID != "10101" || c.Body != "Hi Ana,\nwe are on it." || !c.IsPublic() || c.Author.AccountID != "5b10a2844c20165700ede21f" || c.CreatedTime().IsZero() {
		t.Fatalf("comment %+v", c)
	}
	if ev.IssueDone() || ev.Time().IsZero() {
		t.Fatal("status / time")
	}
}

func TestParseWebhookADFComment(t *testing.T) {
	body := `{"webhookEvent":"comment_created","comment":{"id":"1","jsdPublic":false,"body":{"type":"doc","version":1,"content":[
	  {"type":"paragraph","content":[{"type":"text","text":"Hello "},{"type":"mention","attrs":{"id":"x","text":"@Ana"}},{"type":"text","text":","},{"type":"hardBreak"},{"type":"text","text":"two steps:"}]},
	  {"type":"orderedList","content":[
	    {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"restart"}]}]},
	    {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"log in "},{"type":"emoji","attrs":{"shortName":":smile:","text":"😄"}}]}]}]},
	  {"type":"mediaSingle","content":[{"type":"media","attrs":{"id":"m"}}]},
	  {"type":"paragraph","content":[{"type":"text","text":"See "},{"type":"inlineCard","attrs":{"url":"https://example.com/kb/1"}}]}]}},
	 "issue":{"id":"2","key":"SUPP-2"}}`
	ev, err := jira.ParseWebhook([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := "Hello @Ana,\ntwo steps:\n1. restart\n2. log in 😄\nSee https://example.com/kb/1"
	if ev.Comment.Body != want {
		t.Fatalf("ADF text:\n%q\nwant\n%q", ev.Comment.Body, want)
	}
	if ev.Comment.IsPublic() {
		t.Fatal("jsdPublic false is internal")
	}
}

func TestWebhookCommentWithoutJSDPublicIsInternal(t *testing.T) {
	ev, err := jira.ParseWebhook([]byte(`{"webhookEvent":"comment_created","comment":{"id":"1","body":"x"},"issue":{"key":"A-1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Comment.IsPublic() {
		t.Fatal("a comment without jsdPublic must not count as public")
	}
	if _, err := jira.ParseWebhook([]byte(`{"issue":{}}`)); err == nil {
		t.Fatal("a body without webhookEvent must fail")
	}
	if _, err := jira.ParseWebhook([]byte(`not json`)); err == nil {
		t.Fatal("invalid JSON must fail")
	}
}

func TestParseWebhookStatusChange(t *testing.T) {
	body := `{"webhookEvent":"jira:issue_updated","issue_event_type_name":"issue_generic",
	 "issue":{"id":"10001","key":"SUPP-1","fields":{"status":{"id":"10003","name":"Resolved","statusCategory":{"id":3,"key":"done","name":"Done"}}}},
	 "changelog":{"id":"123","items":[{"field":"resolution","from":null,"fromString":null,"to":"10000","toString":"Done"},
	   {"field":"status","fieldtype":"jira","fieldId":"status","from":"10001","fromString":"Waiting for support","to":"10003","toString":"Resolved"}]}}`
	ev, err := jira.ParseWebhook([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	from, to, ok := ev.StatusChange()
	if !ok || from != "Waiting for support" || to != "Resolved" || !ev.IssueDone() {
		t.Fatalf("change %q -> %q %v done=%v", from, to, ok, ev.IssueDone())
	}
}

// receiver is what messagebird-inbound's Jira route will do: verify, parse, dedupe by delivery id.
type receiver struct {
	secret []byte
	mu     sync.Mutex
	seen   map[string]int
	events []*jira.WebhookEvent
	hdrs   []http.Header
	fail   int // answer 500 to this many deliveries first
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := jira.VerifySignature(rc.secret, body, r.Header.Get(jira.HeaderSignature)); err != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	ev, err := jira.ParseWebhook(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.fail > 0 {
		rc.fail--
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	id := jira.DeliveryID(r.Header)
	rc.seen[id]++
	if rc.seen[id] == 1 {
		rc.events = append(rc.events, ev)
		rc.hdrs = append(rc.hdrs, r.Header.Clone())
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() ([]*jira.WebhookEvent, map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen := map[string]int{}
	for k, v := range rc.seen {
		seen[k] = v
	}
	return append([]*jira.WebhookEvent(nil), rc.events...), seen
}

func TestWebhookDeliveryFromTheFake(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	rc := &receiver{secret: []byte("s3cret"), seen: map[string]int{}, fail: 1}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	e.fake.RegisterWebhook(hook.URL+"/jira/webhook", "s3cret")

	r, err := e.client.CreateRequest(c, newRequest("WhatsApp conversation with +44 7700 900123"))
	if err != nil {
		t.Fatal(err)
	}
	e.fake.WaitDeliveries()
	if n := len(e.fake.Deliveries()); n != 0 {
		t.Fatalf("issue_created is not subscribed, yet %d deliveries", n)
	}

	// An agent's public reply: the first attempt fails (500), the replay succeeds.
	ds, err := e.fake.AgentComment(r.IssueKey, "Hi, we are looking into it.", true, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Status != http.StatusInternalServerError || ds[0].Event != jiratest.EventCommentCreated {
		t.Fatalf("first delivery %+v", ds)
	}
	first := ds[0]
	if first.Header.Get("X-Atlassian-Webhook-Retry") != "" || first.Header.Get("User-Agent") == "" || first.Header.Get("X-Atlassian-Webhook-Flow") != "Primary" {
		t.Fatalf("first attempt headers %v", first.Header)
	}
	again, err := e.fake.Redeliver(first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != http.StatusNoContent || again.ID != first.ID || again.Attempts != 2 || again.Header.Get("X-Atlassian-Webhook-Retry") != "1" {
		t.Fatalf("redelivery %+v", again)
	}
	if string(again.Body) != string(first.Body) {
		t.Fatal("a redelivery must carry the same body")
	}
	// A replay after success is recognised by its delivery id.
	if _, err := e.fake.Redeliver(first.ID); err != nil {
		t.Fatal(err)
	}
	events, seen := rc.snapshot()
	if len(events) != 1 || seen[first.ID] != 2 {
		t.Fatalf("events %d, seen %v", len(events), seen)
	}
	ev := events[0]
	if !ev.Comment.IsPublic() || ev.Comment.Body != "Hi, we are looking into it." || ev.Comment.Author.AccountID != jiratest.AgentAccountID || ev.Issue.Key != r.IssueKey {
		t.Fatalf("comment event %+v / %+v", ev, ev.Comment)
	}

	// An internal note arrives too, and must be told apart.
	if _, err := e.fake.AgentComment(r.IssueKey, "customer sounds upset", false, ""); err != nil {
		t.Fatal(err)
	}
	// Comments the integration itself adds through the API come back as webhooks, authored by
	// the integration account: a receiver must ignore them or it will echo customer messages.
	if _, err := e.client.AddComment(c, r.IssueKey, "Customer: thanks!", true); err != nil {
		t.Fatal(err)
	}
	e.fake.WaitDeliveries()
	// The agent resolves the request: jira:issue_updated with the status change into Done.
	ds, err = e.fake.Transition(r.IssueKey, "Resolve")
	if err != nil || len(ds) != 1 || ds[0].Status != http.StatusNoContent {
		t.Fatalf("transition delivery %+v %v", ds, err)
	}
	events, _ = rc.snapshot()
	if len(events) != 4 {
		t.Fatalf("events = %d, want 4", len(events))
	}
	if events[1].Comment.IsPublic() {
		t.Fatal("internal note marked public")
	}
	if events[2].Comment.Author.AccountID != jiratest.APIUserAccountID {
		t.Fatalf("API comment author %+v", events[2].Comment.Author)
	}
	upd := events[3]
	from, to, ok := upd.StatusChange()
	if upd.WebhookEvent != jira.EventIssueUpdated || !ok || from != "Waiting for support" || to != "Resolved" || !upd.IssueDone() {
		t.Fatalf("update %+v: %q -> %q", upd, from, to)
	}
	ids := map[string]bool{}
	for _, d := range e.fake.Deliveries() {
		if ids[d.ID] {
			t.Fatalf("delivery id %s reused", d.ID)
		}
		ids[d.ID] = true
	}
	if got, _ := e.client.GetRequest(c, r.IssueKey); !got.CurrentStatus.Done() {
		t.Fatal("the agent transition did not change the state")
	}
}

func TestWebhookADFCommentFromTheFake(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	rc := &receiver{secret: []byte("k"), seen: map[string]int{}}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	e.fake.RegisterWebhook(hook.URL, "k", jiratest.EventCommentCreated)
	e.fake.SetWebhookCommentADF(true)
	r, _ := e.client.CreateRequest(ctx(t), newRequest("adf"))
	if _, err := e.fake.AgentComment(r.IssueKey, "Line one\nline two\n\nSecond paragraph", true, ""); err != nil {
		t.Fatal(err)
	}
	events, _ := rc.snapshot()
	if len(events) != 1 || !strings.HasPrefix(strings.TrimSpace(string(events[0].Comment.RawBody)), "{") {
		t.Fatalf("want an ADF body, got %+v", events)
	}
	if got := events[0].Comment.Body; got != "Line one\nline two\nSecond paragraph" {
		t.Fatalf("ADF text %q", got)
	}
}

func TestWebhookWithWrongSecretIsRejectedByTheReceiver(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	rc := &receiver{secret: []byte("right"), seen: map[string]int{}}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	e.fake.RegisterWebhook(hook.URL, "wrong")
	r, _ := e.client.CreateRequest(ctx(t), newRequest("x"))
	ds, err := e.fake.AgentComment(r.IssueKey, "hello", true, "")
	if err != nil || len(ds) != 1 || ds[0].Status != http.StatusUnauthorized {
		t.Fatalf("deliveries %+v %v", ds, err)
	}
	if events, _ := rc.snapshot(); len(events) != 0 {
		t.Fatal("an unverified delivery was accepted")
	}
}
