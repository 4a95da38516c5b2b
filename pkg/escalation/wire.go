package escalation

import (
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/idempotency"
	"github.com/cxbridge/cxbridge/pkg/mask"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
)

// Deps are what a Service is built from: the real clients in a function, the same clients
// pointed at local fakes in tests.
type Deps struct {
	DB      *dynamodb.Client
	Secrets connectors.SecretReader
	HTTP    *http.Client // nil: connectors.DefaultHTTPClient
	// Limits are the shared rate limits per system; each target's client goes through its own.
	Limits ratelimit.Limits
	// Breaker is the settings template of the per-target breakers (Name is set per target).
	Breaker breaker.Settings
	Now     func() time.Time
}

// New builds a Service for cfg: a client and a breaker per configured target, the Genesys
// client for link-back when its base URL is set. No network happens here.
func New(cfg Config, d Deps) (*Service, error) {
	hc := d.HTTP
	if hc == nil {
		hc = connectors.DefaultHTTPClient
	}
	masker, err := mask.New(mask.EgressRules(), cfg.MaskExtra)
	if err != nil {
		return nil, err
	}
	s := &Service{
		Config:  cfg,
		Targets: map[string]Target{},
		Guards:  map[string]Guard{},
		Idem: idempotency.New(d.DB, idempotency.Config{
			Table: cfg.IdempotencyTable, Expires: cfg.IdempotencyTTL, Wait: cfg.DuplicateWait, Now: d.Now,
		}),
		Outbox: &Outbox{DB: d.DB, Table: cfg.StateTable, Now: d.Now},
		Outage: &Outage{DB: d.DB, Table: cfg.StateTable, Now: d.Now},
		Masker: masker,
		Now:    d.Now,
	}
	guard := func(name string) Guard {
		bs := d.Breaker
		bs.Name = name
		if d.Now != nil && bs.Now == nil {
			bs.Now = d.Now
		}
		return breaker.New(d.DB, cfg.StateTable, bs)
	}
	if cfg.Jira.BaseURL != "" {
		s.Targets[Jira] = &JiraTarget{API: jira.New(cfg.Jira.BaseURL, d.Secrets, cfg.Jira.SecretID, d.Limits.Client(jira.System, hc)), Config: cfg.Jira, Repeat: cfg.Repeat, Now: d.Now}
		s.Guards[Jira] = guard(Jira)
	}
	if cfg.ServiceNow.BaseURL != "" {
		s.Targets[ServiceNow] = &ServiceNowTarget{API: servicenow.New(cfg.ServiceNow.BaseURL, d.Secrets, cfg.ServiceNow.SecretID, d.Limits.Client(servicenow.System, hc)), Config: cfg.ServiceNow, Repeat: cfg.Repeat, Now: d.Now}
		s.Guards[ServiceNow] = guard(ServiceNow)
	}
	if cfg.GenesysAPIBaseURL != "" && cfg.GenesysSecretID != "" {
		login := cfg.GenesysLoginBaseURL
		if login == "" {
			login = cfg.GenesysAPIBaseURL
		}
		s.Genesys = genesys.New(cfg.GenesysAPIBaseURL, login, d.Secrets, cfg.GenesysSecretID, d.Limits.Client(genesys.System, hc))
	}
	return s, nil
}
