// Command telemetry-tier routes a caller to the L1, L2 or L3 queue from live product telemetry.
// It is only wiring; the behaviour lives in pkg/tiering.
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
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
	"github.com/cxbridge/cxbridge/pkg/tiering"
)

func main() {
	observe.Setup("cxbridge")
	env := config.New(nil)
	cfg := tiering.LoadConfig(env)
	breakerSettings := breaker.SettingsFromEnv(env, "telemetry")
	if err := env.Err(); err != nil {
		slog.Error("telemetry-tier cannot start: fix its configuration", "error", err)
		os.Exit(1)
	}
	aws, err := store.LoadAWS(context.Background())
	if err != nil {
		slog.Error("telemetry-tier cannot start", "error", err)
		os.Exit(1)
	}
	sec := secrets.NewFromConfig(aws)
	svc := &tiering.Service{
		Config:    cfg,
		Telemetry: telemetry.New(cfg.TelemetryURL, sec, cfg.TelemetrySecretID, connectors.DefaultHTTPClient),
		Guard:     breaker.New(store.NewDynamoDB(aws), cfg.StateTable, breakerSettings),
	}
	if cfg.Cascade {
		svc.Observer = genesys.New(cfg.GenesysAPIBaseURL, cfg.GenesysLoginBaseURL, sec, cfg.GenesysSecretID, connectors.DefaultHTTPClient)
	}
	lambda.Start(observe.Wrap(observe.FunctionFromEnv("telemetry-tier"), apigw.Lambda(apigw.Limits{}, svc.Handle)))
}
