package prioritysync

import (
	"strconv"
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
)

// Config is priority-sync's configuration.
type Config struct {
	// InboundSecretID names the secret holding the ServiceNow signing key (see SigningKeys).
	InboundSecretID string
	// Triggers are the ServiceNow incident priorities (1-5) that raise the caller's queue
	// priority; default 1 (1 - Critical).
	Triggers map[int]bool
	// QueuePriority is the absolute Genesys routing priority set on the waiting conversation
	// (1 point = 1 minute of time in queue). A conversation whose priority is already this high
	// or higher is left alone.
	QueuePriority int
	// Timeout bounds one request's work against Genesys and DynamoDB.
	Timeout time.Duration

	GenesysAPIBaseURL   string
	GenesysLoginBaseURL string
	GenesysSecretID     string
	StateTable          string
}

// Genesys allows priorities from -25,000,000 to 25,000,000 (api-contracts.md section 3.2).
const maxQueuePriority = 25_000_000

// LoadConfig reads the configuration; problems are recorded in r (see r.Err).
func LoadConfig(r *config.Reader) Config {
	c := Config{
		InboundSecretID:     r.Required("INBOUND_SECRET_ID"),
		Triggers:            map[int]bool{},
		QueuePriority:       r.Int("PRIORITY_SYNC_QUEUE_PRIORITY", 1000, 1, maxQueuePriority),
		Timeout:             r.Millis("PRIORITY_SYNC_TIMEOUT_MS", 5*time.Second, 500*time.Millisecond, 20*time.Second),
		GenesysAPIBaseURL:   r.URL("GENESYS_API_BASE_URL", ""),
		GenesysLoginBaseURL: r.URL("GENESYS_LOGIN_BASE_URL", ""),
		GenesysSecretID:     r.Required("GENESYS_SECRET_ID"),
		StateTable:          r.Required("STATE_TABLE"),
	}
	for _, p := range r.List("PRIORITY_SYNC_TRIGGER_PRIORITIES", []string{"1"}) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 5 {
			r.Problem("PRIORITY_SYNC_TRIGGER_PRIORITIES", "has %q; want ServiceNow priority values 1 to 5, comma-separated (1 = Critical)", p)
			continue
		}
		c.Triggers[n] = true
	}
	if len(c.Triggers) == 0 {
		r.Problem("PRIORITY_SYNC_TRIGGER_PRIORITIES", "lists no priority")
	}
	return c
}
