// Command create-escalation raises a Genesys escalation as a Jira Service Management request or
// a ServiceNow incident (POST /escalations). It is only wiring; the behaviour lives in
// pkg/escalation.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
)

func main() {
	observe.Setup("cxbridge")
	env := config.New(nil)
	cfg := escalation.LoadConfig(env)
	breakerSettings := breaker.SettingsFromEnv(env, "")
	if err := env.Err(); err != nil {
		slog.Error("create-escalation cannot start: fix its configuration", "error", err)
		os.Exit(1)
	}
	aws, err := store.LoadAWS(context.Background())
	if err != nil {
		slog.Error("create-escalation cannot start", "error", err)
		os.Exit(1)
	}
	svc, err := escalation.New(cfg, escalation.Deps{DB: store.NewDynamoDB(aws), Secrets: secrets.NewFromConfig(aws), Breaker: breakerSettings})
	if err != nil {
		slog.Error("create-escalation cannot start", "error", err)
		os.Exit(1)
	}
	lambda.Start(observe.Wrap(observe.FunctionFromEnv("create-escalation"), apigw.Lambda(apigw.Limits{}, svc.Handle)))
}
