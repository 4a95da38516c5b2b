// Command servicenow-lookup is the Genesys screen pop: the caller's ServiceNow user and their
// three most recent open incidents, by calling number or employee ID. It is only wiring; the
// behaviour lives in pkg/lookup.
package main

import (
	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/boot"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/lookup"
)

func main() {
	env := boot.New("servicenow-lookup")
	cfg := lookup.LoadConfig(env.Config)
	breakerSettings := breaker.SettingsFromEnv(env.Config, servicenow.System)
	env.Check()
	svc := &lookup.Service{
		Config:     cfg,
		ServiceNow: servicenow.New(cfg.ServiceNowBaseURL, env.Secrets, cfg.ServiceNowSecretID, env.HTTP(servicenow.System)),
		Links:      &callerlink.Store{DB: env.DB, Table: cfg.StateTable, TTL: cfg.WaitingTTL},
		Guard:      breaker.New(env.DB, cfg.StateTable, breakerSettings),
	}
	boot.Start(env, apigw.Lambda(apigw.Limits{}, svc.Handle))
}
