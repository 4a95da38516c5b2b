// Command messagebird-inbound bridges MessageBird conversations and Jira Service Management
// requests, both ways: POST /messagebird/webhook (customer messages) and POST /jira/webhook
// (agent replies, status changes). It is only wiring; the behaviour lives in pkg/conversation.
package main

import (
	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/boot"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/conversation"
)

// maxBody fits Jira's webhook payloads, which carry the whole issue.
const maxBody = 1 << 20

func main() {
	env := boot.New("messagebird-inbound")
	cfg := conversation.LoadConfig(env.Config)
	jiraBreaker := breaker.SettingsFromEnv(env.Config, "jira")
	messageBirdBreaker := breaker.SettingsFromEnv(env.Config, "messagebird")
	env.Check()
	svc := &conversation.Service{
		Config:         cfg,
		Store:          &conversation.Store{DB: env.DB, Table: cfg.StateTable},
		Jira:           jira.New(cfg.JiraBaseURL, env.Secrets, cfg.JiraSecretID, env.HTTP(jira.System)),
		Messenger:      messagebird.New(cfg.MessageBirdBaseURL, env.Secrets, cfg.MessageBirdSecretID, env.HTTP(messagebird.System)),
		Secrets:        env.Secrets,
		JiraGuard:      breaker.New(env.DB, cfg.StateTable, jiraBreaker),
		MessengerGuard: breaker.New(env.DB, cfg.StateTable, messageBirdBreaker),
	}
	boot.Start(env, apigw.Lambda(apigw.Limits{MaxBody: maxBody}, svc.Handle))
}
