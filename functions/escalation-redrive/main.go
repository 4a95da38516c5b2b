// Command escalation-redrive runs every minute: it delivers queued escalations whose target has
// recovered, marks those past their maximum age failed (which raises the alarm), and writes the
// batched outage notes on master tickets. It is only wiring; the behaviour lives in
// pkg/escalation.
package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

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
		slog.Error("escalation-redrive cannot start: fix its configuration", "error", err)
		os.Exit(1)
	}
	aws, err := store.LoadAWS(context.Background())
	if err != nil {
		slog.Error("escalation-redrive cannot start", "error", err)
		os.Exit(1)
	}
	svc, err := escalation.New(cfg, escalation.Deps{DB: store.NewDynamoDB(aws), Secrets: secrets.NewFromConfig(aws), Breaker: breakerSettings})
	if err != nil {
		slog.Error("escalation-redrive cannot start", "error", err)
		os.Exit(1)
	}
	// The schedule's event carries nothing the run needs.
	handler := func(ctx context.Context, _ json.RawMessage) (escalation.RedriveSummary, error) {
		return svc.Redrive(ctx), nil
	}
	lambda.Start(observe.Wrap(observe.FunctionFromEnv("escalation-redrive"), handler))
}
