package tiering

import (
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
)

// Tier is a support tier.
type Tier string

// The tiers, lowest first.
const (
	L1 Tier = "L1"
	L2 Tier = "L2"
	L3 Tier = "L3"
)

var tiers = []Tier{L1, L2, L3}

// lower returns the next tier down, or "" below L1.
func (t Tier) lower() Tier {
	switch t {
	case L3:
		return L2
	case L2:
		return L1
	}
	return ""
}

// higher returns the next tier up, capped at L3.
func (t Tier) higher() Tier {
	switch t {
	case L1:
		return L2
	}
	return L3
}

// Queue is a Genesys queue a tier routes to.
type Queue struct {
	ID   string
	Name string
}

// Config is telemetry-tier's configuration. Queue ids and names come from here, never from code.
type Config struct {
	TelemetryURL      string
	TelemetrySecretID string
	Queues            map[Tier]Queue
	Fallback          Tier
	// Timeout is the whole budget for reading telemetry (and observing queues); when it runs out
	// the caller goes to the fallback tier.
	Timeout time.Duration
	// Cascade moves a caller down a tier when the chosen tier cannot take them: no agent on
	// queue, or an estimated wait over MaxWait.
	Cascade bool
	// MaxWait is the longest estimated wait a tier may have and still take the caller
	// (TIER_MAX_WAIT_SECONDS); Handle the average handle time the estimate uses
	// (TIER_HANDLE_SECONDS). A zero Handle makes every staffed tier's wait zero.
	MaxWait time.Duration
	Handle  time.Duration
	// FallbackLeastLoaded routes callers whose telemetry failed to the tier with the shortest
	// estimated wait instead of Fallback, which stays the answer when the queues cannot be
	// observed either (TIER_FALLBACK_LEAST_LOADED).
	FallbackLeastLoaded bool
	// ObservationWait is how long a decision waits for a queue observation that is still running
	// after telemetry answered; a slow Genesys must not delay routing.
	ObservationWait time.Duration
	// EscalationRaises makes escalation_required raise the tier by one (never lower it).
	EscalationRaises bool

	GenesysAPIBaseURL   string
	GenesysLoginBaseURL string
	GenesysSecretID     string
	StateTable          string
}

// LoadConfig reads the configuration; problems are recorded in r (see r.Err), so a caller can
// read several packages' settings and report every problem at once.
func LoadConfig(r *config.Reader) Config {
	c := Config{
		TelemetryURL:        r.URL("TELEMETRY_URL", ""),
		TelemetrySecretID:   r.Required("TELEMETRY_SECRET_ID"),
		Queues:              map[Tier]Queue{},
		Fallback:            Tier(r.OneOf("TIER_FALLBACK", string(L1), string(L1), string(L2), string(L3))),
		Timeout:             r.Millis("TELEMETRY_TIMEOUT_MS", 3000*time.Millisecond, 100*time.Millisecond, 20*time.Second),
		Cascade:             r.Bool("TIER_CASCADE", false),
		MaxWait:             r.Seconds("TIER_MAX_WAIT_SECONDS", 300*time.Second, 0, 24*time.Hour),
		Handle:              r.Seconds("TIER_HANDLE_SECONDS", 300*time.Second, time.Second, 24*time.Hour),
		FallbackLeastLoaded: r.Bool("TIER_FALLBACK_LEAST_LOADED", false),
		ObservationWait:     r.Millis("TIER_OBSERVATION_WAIT_MS", 250*time.Millisecond, 0, 5*time.Second),
		EscalationRaises:    r.Bool("TIER_ESCALATION_RAISES", true),
		StateTable:          r.Required("STATE_TABLE"),
	}
	for _, t := range tiers {
		c.Queues[t] = Queue{
			ID:   r.Required("TIER_" + string(t) + "_QUEUE_ID"),
			Name: r.String("TIER_"+string(t)+"_QUEUE_NAME", "Support "+string(t)),
		}
	}
	if c.ObservesQueues() {
		c.GenesysAPIBaseURL = r.URL("GENESYS_API_BASE_URL", "")
		c.GenesysLoginBaseURL = r.URL("GENESYS_LOGIN_BASE_URL", "")
		c.GenesysSecretID = r.Required("GENESYS_SECRET_ID")
	}
	return c
}

// ObservesQueues reports whether decisions read the queues' live state in Genesys.
func (c Config) ObservesQueues() bool { return c.Cascade || c.FallbackLeastLoaded }

// tierOfQueue returns the tier a configured queue id belongs to (the highest, if a queue serves
// several tiers).
func (c Config) tierOfQueue(id string) (Tier, bool) {
	for i := len(tiers) - 1; i >= 0; i-- {
		if c.Queues[tiers[i]].ID == id {
			return tiers[i], true
		}
	}
	return "", false
}

func (c Config) queueIDs() []string {
	seen := map[string]bool{}
	var ids []string
	for _, t := range tiers {
		if id := c.Queues[t].ID; !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}
