package localstack

import (
	"net/http"

	"github.com/cxbridge/cxbridge/pkg/connectors/genesys/genesystest"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry/telemetrytest"
)

// Credentials of the local world: the fakes accept them and the Secrets Manager fake serves them
// under the template's default secret ids.
const (
	LocalTelemetryAPIKey     = "local-telemetry-key"
	LocalGenesysClientID     = "local-genesys-client"
	LocalGenesysClientSecret = "local-genesys-secret"
	// LocalAPIKey is the API key the local API Gateway expects in x-api-key.
	LocalAPIKey = "local-genesys-api-key"
)

// Local queue ids (Genesys queue ids are UUIDs).
const (
	QueueL1 = "11111111-1111-4111-8111-111111111111"
	QueueL2 = "22222222-2222-4222-8222-222222222222"
	QueueL3 = "33333333-3333-4333-8333-333333333333"
)

// localParameters are the template parameters that have no default, or whose default points at
// a real system, given local values. Each function's seed file adds its own in init.
var localParameters = map[string]string{}

func parameters(p map[string]string) {
	for k, v := range p {
		localParameters[k] = v
	}
}

func init() {
	parameters(map[string]string{
		"TierL1QueueId":   QueueL1,
		"TierL2QueueId":   QueueL2,
		"TierL3QueueId":   QueueL3,
		"TierL1QueueName": "Support L1",
		"TierL2QueueName": "Support L2",
		"TierL3QueueName": "Support L3",
		// Breakers reopen for a probe after 3 s instead of 30, so recovery shows in seconds.
		"BreakerOpenSeconds": "3",
	})
}

// Telemetry customers the events and the demo use.
const (
	CustomerCritical   = "acme-critical"
	CustomerHigh       = "acme-high"
	CustomerNormal     = "acme-normal"
	CustomerEscalating = "acme-escalating"
	CustomerDown       = "acme-down"
	CustomerHangs      = "acme-hangs"
	CustomerMalformed  = "acme-malformed"
)

func init() {
	register(system{
		name:   "telemetry",
		params: []string{"TelemetryUrl"},
		real:   func(getenv func(string) string) bool { return getenv("TELEMETRY_URL") != "" },
		setReal: func(s *Stack, getenv func(string) string) string {
			s.values["TelemetryUrl"] = getenv("TELEMETRY_URL")
			return getenv("TELEMETRY_URL")
		},
		start: func(s *Stack) (any, func()) {
			t := telemetrytest.New()
			t.APIKey = LocalTelemetryAPIKey
			seedTelemetry(t)
			s.Secrets.Put("cxbridge/telemetry", `{"apiKey":"`+LocalTelemetryAPIKey+`"}`)
			s.values["TelemetryUrl"] = t.URL()
			return t, t.Close
		},
	})
	register(system{
		name:   "genesys",
		params: []string{"GenesysApiBaseUrl", "GenesysLoginBaseUrl"},
		real:   func(getenv func(string) string) bool { return getenv("GENESYS_API_BASE_URL") != "" },
		setReal: func(s *Stack, getenv func(string) string) string {
			s.values["GenesysApiBaseUrl"] = getenv("GENESYS_API_BASE_URL")
			s.values["GenesysLoginBaseUrl"] = getenv("GENESYS_LOGIN_BASE_URL")
			return getenv("GENESYS_API_BASE_URL")
		},
		start: func(s *Stack) (any, func()) {
			g := genesystest.New(LocalGenesysClientID, LocalGenesysClientSecret)
			seedGenesys(g)
			s.Secrets.Put("cxbridge/genesys", `{"clientId":"`+LocalGenesysClientID+`","clientSecret":"`+LocalGenesysClientSecret+`"}`)
			s.values["GenesysApiBaseUrl"] = g.URL()
			s.values["GenesysLoginBaseUrl"] = g.URL()
			return g, g.Close
		},
	})
}

// Telemetry is the telemetry fake, or nil when TELEMETRY_URL points at a real endpoint.
func (s *Stack) Telemetry() *telemetrytest.Server { return fake[*telemetrytest.Server](s, "telemetry") }

// Genesys is the Genesys fake, or nil when GENESYS_API_BASE_URL points at a real org.
func (s *Stack) Genesys() *genesystest.Server { return fake[*genesystest.Server](s, "genesys") }

func seedTelemetry(t *telemetrytest.Server) {
	t.Severity(CustomerCritical, 3, false)
	t.Severity(CustomerHigh, 2, false)
	t.Severity(CustomerNormal, 1, false)
	t.Severity(CustomerEscalating, 1, true)
	t.Script(CustomerDown, telemetrytest.Answer{Status: http.StatusServiceUnavailable, Body: `{"error":"telemetry is down for maintenance"}`})
	t.Script(CustomerHangs, telemetrytest.Hang)
	t.Script(CustomerMalformed, telemetrytest.Answer{Body: `{"severity_level": "very bad",`})
}

func seedGenesys(g *genesystest.Server) {
	g.SetQueue(QueueL1, genesystest.Queue{Idle: 4, Interacting: 6, Waiting: 3})
	g.SetQueue(QueueL2, genesystest.Queue{Idle: 1, Interacting: 3, Waiting: 1})
	g.SetQueue(QueueL3, genesystest.Queue{Idle: 1, Interacting: 1})
}
