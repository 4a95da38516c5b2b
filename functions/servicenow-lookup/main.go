// Command servicenow-lookup is the Genesys screen pop: the caller's ServiceNow user and their
// three most recent open incidents, by calling number or employee ID. It is only wiring; the
// behaviour lives in pkg/lookup.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/lookup"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
)

func main() {
	observe.Setup("cxbridge")
	env := config.New(nil)
	cfg := lookup.LoadConfig(env)
	breakerSettings := breaker.SettingsFromEnv(env, servicenow.System)
	if err := env.Err(); err != nil {
		slog.Error("servicenow-lookup cannot start: fix its configuration", "error", err)
		os.Exit(1)
	}
	aws, err := store.LoadAWS(context.Background())
	if err != nil {
		slog.Error("servicenow-lookup cannot start", "error", err)
		os.Exit(1)
	}
	db := store.NewDynamoDB(aws)
	svc := &lookup.Service{
		Config:     cfg,
		ServiceNow: servicenow.New(cfg.ServiceNowBaseURL, secrets.NewFromConfig(aws), cfg.ServiceNowSecretID, connectors.DefaultHTTPClient),
		Links:      &callerlink.Store{DB: db, Table: cfg.StateTable, TTL: cfg.WaitingTTL},
		Guard:      breaker.New(db, cfg.StateTable, breakerSettings),
	}
	lambda.Start(observe.Wrap(observe.FunctionFromEnv("servicenow-lookup"), apigw.Lambda(apigw.Limits{}, svc.Handle)))
}
