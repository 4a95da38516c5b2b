package conversation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/conversation"
)

func baseEnv() map[string]string {
	return map[string]string{
		"MESSAGEBIRD_WEBHOOK_URL": publicURL, "MESSAGEBIRD_SECRET_ID": "cxbridge/messagebird", "JIRA_BASE_URL": "https://acme.atlassian.net",
		"JIRA_SECRET_ID": "cxbridge/jira", "INBOUND_SECRET_ID": "cxbridge/inbound", "STATE_TABLE": "state",
		"MESSAGEBIRD_SERVICE_DESK_ID": "1", "MESSAGEBIRD_REQUEST_TYPE_ID": "11",
	}
}

func TestConfigDefaultsAndParsing(t *testing.T) {
	env := baseEnv()
	env["MESSAGEBIRD_CHANNEL_ROUTES"] = "sms=2/21; 9f3c1a2b4d5e4f60a1b2c3d4e5f60718=3/31"
	env["MESSAGEBIRD_WINDOW_TEMPLATE"] = "ns_1/support_reply/pt_BR"
	env["MESSAGEBIRD_WINDOW_TEMPLATE_PARAMS"] = "{requestKey},{agent}"
	env["MESSAGEBIRD_STATUS_NOTIFICATIONS"] = "Done=Your request {requestKey} is closed. Reply=anything to reopen"
	r := config.FromMap(env)
	c := conversation.LoadConfig(r)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if c.MessageBirdBaseURL != "https://conversations.messagebird.com/v1" || c.Budget != 15*time.Second || c.MaxAttachmentBytes != 10<<20 || c.EmailDetail != "email" {
		t.Fatalf("defaults %+v", c)
	}
	if c.Routes["sms"] != (conversation.Route{ServiceDeskID: "2", RequestTypeID: "21"}) || c.Routes["9f3c1a2b4d5e4f60a1b2c3d4e5f60718"].ServiceDeskID != "3" {
		t.Fatalf("routes %+v", c.Routes)
	}
	if c.WindowTemplate == nil || c.WindowTemplate.Language != "pt_BR" || len(c.WindowTemplateParams) != 2 {
		t.Fatalf("template %+v %v", c.WindowTemplate, c.WindowTemplateParams)
	}
	if c.StatusNotifications["done"] != "Your request {requestKey} is closed. Reply=anything to reopen" {
		t.Fatalf("notifications %+v", c.StatusNotifications)
	}
}

func TestConfigReportsEveryProblemByName(t *testing.T) {
	env := baseEnv()
	delete(env, "MESSAGEBIRD_WEBHOOK_URL")
	delete(env, "INBOUND_SECRET_ID")
	env["MESSAGEBIRD_SERVICE_DESK_ID"] = "HELP"
	env["MESSAGEBIRD_CHANNEL_ROUTES"] = "sms=2"
	env["MESSAGEBIRD_WINDOW_TEMPLATE"] = "support_reply"
	env["MESSAGEBIRD_CUSTOMER_EMAIL_TEMPLATE"] = "customer@example.com"
	env["MASK_EXTRA_PATTERNS"] = `{"iban":"("}`
	r := config.FromMap(env)
	conversation.LoadConfig(r)
	err := r.Err()
	for _, name := range []string{"MESSAGEBIRD_WEBHOOK_URL", "INBOUND_SECRET_ID", "MESSAGEBIRD_SERVICE_DESK_ID", "MESSAGEBIRD_CHANNEL_ROUTES",
		"MESSAGEBIRD_WINDOW_TEMPLATE", "MESSAGEBIRD_CUSTOMER_EMAIL_TEMPLATE", "MASK_EXTRA_PATTERNS"} {
		if err == nil || !strings.Contains(err.Error(), name+":") {
			t.Errorf("no problem named %s in %v", name, err)
		}
	}
	env = baseEnv()
	env["MESSAGEBIRD_WEBHOOK_URL"] = "http://hooks.example.com/messagebird/webhook"
	r = config.FromMap(env)
	conversation.LoadConfig(r)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("an http public URL: %v", err)
	}
}
