// Command priority-sync raises a waiting caller's Genesys queue priority when the ServiceNow
// business rule reports their incident became critical. It is only wiring; the behaviour lives
// in pkg/prioritysync.
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
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/hmacauth"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/prioritysync"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
)

func main() {
	observe.Setup("cxbridge")
	env := config.New(nil)
	cfg := prioritysync.LoadConfig(env)
	breakerSettings := breaker.SettingsFromEnv(env, "genesys")
	if err := env.Err(); err != nil {
		slog.Error("priority-sync cannot start: fix its configuration", "error", err)
		os.Exit(1)
	}
	aws, err := store.LoadAWS(context.Background())
	if err != nil {
		slog.Error("priority-sync cannot start", "error", err)
		os.Exit(1)
	}
	db := store.NewDynamoDB(aws)
	sec := secrets.NewFromConfig(aws)
	svc := &prioritysync.Service{
		Config: cfg,
		Verifier: &hmacauth.Verifier{
			Keys:   prioritysync.KeysFrom(sec, cfg.InboundSecretID),
			Replay: &hmacauth.ReplayGuard{DB: db, Table: cfg.StateTable, Scheme: prioritysync.ReplayScheme},
		},
		Genesys: genesys.New(cfg.GenesysAPIBaseURL, cfg.GenesysLoginBaseURL, sec, cfg.GenesysSecretID, connectors.DefaultHTTPClient),
		Links:   &callerlink.Store{DB: db, Table: cfg.StateTable},
		DB:      db,
		Guard:   breaker.New(db, cfg.StateTable, breakerSettings),
	}
	lambda.Start(observe.Wrap(observe.FunctionFromEnv("priority-sync"), apigw.Lambda(apigw.Limits{}, svc.Handle)))
}
