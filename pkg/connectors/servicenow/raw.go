package servicenow

import (
	"context"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// Do sends one request as the integration user, for calls the typed methods do not cover (the
// integration-health probes): r.Path is relative to the instance (e.g. TablePath(TableUser)).
// Failures are *connectors.Error as everywhere else.
func (c *Client) Do(ctx context.Context, r connectors.Request, out any) (*connectors.Response, error) {
	return c.api.Do(ctx, r, out)
}

// TablePath is the Table API path of a table, in the client's API version
// (/api/now/v2/table/incident by default).
func (c *Client) TablePath(t Table) string { return c.tablePath + string(t) }
