package messagebird

import (
	"context"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// Do sends one request with the AccessKey, for calls the typed methods do not cover (the
// integration-health probes, e.g. GET /webhooks). r.Path is relative to MESSAGEBIRD_BASE_URL.
func (c *Client) Do(ctx context.Context, r connectors.Request, out any) (*connectors.Response, error) {
	return c.api.Do(ctx, r, out)
}
