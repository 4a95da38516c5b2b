// Package localstack runs cxbridge on one machine: DynamoDB Local with the template's tables, a
// Secrets Manager fake, a wire-level fake of every external system whose base URL is not set in
// the environment, and each function's real bootstrap under the Runtime API emulator.
//
// Functions get exactly the environment template.yaml gives them, with parameters and resources
// resolved to local values, so what runs here is what deploys. `make invoke`, the events test
// and the local stack (`cmd/local`) are all built on it.
package localstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/runtimeapi"
	"github.com/cxbridge/cxbridge/pkg/samtemplate"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

// Options configure a Stack.
type Options struct {
	Root string    // repository root (holds template.yaml and go.mod); found from the working directory when empty
	Logs io.Writer // functions' log lines; nil discards them
	// Getenv tells which systems are real: a set TELEMETRY_URL (or GENESYS_API_BASE_URL, ...)
	// replaces that fake. Defaults to os.Getenv.
	Getenv func(string) string
}

// Stack is the running local world.
type Stack struct {
	Root     string
	Template *samtemplate.Template
	DynamoDB *dynamotest.Local
	Tables   dynamotest.Tables
	Secrets  *secretstest.Server

	logs    io.Writer
	fakes   map[string]any    // system name -> its fake; absent where the environment points it elsewhere
	values  map[string]string // template parameter and resource values for the local world
	binDir  string
	mu      sync.Mutex
	running map[string]*runtimeapi.Emulator
	closers []func()
}

// Start brings the stack up. Close it when done.
func Start(ctx context.Context, opts Options) (s *Stack, err error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	root := opts.Root
	if root == "" {
		if root, err = FindRoot(); err != nil {
			return nil, err
		}
	}
	s = &Stack{Root: root, logs: opts.Logs, running: map[string]*runtimeapi.Emulator{}, fakes: map[string]any{}}
	if s.logs == nil {
		s.logs = io.Discard
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Template, err = samtemplate.Load(filepath.Join(root, "template.yaml")); err != nil {
		return nil, err
	}
	if s.binDir, err = os.MkdirTemp("", "cxbridge-local-"); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = os.RemoveAll(s.binDir) })

	if s.DynamoDB, err = dynamotest.Start(); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.DynamoDB.Stop)
	if s.Tables, err = s.DynamoDB.CreateTables(ctx, "local"); err != nil {
		return nil, err
	}

	s.Secrets = secretstest.New(nil)
	s.closers = append(s.closers, s.Secrets.Close)

	s.values = map[string]string{
		"AWS::Region": "us-east-1", "AWS::AccountId": "000000000000", "AWS::Partition": "aws",
		"AWS::StackName": "cxbridge-local", "AWS::URLSuffix": "amazonaws.com",
		"StateTable": s.Tables.State, "IdempotencyTable": s.Tables.Idempotency,
		"StateTable.Arn":       "arn:aws:dynamodb:us-east-1:000000000000:table/" + s.Tables.State,
		"IdempotencyTable.Arn": "arn:aws:dynamodb:us-east-1:000000000000:table/" + s.Tables.Idempotency,
	}
	for k, v := range localParameters {
		s.values[k] = v
	}
	s.startFakes(getenv)
	// A user pointing a system at a real sandbox supplies its real credentials in a file.
	if path := getenv("CXBRIDGE_SECRETS_FILE"); path != "" {
		extra, err := secretstest.LoadFile(path)
		if err != nil {
			return nil, fmt.Errorf("CXBRIDGE_SECRETS_FILE: %w", err)
		}
		for id, v := range extra {
			s.Secrets.Put(id, v)
		}
	}
	if err := s.seed(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// system is an external system the stack can simulate. Each system's file registers itself.
type system struct {
	name string
	// real reports whether the environment points the system at a real instance; if so, setReal
	// records its address in the template values instead of starting a fake.
	real    func(getenv func(string) string) bool
	setReal func(s *Stack, getenv func(string) string)
	// start starts the fake, seeds it, stores the credentials it accepts in s.Secrets, records
	// its address in the template values and returns the fake and how to stop it.
	start func(s *Stack) (fake any, stop func())
}

var systems []system

func register(sys system) { systems = append(systems, sys) }

// startFakes starts a fake for each system the environment does not point elsewhere, seeded
// with the data the events under events/ and the demo use.
func (s *Stack) startFakes(getenv func(string) string) {
	for _, sys := range systems {
		if sys.real(getenv) {
			sys.setReal(s, getenv)
			continue
		}
		fake, stop := sys.start(s)
		s.fakes[sys.name] = fake
		s.closers = append(s.closers, stop)
	}
}

// fake returns the fake of a system, or nil when the system is real.
func fake[T any](s *Stack, name string) T {
	f, _ := s.fakes[name].(T)
	return f
}

// Env returns the environment a function runs with: the template's variables resolved for the
// local world, plus the AWS endpoints and credentials of the local services.
func (s *Stack) Env(logicalID string) (map[string]string, error) {
	env, err := s.Template.Env(logicalID, s.Template.Resolver(s.values))
	if err != nil {
		return nil, err
	}
	env["AWS_ENDPOINT_URL_DYNAMODB"] = s.DynamoDB.Endpoint()
	env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = s.Secrets.URL()
	env["AWS_ACCESS_KEY_ID"] = "local"
	env["AWS_SECRET_ACCESS_KEY"] = "local"
	env["AWS_REGION"] = "us-east-1"
	return env, nil
}

// Function builds a function's bootstrap (once per stack) and returns its emulator. name is the
// directory under functions/, e.g. "telemetry-tier".
func (s *Stack) Function(ctx context.Context, name string) (*runtimeapi.Emulator, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.running[name]; ok {
		return e, nil
	}
	logicalID := LogicalID(name)
	fn, ok := s.Template.Function(logicalID)
	if !ok {
		return nil, fmt.Errorf("template.yaml has no %s for functions/%s", logicalID, name)
	}
	env, err := s.Env(logicalID)
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(s.binDir, name, "bootstrap")
	if err := runtimeapi.BuildBootstrap(ctx, s.Root, filepath.Join("functions", name), bin); err != nil {
		return nil, err
	}
	timeout := 10 * time.Second
	if fn.Timeout > 0 {
		timeout = time.Duration(fn.Timeout) * time.Second
	}
	e, err := runtimeapi.Start(runtimeapi.Function{
		Name: name, Bootstrap: bin, Env: env, Timeout: timeout, MemoryMB: fn.MemorySize,
		Concurrency: 4, Logs: s.logs, LogPrefix: name + " | ",
	})
	if err != nil {
		return nil, err
	}
	s.running[name] = e
	return e, nil
}

// Close stops every function and service the stack started.
func (s *Stack) Close() {
	s.mu.Lock()
	for _, e := range s.running {
		_ = e.Close()
	}
	s.running = map[string]*runtimeapi.Emulator{}
	s.mu.Unlock()
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// LogicalID maps a functions/ directory to its template resource: telemetry-tier ->
// TelemetryTierFunction. The template test holds every function to this convention.
func LogicalID(dir string) string {
	var b strings.Builder
	for _, part := range strings.Split(dir, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String() + "Function"
}

// FindRoot walks up from the working directory to the directory holding go.mod.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("localstack: no go.mod above the working directory; run from the repository")
		}
		dir = parent
	}
}
