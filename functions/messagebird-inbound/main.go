// Command messagebird-inbound bridges MessageBird conversations and Jira Service Management
// requests, both ways: POST /messagebird/webhook (customer messages) and POST /jira/webhook
// (agent replies, status changes). It is only wiring; the behaviour lives in pkg/conversation.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/conversation"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// maxBody fits Jira's webhook payloads, which carry the whole issue.
const maxBody = 1 << 20

func main() {
	observe.Setup("cxbridge")
	env := config.New(nil)
	cfg := conversation.LoadConfig(env)
	jiraBreaker := breaker.SettingsFromEnv(env, "jira")
	messageBirdBreaker := breaker.SettingsFromEnv(env, "messagebird")
	if err := env.Err(); err != nil {
		slog.Error("messagebird-inbound cannot start: fix its configuration", "error", err)
		os.Exit(1)
	}
	aws, err := store.LoadAWS(context.Background())
	if err != nil {
		slog.Error("messagebird-inbound cannot start", "error", err)
		os.Exit(1)
	}
	db := store.NewDynamoDB(aws)
	sec := secrets.NewFromConfig(aws)
	svc := &conversation.Service{
		Config:         cfg,
		Store:          &conversation.Store{DB: db, Table: cfg.StateTable},
		Jira:           jira.New(cfg.JiraBaseURL, sec, cfg.JiraSecretID, connectors.DefaultHTTPClient),
		Messenger:      messagebird.New(cfg.MessageBirdBaseURL, sec, cfg.MessageBirdSecretID, connectors.DefaultHTTPClient),
		Secrets:        sec,
		JiraGuard:      breaker.New(db, cfg.StateTable, jiraBreaker),
		MessengerGuard: breaker.New(db, cfg.StateTable, messageBirdBreaker),
	}
	lambda.Start(observe.Wrap(observe.FunctionFromEnv("messagebird-inbound"), apigw.Lambda(apigw.Limits{MaxBody: maxBody}, svc.Handle)))
}
