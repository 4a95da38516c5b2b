// Command integration-health runs every minute: it records the circuit breakers and outage flags
// as metrics and, once per HEALTH_CHECK_INTERVAL_MINUTES (an hour by default), checks every
// configured system's credentials and permissions without creating anything a customer or an
// agent can see. It is only wiring; the behaviour lives in pkg/health.
package main

import (
	"github.com/cxbridge/cxbridge/pkg/boot"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/health"
)

func main() {
	env := boot.New("integration-health")
	cfg := health.LoadConfig(env.Config)
	if cfg.StateTable == "" {
		env.Config.Problem("STATE_TABLE", "is required: the results and the run lease live there")
	}
	env.Check()
	svc := &health.Service{
		Config:  cfg,
		Checker: health.NewChecker(cfg, env.Secrets, connectors.DefaultHTTPClient),
		Store:   &health.Store{DB: env.DB, Table: cfg.StateTable},
		DB:      env.DB,
	}
	boot.Start(env, svc.Handle)
}
