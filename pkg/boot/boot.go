// Package boot is the cold start every function shares: JSON logs, configuration read from the
// environment and checked before the first invocation (every problem named at once), the AWS
// clients (no network at init; every DynamoDB call bounded, pkg/store), and the Lambda start with per-invocation logs and metrics.
//
// A function's main reads its settings from Env.Config, calls Check, builds its service from
// Env.DB and Env.Secrets, and hands its handler to Start.
package boot

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// Env is a function's environment at cold start.
type Env struct {
	Name    string
	Config  *config.Reader
	DB      *dynamodb.Client
	Secrets *secrets.Cache
}

// New installs the logger and opens the environment of the named function.
func New(name string) *Env {
	observe.Setup("cxbridge")
	return &Env{Name: name, Config: config.New(nil)}
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
