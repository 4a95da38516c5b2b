// Command escalation-redrive runs every minute: it delivers queued escalations once their target
// recovers, fails (and alarms on) those past their maximum age, and writes the batched outage
// notes on master tickets. It is only wiring; the behaviour lives in pkg/escalation.
package main

import (
	"context"
	"encoding/json"

	"github.com/cxbridge/cxbridge/pkg/boot"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

func main() {
	env := boot.New("escalation-redrive")
	cfg := escalation.LoadConfig(env.Config)
	breakerSettings := breaker.SettingsFromEnv(env.Config, "")
	env.Check()
	svc, err := escalation.New(cfg, escalation.Deps{DB: env.DB, Secrets: env.Secrets, Limits: env.Limits, Breaker: breakerSettings})
	env.Must(err)
	// The schedule's event carries nothing the run needs.
	boot.Start(env, func(ctx context.Context, _ json.RawMessage) (escalation.RedriveSummary, error) {
		return svc.Redrive(ctx), nil
	})
}
