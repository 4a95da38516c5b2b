package secretstest

import "testing"

func TestAddJSONFieldsKeepsWhatIsThere(t *testing.T) {
	s := New(map[string]string{"shared": `{"jiraWebhookSecret":"j","servicenowSigningKey":"user-supplied"}`})
	defer s.Close()
	if err := s.AddJSONFields("shared", map[string]string{"servicenowSigningKey": "local", "messagebirdSigningKey": "m"}); err != nil {
		t.Fatal(err)
	}
	if got := s.secrets["shared"]; got != `{"jiraWebhookSecret":"j","messagebirdSigningKey":"m","servicenowSigningKey":"user-supplied"}` {
		t.Fatalf("got %s", got)
	}
	if err := s.AddJSONFields("new", map[string]string{"a": "1"}); err != nil || s.secrets["new"] != `{"a":"1"}` {
		t.Fatalf("new secret: %s %v", s.secrets["new"], err)
	}
	s.Put("text", "not json")
	if err := s.AddJSONFields("text", map[string]string{"a": "1"}); err == nil {
		t.Fatal("a non-JSON secret must be reported, not replaced")
	}
}
