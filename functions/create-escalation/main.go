// Command create-escalation raises a Genesys escalation as a Jira Service Management request or
// a ServiceNow incident (POST /escalations). It is only wiring; the behaviour lives in
// pkg/escalation.
package main

import (
	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/boot"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

func main() {
	env := boot.New("create-escalation")
	cfg := escalation.LoadConfig(env.Config)
	breakerSettings := breaker.SettingsFromEnv(env.Config, "")
	env.Check()
	svc, err := escalation.New(cfg, escalation.Deps{DB: env.DB, Secrets: env.Secrets, Limits: env.Limits, Breaker: breakerSettings})
	env.Must(err)
	boot.Start(env, apigw.Lambda(apigw.Limits{}, svc.Handle))
}
