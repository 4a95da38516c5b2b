package jira_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

func TestADFDocument(t *testing.T) {
	got := string(jira.ADFDocument("Line one\nline two\n\nSecond paragraph"))
	want := `{"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"Line one"},{"type":"hardBreak"},{"type":"text","text":"line two"}]},{"type":"paragraph","content":[{"type":"text","text":"Second paragraph"}]}]}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := string(jira.ADFDocument("a\n\n\nb")); strings.Contains(got, `"text":""`) {
		t.Fatalf("ADF forbids empty text nodes: %s", got)
	}
	if got := string(jira.ADFDocument("  ")); got != `{"type":"doc","version":1,"content":null}` && got != `{"type":"doc","version":1,"content":[]}` {
		t.Fatalf("empty: %s", got)
	}
}

func TestAppendADFKeepsWhatIsThere(t *testing.T) {
	// An agent's formatting (a panel and a mention this package knows nothing about) survives.
	existing := `{"version":1,"type":"doc","content":[{"type":"panel","attrs":{"panelType":"info"},"content":[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"5b10","text":"@Alex"}}]}]}]}`
	out, err := jira.AppendADF(json.RawMessage(existing), "New message")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`{"type":"panel","attrs":{"panelType":"info"},"content":[{"type":"paragraph","content":[{"type":"mention","attrs":{"id":"5b10","text":"@Alex"}}]}]}`)) {
		t.Fatalf("existing node changed: %s", out)
	}
	if txt := jira.ADFText(out); !strings.HasPrefix(txt, "@Alex\n") || !strings.HasSuffix(txt, "\nNew message") {
		t.Fatalf("text %q", jira.ADFText(out))
	}
	for _, none := range []string{"", "null", " null "} {
		out, err := jira.AppendADF(json.RawMessage(none), "first")
		if err != nil || jira.ADFText(out) != "first" {
			t.Fatalf("%q: %s %v", none, out, err)
		}
	}
	for _, bad := range []string{`"a string"`, `{"type":"paragraph"}`, `[1]`} {
		if _, err := jira.AppendADF(json.RawMessage(bad), "x"); err == nil {
			t.Fatalf("%s accepted as a document", bad)
		}
	}
}

func TestDescriptionReadAndAppend(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	r, err := e.client.CreateRequest(c, jira.NewRequest{ServiceDeskID: "1", RequestTypeID: jiratest.RequestTypeConversation,
		Fields: map[string]any{"summary": "WhatsApp", "description": "Hello"}})
	if err != nil {
		t.Fatal(err)
	}
	issue, err := e.client.GetIssue(c, r.IssueKey, "status", "description")
	if err != nil {
		t.Fatal(err)
	}
	if _, cat := issue.Status(); cat != "new" || jira.ADFText(issue.Raw("description")) != "Hello" {
		t.Fatalf("issue %s: category %q description %s", issue.Key, cat, issue.Raw("description"))
	}
	doc, err := jira.AppendADF(issue.Raw("description"), "More\non two lines")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.SetDescription(c, r.IssueKey, doc); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Description(r.IssueKey); got != "Hello\n\nMore\non two lines" {
		t.Fatalf("description %q", got)
	}
	put := e.fake.Received("/rest/api/3/issue/" + r.IssueKey)
	if len(put) != 2 || put[1].Method != http.MethodPut || !bytes.Contains(put[1].Body, []byte(`"fields":{"description":{"type":"doc"`)) {
		t.Fatalf("edit sent %+v", put)
	}
	// v3 takes no strings for rich text: the platform names the field.
	_, err = e.client.Do(c, connectors.Request{Op: "edit description", Method: http.MethodPut, Path: "/rest/api/3/issue/" + r.IssueKey,
		Body: map[string]any{"fields": map[string]any{"description": "plain"}}}, nil)
	if d, ok := jira.Details(err); !ok || d.Field() != "description" {
		t.Fatalf("string description: %v", err)
	}
	if _, err := e.client.GetIssue(c, "SUPP-404", "status"); connectors.KindOf(err) != connectors.KindNotFound {
		t.Fatalf("missing issue: %v", err)
	}
}

func TestCommentReadAndEdit(t *testing.T) {
	e := basicEnv(t, jiratest.Config{})
	c := ctx(t)
	r, err := e.client.CreateRequest(c, jira.NewRequest{ServiceDeskID: "1", RequestTypeID: jiratest.RequestTypeConversation, Fields: map[string]any{"summary": "s"}})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := e.client.AddComment(c, r.IssueKey, "first", true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.client.GetComment(c, r.IssueKey, mine.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text() != "first" || got.JSDPublic == nil || !*got.JSDPublic || got.Author.AccountID != jiratest.APIUserAccountID {
		t.Fatalf("comment %+v", got)
	}
	doc, _ := jira.AppendADF(got.Body, "second")
	edited, err := e.client.EditComment(c, r.IssueKey, mine.ID, doc)
	if err != nil {
		t.Fatal(err)
	}
	if edited.Text() != "first\nsecond" {
		t.Fatalf("edited %q", edited.Text())
	}
	cs := e.fake.Comments(r.IssueKey)
	if len(cs) != 1 || cs[0].Body != "first\n\nsecond" || !cs[0].Public {
		t.Fatalf("comment after edit: %+v (must stay public)", cs)
	}
	// An agent's comment is not the integration user's to edit.
	if _, err := e.fake.AgentComment(r.IssueKey, "agent words", true, ""); err != nil {
		t.Fatal(err)
	}
	agent := e.fake.Comments(r.IssueKey)[1]
	if _, err := e.client.EditComment(c, r.IssueKey, agent.ID, doc); connectors.KindOf(err) != connectors.KindForbidden {
		t.Fatalf("editing an agent's comment: %v", err)
	}
	if _, err := e.client.GetComment(c, r.IssueKey, "999999"); connectors.KindOf(err) != connectors.KindNotFound {
		t.Fatalf("deleted comment: %v", err)
	}
}
