// Command priority-sync raises a waiting caller's Genesys queue priority when the ServiceNow
// business rule reports their incident became critical. It is only wiring; the behaviour lives
// in pkg/prioritysync.
package main

import (
	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/boot"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/hmacauth"
	"github.com/cxbridge/cxbridge/pkg/prioritysync"
)

func main() {
	env := boot.New("priority-sync")
	cfg := prioritysync.LoadConfig(env.Config)
	breakerSettings := breaker.SettingsFromEnv(env.Config, "genesys")
	env.Check()
	svc := &prioritysync.Service{
		Config: cfg,
		Verifier: &hmacauth.Verifier{
			Keys:   prioritysync.KeysFrom(env.Secrets, cfg.InboundSecretID),
			Replay: &hmacauth.ReplayGuard{DB: env.DB, Table: cfg.StateTable, Scheme: prioritysync.ReplayScheme},
		},
		Genesys: genesys.New(cfg.GenesysAPIBaseURL, cfg.GenesysLoginBaseURL, env.Secrets, cfg.GenesysSecretID, env.HTTP(genesys.System)),
		Links:   &callerlink.Store{DB: env.DB, Table: cfg.StateTable},
		DB:      env.DB,
		Guard:   breaker.New(env.DB, cfg.StateTable, breakerSettings),
	}
	boot.Start(env, apigw.Lambda(apigw.Limits{}, svc.Handle))
}
