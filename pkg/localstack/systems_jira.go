package localstack

import (
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

// Jira credentials of the local world (HTTP Basic, as with an API token).
const (
	LocalJiraEmail    = "cxbridge@example.com"
	LocalJiraAPIToken = "local-jira-api-token"
)

func init() {
	register(system{
		name: "jira",
		real: func(getenv func(string) string) bool { return getenv("JIRA_BASE_URL") != "" },
		setReal: func(s *Stack, getenv func(string) string) string {
			s.values["JiraBaseUrl"] = getenv("JIRA_BASE_URL")
			return getenv("JIRA_BASE_URL")
		},
		start: func(s *Stack) (any, func()) {
			j := jiratest.New(jiratest.Config{Email: LocalJiraEmail, APIToken: LocalJiraAPIToken})
			s.Secrets.Put("cxbridge/jira", `{"email":"`+LocalJiraEmail+`","apiToken":"`+LocalJiraAPIToken+`"}`)
			s.values["JiraBaseUrl"] = j.URL()
			return j, j.Close
		},
	})
}

// Jira is the Jira fake, or nil when JIRA_BASE_URL points at a real site.
func (s *Stack) Jira() *jiratest.Server { return fake[*jiratest.Server](s, "jira") }
