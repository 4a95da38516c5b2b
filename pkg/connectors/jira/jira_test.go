package jira_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

const secretID = "cxbridge/jira"

// env is one execution environment: a Jira fake, a Secrets Manager fake read through the real
// SDK and cache, and the client under test.
type env struct {
	fake    *jiratest.Server
	sm      *secretstest.Server
	secrets *secrets.Cache
	client  *jira.Client
}

func newEnv(t *testing.T, cfg jiratest.Config, secret string, base func(*jiratest.Server) string) *env {
	t.Helper()
	fake := jiratest.New(cfg)
	t.Cleanup(fake.Close)
	sm := secretstest.New(map[string]string{secretID: secret})
	t.Cleanup(sm.Close)
	cache := secrets.New(sm.Client())
	return &env{fake: fake, sm: sm, secrets: cache, client: jira.New(base(fake), cache, secretID, nil)}
}

func basicEnv(t *testing.T, cfg jiratest.Config) *env {
	t.Helper()
	cfg.Email, cfg.APIToken = "bot@example.com", "api-token-1"
	return newEnv(t, cfg, `{"email":"bot@example.com","apiToken":"api-token-1"}`, (*jiratest.Server).URL)
}

func oauthEnv(t *testing.T) *env {
	t.Helper()
	cfg := jiratest.Config{ClientID: "sa-client", ClientSecret: "sa-secret"}
	e := newEnv(t, cfg, "", (*jiratest.Server).GatewayURL)
	e.sm.Put(secretID, `{"clientId":"sa-client","clientSecret":"sa-secret","tokenUrl":"`+e.fake.TokenURL()+`"}`)
	return e
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func cerr(t *testing.T, err error) *connectors.Error {
	t.Helper()
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *connectors.Error", err, err)
	}
	return ce
}

func newRequest(summary string, labels ...string) jira.NewRequest {
	f := map[string]any{"summary": summary, "description": "Caller held for 4 minutes."}
	if len(labels) > 0 {
		f["labels"] = labels
	}
	return jira.NewRequest{ServiceDeskID: jiratest.DefaultServiceDeskID, RequestTypeID: jiratest.RequestTypeSupport, Fields: f}
}

// ---------------------------------------------------------------------------------------------
// auth

func TestSecretsAreReadLazily(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	if n := e.sm.Calls("GetSecretValue"); n != 0 {
		t.Fatalf("New read the secret %d times; want none before the first call", n)
	}
	if _, err := e.client.Myself(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n := e.sm.Calls("GetSecretValue"); n != 1 {
		t.Fatalf("GetSecretValue calls = %d, want 1", n)
	}
}

func TestBasicAuth(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	me, err := e.client.Myself(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if me.AccountID != jiratest.APIUserAccountID {
		t.Fatalf("myself = %+v", me)
	}
	for _, r := range e.fake.Received("/rest/") {
		if r.Header.Get("Authorization") != "" {
			t.Fatal("the fake must not keep credentials")
		}
		if r.Gateway {
			t.Fatal("Basic client went through the gateway")
		}
	}
	if e.client.TokenFetches() != 0 {
		t.Fatal("Basic auth fetched an OAuth token")
	}
}

func TestBasicWrongTokenIsUnauthorizedAfterOneRetry(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	e.sm.Put(secretID, `{"email":"bot@example.com","apiToken":"wrong"}`)
	_, err := e.client.GetRequest(ctx(t), "SUPP-1")
	ce := cerr(t, err)
	if ce.Kind != connectors.KindUnauthorized || ce.Status != http.StatusUnauthorized {
		t.Fatalf("got %v", err)
	}
	if connectors.IsOutage(err) {
		t.Fatal("a 401 is not an outage")
	}
	if n := len(e.fake.Received("/rest/servicedeskapi/request/")); n != 2 {
		t.Fatalf("attempts = %d, want 2 (one retry after invalidating)", n)
	}
	if n := e.sm.Calls("GetSecretValue"); n != 2 {
		t.Fatalf("secret reads = %d, want 2 (re-read after the 401)", n)
	}
}

func TestBasicRotatedTokenRecoversOnTheSameCall(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	if _, err := e.client.Myself(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e.fake.SetBasicCredentials("bot@example.com", "api-token-2")
	e.sm.Put(secretID, `{"email":"bot@example.com","apiToken":"api-token-2"}`)
	if _, err := e.client.Myself(ctx(t)); err != nil {
		t.Fatalf("rotated token: %v", err)
	}
}

func TestMissingCredentialsIsConfigError(t *testing.T) {
	e := newEnv(t, jiratest.Config{}, `{"email":"bot@example.com"}`, (*jiratest.Server).URL)
	_, err := e.client.Myself(ctx(t))
	if ce := cerr(t, err); ce.Kind != connectors.KindConfig || !strings.Contains(ce.Error(), secretID) {
		t.Fatalf("got %v", err)
	}
	if len(e.fake.Received("")) != 0 {
		t.Fatal("a request was sent without credentials")
	}
}

func TestOAuthTokenIsReusedAndRefreshedOnceOn401(t *testing.T) {
	e := oauthEnv(t)
	// Prime first: concurrent *first* use can fetch twice (pkg/oauth re-checks no cache inside
	// its single-flight), which is pkg/oauth's to fix and test; here the point is reuse.
	if _, err := e.client.Myself(ctx(t)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := e.client.Myself(ctx(t))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.client.Myself(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.TokensIssued(); n != 1 {
		t.Fatalf("tokens issued = %d, want 1 (cached, single-flight)", n)
	}
	tok := e.fake.Received("/oauth/token")
	if len(tok) != 1 {
		t.Fatalf("token requests = %d", len(tok))
	}
	var body map[string]string
	_ = json.Unmarshal(tok[0].Body, &body)
	if body["grant_type"] != "client_credentials" || body["audience"] != "api.atlassian.com" || body["content_type"] != "application/json" || body["client_id"] != "sa-client" {
		t.Fatalf("token request = %v", body)
	}
	for _, r := range e.fake.Received("/rest/") {
		if !r.Gateway {
			t.Fatal("OAuth client must call through /ex/jira/{cloudId}")
		}
	}

	e.fake.ExpireTokens()
	before := len(e.fake.Received("/rest/"))
	if _, err := e.client.Myself(ctx(t)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if n := e.fake.TokensIssued(); n != 2 {
		t.Fatalf("tokens issued = %d, want 2 (one refresh after the 401)", n)
	}
	if n := len(e.fake.Received("/rest/")) - before; n != 2 {
		t.Fatalf("API attempts = %d, want 2 (401, then the retry)", n)
	}
	if e.client.TokenFetches() != 2 {
		t.Fatalf("TokenFetches = %d", e.client.TokenFetches())
	}
}

func TestOAuthBadClientSecret(t *testing.T) {
	e := oauthEnv(t)
	e.sm.Put(secretID, `{"clientId":"sa-client","clientSecret":"nope","tokenUrl":"`+e.fake.TokenURL()+`"}`)
	_, err := e.client.Myself(ctx(t))
	if ce := cerr(t, err); ce.Kind != connectors.KindUnauthorized || ce.Op != "get access token" {
		t.Fatalf("got %v", err)
	}
	if len(e.fake.Received("/rest/")) != 0 {
		t.Fatal("an API call was made without a token")
	}
}

func TestOAuthAgainstSiteURLExplainsTheGateway(t *testing.T) {
	cfg := jiratest.Config{ClientID: "sa-client", ClientSecret: "sa-secret"}
	e := newEnv(t, cfg, "", (*jiratest.Server).URL)
	e.sm.Put(secretID, `{"clientId":"sa-client","clientSecret":"sa-secret","tokenUrl":"`+e.fake.TokenURL()+`"}`)
	// Reach the fake under a site host name: every connection dials the fake.
	addr := strings.TrimPrefix(e.fake.URL(), "http://")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(c context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(c, network, addr)
	}}}
	client := jira.New("http://acme.atlassian.net", e.secrets, secretID, hc)
	_, err := client.Myself(ctx(t))
	ce := cerr(t, err)
	if ce.Kind != connectors.KindUnauthorized || !strings.Contains(ce.Message, "api.atlassian.com/ex/jira/{cloudId}") {
		t.Fatalf("got %v", err)
	}
	if e.fake.TokensIssued() != 2 {
		t.Fatalf("tokens = %d, want 2 (the 401 forces one refresh before giving up)", e.fake.TokensIssued())
	}
}

// ---------------------------------------------------------------------------------------------
// requests

func TestCreateRequestWithCustomFieldsAndArrayResponse(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	cust := e.fake.AddCustomer("ana@example.com", "Ana Caller", jiratest.DefaultServiceDeskID)
	in := newRequest("Escalation: conversation c-42 held 4 minutes", "cxb-esc-c42")
	in.Fields[jiratest.FieldConversationID] = "c-42"
	in.Fields[jiratest.FieldEscalationKey] = "esc-c42"
	in.RaiseOnBehalfOf = cust
	got, err := e.client.CreateRequest(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if got.IssueKey != "SUPP-1" || got.IssueID == "" || got.Links.Web == "" || got.Reporter.AccountID != cust {
		t.Fatalf("created %+v", got)
	}
	if got.CurrentStatus.StatusCategory != jira.CategoryNew || got.CurrentStatus.Done() {
		t.Fatalf("status %+v", got.CurrentStatus)
	}
	if f, ok := got.Field(jiratest.FieldConversationID); !ok || f.String() != "c-42" || f.Label != "Genesys Conversation ID" {
		t.Fatalf("custom field = %+v %v", f, ok)
	}
	if f, _ := got.Field("labels"); len(f.Strings()) != 1 || f.Strings()[0] != "cxb-esc-c42" {
		t.Fatalf("labels = %s", f.Value)
	}
	if got.CreatedDate.Time().IsZero() {
		t.Fatal("createdDate not parsed")
	}

	// What went over the wire is JSM's shape: string ids and a map keyed by field id.
	rec := e.fake.Received("/rest/servicedeskapi/request")[0]
	var wire map[string]any
	if err := json.Unmarshal(rec.Body, &wire); err != nil {
		t.Fatal(err)
	}
	if _, ok := wire["serviceDeskId"].(string); !ok {
		t.Fatalf("serviceDeskId is not a string: %s", rec.Body)
	}
	if _, ok := wire["requestTypeId"].(string); !ok {
		t.Fatalf("requestTypeId is not a string: %s", rec.Body)
	}
	if fv, ok := wire["requestFieldValues"].(map[string]any); !ok || fv[jiratest.FieldEscalationKey] != "esc-c42" {
		t.Fatalf("requestFieldValues = %s", rec.Body)
	}
	for _, k := range []string{"fields", "issuetype", "issueType", "project", "requestType"} {
		if _, ok := wire[k]; ok {
			t.Fatalf("body has %q: %s", k, rec.Body)
		}
	}

	again, err := e.client.GetRequest(ctx(t), got.IssueKey)
	if err != nil {
		t.Fatal(err)
	}
	if again.IssueID != got.IssueID || len(again.RequestFieldValues) != len(got.RequestFieldValues) {
		t.Fatalf("get = %+v", again)
	}
	if _, err := e.client.GetRequest(ctx(t), "SUPP-999"); connectors.KindOf(err) != connectors.KindNotFound {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestSeed000PayloadIsRejected(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	seed := map[string]any{
		"issueType":   map[string]string{"id": "10002"},
		"requestType": map[string]string{"id": "10005"},
		"fields": map[string]any{
			"summary":           "Escalation: Call ID 1 - High Hold Time",
			"requester":         map[string]string{"accountId": "ana@example.com"},
			"customfield_10055": "Technical Support",
		},
	}
	_, err := e.client.Do(ctx(t), connectors.Request{Op: "create request", Method: http.MethodPost, Path: "/rest/servicedeskapi/request", Body: seed}, nil)
	ce := cerr(t, err)
	if ce.Kind != connectors.KindRejected || ce.Status != http.StatusBadRequest || !strings.Contains(ce.Message, `"fields"`) {
		t.Fatalf("got %v", err)
	}
	if connectors.IsOutage(err) {
		t.Fatal("a rejected payload is not an outage")
	}
	if e.fake.RequestCount() != 0 {
		t.Fatal("a request was created")
	}
}

func TestCreateRequestValidation(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)

	// An email in raiseOnBehalfOf never leaves the client.
	in := newRequest("x")
	in.RaiseOnBehalfOf = "ana@example.com"
	if _, err := e.client.CreateRequest(c, in); connectors.KindOf(err) != connectors.KindRejected {
		t.Fatalf("email raiseOnBehalfOf: %v", err)
	}
	if len(e.fake.Received("")) != 0 {
		t.Fatal("the email was sent")
	}
	// ... and the fake refuses it like JSM when something else sends it.
	raw := map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "requestFieldValues": map[string]any{"summary": "x"}, "raiseOnBehalfOf": "ana@example.com"}
	_, err := e.client.Do(c, connectors.Request{Op: "create request", Method: http.MethodPost, Path: "/rest/servicedeskapi/request", Body: raw}, nil)
	if ce := cerr(t, err); ce.Status != 400 || !strings.Contains(ce.Message, "raiseOnBehalfOf") {
		t.Fatalf("raw email raiseOnBehalfOf: %v", err)
	}

	// Missing summary: a 400 that names the field.
	in = newRequest("")
	_, err = e.client.CreateRequest(c, in)
	if ce := cerr(t, err); ce.Kind != connectors.KindRejected || !strings.Contains(ce.Message, "summary") {
		t.Fatalf("missing summary: %v", err)
	}

	// A field that is not on the request type's form.
	in = newRequest("x")
	in.Fields["customfield_99999"] = "y"
	_, err = e.client.CreateRequest(c, in)
	if ce := cerr(t, err); !strings.Contains(ce.Message, "customfield_99999") {
		t.Fatalf("unknown field: %v", err)
	}

	// Unknown desk and request type.
	in = newRequest("x")
	in.ServiceDeskID = "99"
	if _, err := e.client.CreateRequest(c, in); connectors.KindOf(err) != connectors.KindNotFound {
		t.Fatalf("unknown desk: %v", err)
	}
	in = newRequest("x")
	in.RequestTypeID = "99"
	_, err = e.client.CreateRequest(c, in)
	if ce := cerr(t, err); ce.Kind != connectors.KindRejected || ce.Code == "" {
		t.Fatalf("unknown request type (want the JSM i18nKey as Code): %v", err)
	}
	if e.fake.RequestCount() != 0 {
		t.Fatal("an invalid request was created")
	}
}

func TestLabelsNotOnTheFormAreRejectedThenAddedAfterCreation(t *testing.T) {
	desk := jiratest.ServiceDesk{ID: "2", ProjectKey: "HELP", RequestTypes: []jiratest.RequestType{{
		ID: "20", Name: "Help", Fields: []jiratest.FieldDef{{ID: "summary", Name: "Summary", Type: jiratest.FieldText, Required: true}},
	}}}
	e := basicEnv(t, jiratest.Config{ServiceDesks: []jiratest.ServiceDesk{desk}})
	c := ctx(t)
	in := jira.NewRequest{ServiceDeskID: "2", RequestTypeID: "20", Fields: map[string]any{"summary": "x", "labels": []string{"cxb-1"}}}
	_, err := e.client.CreateRequest(c, in)
	if ce := cerr(t, err); !strings.Contains(ce.Message, "labels") {
		t.Fatalf("labels not on the form: %v", err)
	}
	delete(in.Fields, "labels")
	r, err := e.client.CreateRequest(c, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.IssueKey != "HELP-1" {
		t.Fatalf("key %s", r.IssueKey)
	}
	if err := e.client.AddLabels(c, r.IssueKey, "cxb-1", "cxb-2"); err != nil {
		t.Fatal(err)
	}
	got, _ := e.fake.Request(r.IssueKey)
	if l := got.Labels(); len(l) != 2 || l[0] != "cxb-1" {
		t.Fatalf("labels %v", l)
	}
	rec := e.fake.Received("/rest/api/3/issue/")
	if len(rec) != 1 || rec[0].Method != http.MethodPut || !bytes.Contains(rec[0].Body, []byte(`"update":{"labels":[{"add":"cxb-1"},{"add":"cxb-2"}]}`)) {
		t.Fatalf("AddLabels sent %+v", rec)
	}
	// A label with a space never leaves the client; sent raw, the platform names the field.
	if err := e.client.AddLabels(c, r.IssueKey, "two words"); connectors.KindOf(err) != connectors.KindRejected {
		t.Fatalf("space: %v", err)
	}
	_, err = e.client.Do(c, connectors.Request{Op: "add labels", Method: http.MethodPut, Path: "/rest/api/3/issue/" + r.IssueKey,
		Body: map[string]any{"update": map[string]any{"labels": []map[string]string{{"add": "two words"}}}}}, nil)
	d, ok := jira.Details(err)
	if !ok || d.Field() != "labels" || !strings.Contains(cerr(t, err).Message, "labels: ") {
		t.Fatalf("platform field error: %v (%+v)", err, d)
	}
}

// ---------------------------------------------------------------------------------------------
// customers

func TestResolveCustomer(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	id, err := e.client.ResolveCustomer(c, "1", "New.Person@Example.com", "New Person")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "qm:") {
		t.Fatalf("accountId %q", id)
	}
	acct, _ := e.fake.Account(id)
	if len(acct.Desks) != 1 || acct.Desks[0] != "1" {
		t.Fatalf("new customer not added to the desk: %+v", acct)
	}
	// Found again (case-insensitively), without creating.
	again, err := e.client.ResolveCustomer(c, "1", "new.person@example.com", "")
	if err != nil || again != id {
		t.Fatalf("again = %q, %v", again, err)
	}
	if n := len(e.fake.Received("/rest/servicedeskapi/customer")); n != 1 {
		t.Fatalf("create calls = %d, want 1", n)
	}
	for _, r := range e.fake.Received("/rest/servicedeskapi/servicedesk/1/customer") {
		if r.Method == http.MethodGet && r.Header.Get("X-ExperimentalApi") != "opt-in" {
			t.Fatal("customer search without X-ExperimentalApi: opt-in")
		}
	}
	created := e.fake.Received("/rest/servicedeskapi/customer")[0]
	if created.Query.Get("strictConflictStatusCode") != "true" {
		t.Fatal("create customer without strictConflictStatusCode=true")
	}
}

func TestResolveCustomerExistingAccountOutsideTheDesk(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	existing := e.fake.AddCustomer("old@example.com", "Old Customer") // in no desk: find misses, create 409s
	id, err := e.client.ResolveCustomer(ctx(t), "1", "old@example.com", "Old Customer")
	if err != nil {
		t.Fatal(err)
	}
	if id != existing {
		t.Fatalf("id %q, want %q", id, existing)
	}
	if a, _ := e.fake.Account(id); len(a.Desks) != 1 {
		t.Fatalf("not added to desk: %+v", a)
	}
	if len(e.fake.Customers()) != 1 {
		t.Fatal("a duplicate customer was created")
	}
	if _, err := e.client.CreateCustomer(ctx(t), "old@example.com", "x"); connectors.KindOf(err) != connectors.KindConflict {
		t.Fatalf("duplicate create: %v", err)
	}
}

func TestResolveCustomerConcurrently(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = e.client.ResolveCustomer(ctx(t), "1", "race@example.com", "Race") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("different accountIds: %v", ids)
		}
	}
	if got := len(e.fake.Customers()); got != 1 {
		t.Fatalf("customers = %d, want 1", got)
	}
}

func TestFindCustomerHiddenEmail(t *testing.T) {
	e := basicEnv(t, jiratest.Config{HideEmails: true})
	e.fake.AddCustomer("ana@example.com", "Ana", "1")
	_, found, err := e.client.FindCustomer(ctx(t), "1", "ana@example.com")
	if err != nil || found {
		t.Fatalf("with hidden emails an exact match is impossible: found=%v err=%v", found, err)
	}
}

// ---------------------------------------------------------------------------------------------
// comments and transitions

func TestCommentsPublicAndInternal(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	r, err := e.client.CreateRequest(c, newRequest("chat"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := e.client.AddComment(c, r.IssueKey, "Hello from WhatsApp", true)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Public || pub.ID == "" || pub.Author.AccountID != jiratest.APIUserAccountID || pub.Created.Time().IsZero() {
		t.Fatalf("public comment %+v", pub)
	}
	if _, err := e.client.AddComment(c, r.IssueKey, "internal note", false); err != nil {
		t.Fatal(err)
	}
	rec := e.fake.Received("/rest/servicedeskapi/request/" + r.IssueKey + "/comment")
	if string(rec[1].Body) != `{"body":"internal note","public":false}` {
		t.Fatalf("wire body %s", rec[1].Body)
	}
	all, _ := e.client.ListComments(c, r.IssueKey, jira.AllComments)
	public, _ := e.client.ListComments(c, r.IssueKey, jira.PublicComments)
	internal, err := e.client.ListComments(c, r.IssueKey, jira.InternalComments)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || len(public) != 1 || public[0].Body != "Hello from WhatsApp" || len(internal) != 1 || internal[0].Public {
		t.Fatalf("all=%v public=%v internal=%v", all, public, internal)
	}
	if _, err := e.client.AddComment(c, r.IssueKey, "  ", true); connectors.KindOf(err) != connectors.KindRejected {
		t.Fatalf("empty comment: %v", err)
	}
}

func TestCommentsPaging(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	r, _ := e.client.CreateRequest(c, newRequest("long chat"))
	for i := range 120 {
		if _, err := e.client.AddComment(c, r.IssueKey, "message "+string(rune('a'+i%26)), true); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.client.ListComments(c, r.IssueKey, jira.AllComments)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 120 {
		t.Fatalf("comments = %d, want 120 over several pages", len(got))
	}
}

func TestTransitionToDone(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	r, _ := e.client.CreateRequest(c, newRequest("to close"))
	ts, err := e.client.Transitions(c, r.IssueKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Name != "Start progress" || ts[1].Name != "Resolve" {
		t.Fatalf("transitions %+v", ts)
	}
	if err := e.client.TransitionByName(c, r.IssueKey, "start progress", ""); err != nil {
		t.Fatal(err)
	}
	got, _ := e.client.GetRequest(c, r.IssueKey)
	if got.CurrentStatus.StatusCategory != jira.CategoryIndeterminate {
		t.Fatalf("after start: %+v", got.CurrentStatus)
	}
	if err := e.client.TransitionByName(c, r.IssueKey, "Resolve", "Solved on the call."); err != nil {
		t.Fatal(err)
	}
	got, _ = e.client.GetRequest(c, r.IssueKey)
	if !got.CurrentStatus.Done() || got.CurrentStatus.Status != "Resolved" {
		t.Fatalf("after resolve: %+v", got.CurrentStatus)
	}
	if cs := e.fake.Comments(r.IssueKey); len(cs) != 1 || cs[0].Body != "Solved on the call." {
		t.Fatalf("additional comment %+v", cs)
	}
	rec := e.fake.Received("/rest/servicedeskapi/request/" + r.IssueKey + "/transition")
	if last := rec[len(rec)-1]; last.Method != http.MethodPost || string(last.Body) != `{"additionalComment":{"body":"Solved on the call."},"id":"21"}` {
		t.Fatalf("transition body %s", last.Body)
	}
	err = e.client.TransitionByName(c, r.IssueKey, "Resolve", "")
	if ce := cerr(t, err); ce.Kind != connectors.KindRejected || !strings.Contains(ce.Message, `"Reopen"`) {
		t.Fatalf("unavailable transition: %v", err)
	}
	if err := e.client.Transition(c, r.IssueKey, "11", ""); connectors.KindOf(err) != connectors.KindRejected {
		t.Fatalf("invalid id: %v", err)
	}
}

// ---------------------------------------------------------------------------------------------
// attachments

func TestAttachmentTwoStep(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	r, _ := e.client.CreateRequest(c, newRequest("with media"))
	png := []byte("\x89PNG\r\n\x1a\n fake image bytes")
	res, err := e.client.Attach(c, "1", r.IssueKey, true, "Photo from the customer",
		jira.File{Name: "photo.png", Data: png},
		jira.File{Name: "note.txt", Data: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Attachments) != 2 || res.Attachments[0].Filename != "photo.png" || res.Attachments[0].Size != int64(len(png)) || !res.Comment.Public {
		t.Fatalf("result %+v", res)
	}
	stored := e.fake.Attachments(r.IssueKey)
	if len(stored) != 2 || !bytes.Equal(stored[0].Data, png) || stored[0].MimeType != "image/png" || !strings.HasPrefix(stored[1].MimeType, "text/plain") {
		t.Fatalf("stored %+v", stored)
	}
	if cs := e.fake.Comments(r.IssueKey); len(cs) != 1 || !strings.HasPrefix(cs[0].Body, "Photo from the customer") || len(cs[0].Attachments) != 2 {
		t.Fatalf("comment %+v", cs)
	}

	// The upload is a real multipart body with parts named "file" and the XSRF opt-out.
	up := e.fake.Received("/rest/servicedeskapi/servicedesk/1/attachTemporaryFile")[0]
	if up.Header.Get("X-Atlassian-Token") != "no-check" {
		t.Fatal("no X-Atlassian-Token: no-check")
	}
	mt, params, err := mime.ParseMediaType(up.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("content type %q", up.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(up.Raw), params["boundary"])
	var names []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.FormName() != "file" {
			t.Fatalf("part name %q", p.FormName())
		}
		names = append(names, p.FileName())
	}
	if strings.Join(names, ",") != "photo.png,note.txt" {
		t.Fatalf("parts %v", names)
	}
	att := e.fake.Received("/rest/servicedeskapi/request/" + r.IssueKey + "/attachment")[0]
	var body map[string]any
	_ = json.Unmarshal(att.Body, &body)
	if ids, ok := body["temporaryAttachmentIds"].([]any); !ok || len(ids) != 2 || body["public"] != true {
		t.Fatalf("attachment body %s", att.Body)
	}

	// Temporary ids are consumed.
	_, err = e.client.CreateAttachment(c, r.IssueKey, jira.NewAttachment{TemporaryAttachmentIDs: []string{ids(body)[0]}, Public: true})
	if connectors.KindOf(err) != connectors.KindRejected {
		t.Fatalf("reused temporary id: %v", err)
	}
}

func ids(body map[string]any) []string {
	var out []string
	for _, v := range body["temporaryAttachmentIds"].([]any) {
		out = append(out, v.(string))
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// search

func TestFindByLabelAfterCreate(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	want, err := e.client.CreateRequest(c, newRequest("escalation A", "cxb-idem-aaa"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CreateRequest(c, newRequest("escalation B", "cxb-idem-bbb")); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.FindByLabel(c, "cxb-idem-aaa", jiratest.DefaultProjectKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != want.IssueKey || got[0].ID != want.IssueID || got[0].String("summary") != "escalation A" {
		t.Fatalf("found %+v", got)
	}
	if l := got[0].Labels(); len(l) != 1 || l[0] != "cxb-idem-aaa" {
		t.Fatalf("labels %v", l)
	}
	if name, cat := got[0].Status(); name != "Waiting for support" || cat != "new" {
		t.Fatalf("status %s/%s", name, cat)
	}
	rec := e.fake.Received("/rest/api/3/search/jql")[0]
	if rec.Method != http.MethodPost || !bytes.Contains(rec.Body, []byte(`"jql":"project = \"SUPP\" AND labels = \"cxb-idem-aaa\" ORDER BY created ASC"`)) {
		t.Fatalf("search body %s", rec.Body)
	}
	none, err := e.client.FindByLabel(c, "cxb-idem-zzz", "")
	if err != nil || len(none) != 0 {
		t.Fatalf("none = %v, %v", none, err)
	}
	// Text search on a custom field by name and by cf[] id.
	res, err := e.client.SearchIssues(c, jira.Search{JQL: `project = SUPP AND "Escalation Key" ~ "nothing"`})
	if err != nil || len(res.Issues) != 0 || !res.IsLast {
		t.Fatalf("custom field search: %+v %v", res, err)
	}
}

func TestSearchIsEventuallyConsistent(t *testing.T) {
	e := basicEnv(t, jiratest.Config{SearchLag: time.Hour})
	c := ctx(t)
	r, _ := e.client.CreateRequest(c, newRequest("just created", "cxb-idem-new"))
	got, err := e.client.FindByLabel(c, "cxb-idem-new", "")
	if err != nil || len(got) != 0 {
		t.Fatalf("lagging search found %v (%v)", got, err)
	}
	id := int64(0)
	for _, ch := range r.IssueID {
		id = id*10 + int64(ch-'0')
	}
	res, err := e.client.SearchIssues(c, jira.Search{JQL: `labels = "cxb-idem-new"`, ReconcileIssues: []int64{id}})
	if err != nil || len(res.Issues) != 1 {
		t.Fatalf("reconciled search: %+v %v", res, err)
	}
}

func TestSearchPaging(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	for range 7 {
		if _, err := e.client.CreateRequest(c, newRequest("bulk", "cxb-bulk")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.client.SearchIssues(c, jira.Search{JQL: `labels in ("cxb-bulk", "other")`, MaxResults: 3})
	if err != nil || len(res.Issues) != 3 || res.IsLast || res.NextPageToken == "" {
		t.Fatalf("page 1: %+v %v", res, err)
	}
	all, err := e.client.FindByLabel(c, "cxb-bulk", "")
	if err != nil || len(all) != 7 {
		t.Fatalf("all pages: %d %v", len(all), err)
	}
}

func TestBadJQLIsRejectedWithJirasMessage(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	_, err := e.client.SearchIssues(ctx(t), jira.Search{JQL: `labels = `})
	ce := cerr(t, err)
	if ce.Kind != connectors.KindRejected || !strings.HasPrefix(ce.Message, "Error in the JQL Query") {
		t.Fatalf("got %v", err)
	}
}

// ---------------------------------------------------------------------------------------------
// rate limits and outages

func TestRateLimitIsParsedIntoTheError(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	e.fake.RateLimit(2, time.Minute)
	for range 2 {
		if _, err := e.client.Myself(c); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.client.Myself(c)
	ce := cerr(t, err)
	if ce.Kind != connectors.KindRateLimited || !connectors.IsOutage(err) {
		t.Fatalf("got %v", err)
	}
	wait, ok := ce.RetryAfter()
	if !ok || wait <= 0 || wait > time.Minute {
		t.Fatalf("Retry-After %v %v", wait, ok)
	}
	d, ok := jira.Details(err)
	if !ok || d.RateLimitReason != "jira-burst-based" || d.RateLimitReset.IsZero() || d.RateLimitLimit != 2 || d.RateLimitRemaining != 0 {
		t.Fatalf("details %+v", d)
	}
	if d.RateLimitReset.Before(time.Now().Add(-time.Minute)) || d.RateLimitReset.After(time.Now().Add(2*time.Minute)) {
		t.Fatalf("reset %v is not an ISO time near now", d.RateLimitReset)
	}
}

func TestRateLimitResetWithoutRetryAfter(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	reset := time.Now().Add(3 * time.Minute).UTC().Format("2006-01-02T15:04Z")
	e.fake.Fail("/rest/api/3/myself", jiratest.Failure{Status: 429, Times: 1, Reason: "jira-per-issue-on-write", Header: http.Header{"X-RateLimit-Reset": {reset}}})
	_, err := e.client.Myself(ctx(t))
	ce := cerr(t, err)
	wait, ok := ce.RetryAfter()
	if !ok || wait < time.Minute || wait > 4*time.Minute {
		t.Fatalf("wait derived from X-RateLimit-Reset = %v %v", wait, ok)
	}
	if d, _ := jira.Details(err); d.RateLimitReason != "jira-per-issue-on-write" {
		t.Fatalf("reason %+v", d)
	}
}

func TestInjectedFailuresAreOutages(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	e.fake.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503, RetryAfter: 7, Times: 1}, jiratest.Failure{Status: 500, Times: 1})

	_, err := e.client.CreateRequest(c, newRequest("during an outage"))
	ce := cerr(t, err)
	if ce.Kind != connectors.KindUnavailable || !connectors.IsOutage(err) || ce.Code == "" {
		t.Fatalf("503: %v", err)
	}
	if wait, ok := ce.RetryAfter(); !ok || wait != 7*time.Second {
		t.Fatalf("503 Retry-After %v %v", wait, ok)
	}
	_, err = e.client.CreateRequest(c, newRequest("during an outage"))
	if !connectors.IsOutage(err) || cerr(t, err).Status != 500 {
		t.Fatalf("500: %v", err)
	}
	if e.fake.RequestCount() != 0 {
		t.Fatal("a request was created during the outage")
	}
	if n := len(e.fake.Received("/rest/servicedeskapi/request")); n != 2 {
		t.Fatalf("create was sent %d times; it must never be retried by the client", n)
	}

	e.fake.Fail("/rest/servicedeskapi/request", jiratest.Failure{Delay: time.Hour, Times: 1})
	short, cancel := context.WithTimeout(c, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.client.CreateRequest(short, newRequest("hang"))
	if !connectors.IsOutage(err) || time.Since(start) > 2*time.Second {
		t.Fatalf("hang: %v after %v", err, time.Since(start))
	}
	if _, err := e.client.CreateRequest(c, newRequest("after")); err != nil {
		t.Fatalf("after the failures: %v", err)
	}
}

// ---------------------------------------------------------------------------------------------
// error parsing

func TestParseError(t *testing.T) {
	cases := []struct {
		body, code, msg string
	}{
		{`{"errorMessages":["Issue does not exist"],"errors":{}}`, "", "Issue does not exist"},
		{`{"errorMessages":[],"errors":{"summary":"You must specify a summary of the issue.","customfield_10050":"required"}}`, "", "customfield_10050: required; summary: You must specify a summary of the issue."},
		{`{"errorMessage":"The request type does not exist","i18nErrorMessage":{"i18nKey":"sd.request.type.invalid","parameters":[]}}`, "sd.request.type.invalid", "The request type does not exist"},
		{`XSRF check failed`, "", "XSRF check failed"},
		{`<html><body>502 Bad Gateway</body></html>`, "", ""},
		{``, "", ""},
	}
	for _, c := range cases {
		code, msg := jira.ParseError([]byte(c.body))
		if code != c.code || msg != c.msg {
			t.Errorf("ParseError(%s) = %q, %q; want %q, %q", c.body, code, msg, c.code, c.msg)
		}
	}
}

func TestParseRateLimitReset(t *testing.T) {
	for _, v := range []string{"2026-11-22T10:15Z", "2026-11-22T10:15:00Z", "2026-11-22T10:15:00.000+0000"} {
		got, ok := jira.ParseRateLimitReset(v)
		if !ok || !got.Equal(time.Date(2026, 11, 22, 10, 15, 0, 0, time.UTC)) {
			t.Errorf("%s -> %v %v", v, got, ok)
		}
	}
	if _, ok := jira.ParseRateLimitReset("1764000000"); ok {
		t.Error("epoch seconds are not Jira's format")
	}
}
