package localstack

import (
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

// Credentials of the local Jira site (HTTP Basic with an API token).
const (
	LocalJiraEmail    = "cxbridge-bot@example.com"
	LocalJiraAPIToken = "local-jira-api-token"
)

// Local Jira customers the events use.
const (
	JiraCustomerEmail = "jane.doe@example.com"
)

func init() {
	parameters(map[string]string{
		"JiraProjects":         "SUPP=" + jiratest.DefaultServiceDeskID + "/" + jiratest.RequestTypeSupport,
		"JiraDefaultProject":   jiratest.DefaultProjectKey,
		"JiraProductProjects":  "Mobile App=" + jiratest.DefaultProjectKey,
		"JiraFieldMap":         `{"summary":"{{summary}}","description":"{{details}}","` + jiratest.FieldConversationID + `":"{{conversationId}}"}`,
		"JiraSearchLagSeconds": "5",
	})
	register(system{
		params: []string{"JiraBaseUrl"},
		name:   "jira",
		real:   func(getenv func(string) string) bool { return getenv("JIRA_BASE_URL") != "" },
		setReal: func(s *Stack, getenv func(string) string) string {
			s.values["JiraBaseUrl"] = getenv("JIRA_BASE_URL")
			return getenv("JIRA_BASE_URL")
		},
		start: func(s *Stack) (any, func()) {
			j := jiratest.New(jiratest.Config{Email: LocalJiraEmail, APIToken: LocalJiraAPIToken})
			j.AddCustomer(JiraCustomerEmail, "Jane Doe", jiratest.DefaultServiceDeskID)
			s.Secrets.Put("cxbridge/jira", `{"email":"`+LocalJiraEmail+`","apiToken":"`+LocalJiraAPIToken+`"}`)
			s.values["JiraBaseUrl"] = j.URL()
			return j, j.Close
		},
	})
}

// Jira is the Jira fake, or nil when JIRA_BASE_URL points at a real site.
func (s *Stack) Jira() *jiratest.Server { return fake[*jiratest.Server](s, "jira") }
