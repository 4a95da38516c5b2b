// Command telemetry-tier routes a caller to the L1, L2 or L3 queue from live product telemetry.
// It is only wiring; the behaviour lives in pkg/tiering.
package main

import (
	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/boot"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry"
	"github.com/cxbridge/cxbridge/pkg/tiering"
)

func main() {
	env := boot.New("telemetry-tier")
	cfg := tiering.LoadConfig(env.Config)
	breakerSettings := breaker.SettingsFromEnv(env.Config, "telemetry")
	env.Check()
	svc := &tiering.Service{
		Config:    cfg,
		Telemetry: telemetry.New(cfg.TelemetryURL, env.Secrets, cfg.TelemetrySecretID, env.HTTP(telemetry.System)),
		Guard:     breaker.New(env.DB, cfg.StateTable, breakerSettings),
	}
	if cfg.ObservesQueues() {
		svc.Observer = genesys.New(cfg.GenesysAPIBaseURL, cfg.GenesysLoginBaseURL, env.Secrets, cfg.GenesysSecretID, env.HTTP(genesys.System))
	}
	boot.Start(env, apigw.Lambda(apigw.Limits{}, svc.Handle))
}
