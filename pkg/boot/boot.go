// Package boot is the cold start every function shares: JSON logs, configuration read from the
// environment and checked before the first invocation (every problem named at once), the AWS
// clients (no network at init; every DynamoDB call bounded, pkg/store), and the Lambda start with per-invocation logs and metrics.
//
// A function's main reads its settings from Env.Config, calls Check, builds its service from
// Env.DB, Env.Secrets and Env.HTTP (each external system's HTTP client, through the system's
// shared rate limit when one is set), and hands its handler to Start.
package boot

import (
	"context"
	"log/slog"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// Env is a function's environment at cold start.
type Env struct {
	Name    string
	Config  *config.Reader
	DB      *dynamodb.Client
	Secrets *secrets.Cache
	// Limits are the shared rate limits per system (<SYSTEM>_RATE_LIMIT_PER_MINUTE).
	Limits ratelimit.Limits

	limits     ratelimit.Config
	stateTable string
}

// New installs the logger and opens the environment of the named function. It reads the
// settings every function shares: the rate limits per system and the state table they live in.
func New(name string) *Env {
	observe.Setup("cxbridge")
	e := &Env{Name: name, Config: config.New(nil)}
	e.limits = ratelimit.LoadConfig(e.Config)
	e.stateTable = e.Config.String("STATE_TABLE", "")
	if sys, any := e.limits.Any(); any && e.stateTable == "" {
		e.Config.Problem("STATE_TABLE", "is required by the rate limit %s", ratelimit.Var(sys))
	}
	return e
}

// HTTP is the HTTP client for calls to system ("servicenow", "jira", ...): the shared
// connectors.DefaultHTTPClient, through the system's rate limit when one is configured. Call
// it after Check.
func (e *Env) HTTP(system string) *http.Client {
	return e.Limits.Client(system, connectors.DefaultHTTPClient)
}

// Check stops the cold start when any setting read so far was wrong (Lambda reports the failed
// init; the log names every variable to fix), then builds the AWS clients.
func (e *Env) Check() {
	bounds := store.BoundsFromEnv(e.Config)
	if err := e.Config.Err(); err != nil {
		slog.Error(e.Name+" cannot start: fix its configuration", "error", err)
		os.Exit(1)
	}
	aws, err := store.LoadAWS(context.Background())
	e.Must(err)
	e.DB = store.NewDynamoDB(aws, bounds)
	e.Secrets = secrets.NewFromConfig(aws)
	e.Limits = e.limits.Limits(e.DB, e.stateTable)
}

// Must stops the cold start when err is not nil.
func (e *Env) Must(err error) {
	if err != nil {
		slog.Error(e.Name+" cannot start", "error", err)
		os.Exit(1)
	}
}

// Start serves invocations with h, each with the invocation's log fields and metrics.
func Start[In, Out any](e *Env, h func(context.Context, In) (Out, error)) {
	lambda.Start(observe.Wrap(observe.FunctionFromEnv(e.Name), h))
}
