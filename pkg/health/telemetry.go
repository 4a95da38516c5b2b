package health

import (
	"context"
	"fmt"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry"
)

// checkTelemetry sends the request telemetry-tier sends, for HEALTH_TELEMETRY_CUSTOMER_ID or,
// without one, a made-up customer: then a 404 still proves the endpoint answers and accepts the
// credentials.
func (c *Checker) checkTelemetry(ctx context.Context, rec *recorder) {
	customer, probing := c.Config.Telemetry.ProbeCustomer, true
	if customer == "" {
		customer, probing = ProbeCustomerDefault, false
	}
	p := rec.probe(CheckReachability, customer, "POST "+c.Config.Telemetry.URL+` {"customer_id":"`+customer+`",...}`)
	cctx, cancel := rec.ctx(ctx)
	reading, err := c.Telemetry.Read(cctx, telemetry.Request{CustomerID: customer, At: c.now()})
	cancel()
	status, kind := statusOf(err)
	switch {
	case err == nil:
		p.ok(200, fmt.Sprintf("answered severity_level %d", reading.SeverityLevel))
	case kind == connectors.KindNotFound && !probing:
		p.ok(status, "reachable and the credentials are accepted (the made-up probe customer is unknown: 404, as expected); set HealthTelemetryCustomerId to check a real answer")
	case kind == connectors.KindNotFound:
		p.failed(err, fixes{notFound: fmt.Sprintf("The telemetry endpoint does not know the probe customer %s: set HealthTelemetryCustomerId to a customer it knows.", customer)})
	case kind == connectors.KindBadResponse:
		p.done(Failed, status, describe(err), "The endpoint answers 2xx without a usable severity_level: every call falls back. Fix the endpoint's contract (README, telemetry-tier).")
	default:
		p.failed(err, fixes{unauthorized: "The telemetry endpoint refused the credentials (401/403): renew the key or OAuth client in the secret named by TelemetrySecretId.",
			forbidden: "The telemetry endpoint refused the credentials (403): renew the key or OAuth client in the secret named by TelemetrySecretId."})
	}
}
