package observe

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Function names the function for logs and metrics.
type Function struct {
	Service   string    // POWERTOOLS_SERVICE_NAME, default "cxbridge"
	Name      string    // e.g. "telemetry-tier"
	Namespace string    // POWERTOOLS_METRICS_NAMESPACE, default "cxbridge"
	Out       io.Writer // where EMF lines go; default os.Stdout
}

// FunctionFromEnv fills Service and Namespace from the Powertools variables.
func FunctionFromEnv(name string) Function {
	f := Function{Service: os.Getenv("POWERTOOLS_SERVICE_NAME"), Name: name, Namespace: os.Getenv("POWERTOOLS_METRICS_NAMESPACE")}
	if f.Service == "" {
		f.Service = "cxbridge"
	}
	if f.Namespace == "" {
		f.Namespace = "cxbridge"
	}
	return f
}

// Wrap gives each invocation of h a context with the request id, the cold-start flag and a
// metrics collector, and writes the collected metrics when h returns.
func Wrap[In, Out any](f Function, h func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	var invoked atomic.Bool
	out := f.Out
	if out == nil {
		out = os.Stdout
	}
	return func(ctx context.Context, in In) (Out, error) {
		cold := !invoked.Swap(true)
		attrs := []slog.Attr{slog.String("function_name", f.Name), slog.Bool("cold_start", cold)}
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			attrs = append(attrs, slog.String("function_request_id", lc.AwsRequestID))
		}
		if trace, ok := ctx.Value("x-amzn-trace-id").(string); ok && trace != "" {
			attrs = append(attrs, slog.String("xray_trace_id", trace))
		}
		ctx = WithFields(ctx, attrs...)
		m := NewMetrics(f.Namespace, D("Service", f.Service), D("Function", f.Name))
		ctx = WithMetrics(ctx, m)
		if cold {
			m.Count("ColdStart", 1)
		}
		defer func() {
			if err := m.Flush(out, time.Now()); err != nil {
				slog.ErrorContext(ctx, "writing metrics failed", "error", err)
			}
		}()
		return h(ctx, in)
	}
}
