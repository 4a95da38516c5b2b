// Package runtimeapi runs a compiled Go Lambda function (a `bootstrap` built with
// -tags lambda.norpc) the way Lambda and `sam local invoke` run it inside their container:
// as a child process that pulls work from a Lambda Runtime API served on 127.0.0.1.
//
// AWS's Runtime Interface Emulator cannot be installed from the module proxy (see
// reference/go-ecosystem.md section 6), so tests, `make invoke` and the local stack use this
// package instead. It keeps Lambda's lifecycle where it matters to function code: the
// process starts on the first invocation, serves one invocation at a time, is killed when it
// exceeds its timeout, and is replaced by a fresh process after a timeout, a crash or a failed
// init. Like Lambda it scales out: an invocation that finds every execution environment busy
// gets a new one, up to the function's concurrency limit, beyond which it is throttled. An
// invocation once accepted runs to its end whatever its invoker does. Errors reach the invoker
// in the shapes Lambda uses.
package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Lambda's defaults, used when a Function leaves the field zero.
const (
	DefaultTimeout     = 3 * time.Second
	DefaultInitTimeout = 10 * time.Second // Lambda's limit on the init phase
	DefaultMemoryMB    = 128
	// DefaultConcurrency is the most execution environments a function runs at once unless
	// told otherwise: enough for every caller of a busy local stack to get its own, as on
	// Lambda, whose (account-wide) default is 1,000.
	DefaultConcurrency = 32
)

// shutdownGrace is how long a process has between SIGTERM and SIGKILL, as in Lambda when an
// extension is registered (aws-lambda-go's WithEnableSIGTERM registers one).
const shutdownGrace = 500 * time.Millisecond

// accountID is the placeholder account RIE puts in the invoked function ARN.
const accountID = "012345678912"

// Function describes one Lambda function to run.
type Function struct {
	Name      string            // AWS_LAMBDA_FUNCTION_NAME; required
	Bootstrap string            // path of the compiled bootstrap (see BuildBootstrap)
	Env       map[string]string // the function's environment; nothing is inherited except PATH and HOME
	Timeout   time.Duration     // per invocation; default 3 s
	// InitTimeout bounds process start to the first /next; default 10 s.
	InitTimeout time.Duration
	MemoryMB    int // AWS_LAMBDA_FUNCTION_MEMORY_SIZE (not enforced); default 128
	// Concurrency is the most execution environments serving invocations at once (Lambda's
	// reserved concurrency). Environments are started when an invocation finds every
	// existing one busy; one more invocation than this is throttled (ErrThrottled). Default
	// DefaultConcurrency.
	Concurrency int
	// Logs receives the function's stdout and stderr line by line, plus the platform lines
	// Lambda adds (START, END, REPORT, timeout and exit errors), each preceded by
	// LogPrefix. Nil discards them.
	Logs      io.Writer
	LogPrefix string
}

// Result is the outcome of one invocation, as the Invoke API reports it.
type Result struct {
	RequestID string
	// Payload is the function's response or, when FunctionError is set, the error document
	// ({"errorMessage","errorType",...}).
	Payload []byte
	// FunctionError is "" on success and "Unhandled" for every kind of failure, like the
	// X-Amz-Function-Error header of the Invoke API.
	FunctionError string
	Duration      time.Duration // from handing the event to the runtime to its answer
	InitDuration  time.Duration // process start to the first /next; zero on a warm start
}

// Error types and the function error value Lambda reports. The timeout type is the one
// Lambda's Invoke API returns ("Sandbox.Timedout", also in RIE's Lambda Managed Instances
// code); RIE itself answers a timeout with plain text only.
const (
	Unhandled            = "Unhandled"
	ErrorTypeTimeout     = "Sandbox.Timedout"
	ErrorTypeExit        = "Runtime.ExitError"
	ErrorTypeInitTimeout = "Runtime.Unknown" // what Lambda records when init exceeds its limit
)

// ErrClosed is returned by Invoke once Close has been called.
var ErrClosed = errors.New("runtimeapi: emulator closed")

// ErrInvalidPayload is returned for a payload that is not JSON; the Invoke API rejects those
// with InvalidRequestContentException before any function runs.
var ErrInvalidPayload = errors.New("runtimeapi: payload is not valid JSON")

// ErrThrottled is returned when every execution environment is busy and the function runs as
// many as its Concurrency allows: Lambda's TooManyRequestsException (Reason
// ReservedFunctionConcurrentInvocationLimitExceeded). Nothing ran.
var ErrThrottled = errors.New("runtimeapi: rate exceeded: every execution environment is busy and the concurrency limit is reached")

// Emulator runs one Function in a pool of execution environments.
type Emulator struct {
	fn   Function
	env  []string // the process environment minus AWS_LAMBDA_RUNTIME_API
	arn  string
	logs *logSink // nil when fn.Logs is nil

	done chan struct{}  // closed by Close
	wg   sync.WaitGroup // invocations in flight and process reapers: Close waits for them

	mu     sync.Mutex
	closed bool
	// envs holds every environment started so far; idle is a stack of those not serving an
	// invocation, so the most recently used (warm) one serves the next, as Lambda prefers
	// warm environments.
	envs []*environment
	idle []*environment
}

// Start validates fn. No execution environment exists and no process starts until the first
// invocation.
func Start(fn Function) (*Emulator, error) {
	if fn.Name == "" {
		return nil, errors.New("runtimeapi: Function.Name is required")
	}
	path, err := filepath.Abs(fn.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("runtimeapi: bootstrap: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("runtimeapi: bootstrap: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("runtimeapi: bootstrap %s is not an executable file", path)
	}
	fn.Bootstrap = path
	if fn.Timeout <= 0 {
		fn.Timeout = DefaultTimeout
	}
	if fn.InitTimeout <= 0 {
		fn.InitTimeout = DefaultInitTimeout
	}
	if fn.MemoryMB <= 0 {
		fn.MemoryMB = DefaultMemoryMB
	}
	if fn.Concurrency <= 0 {
		fn.Concurrency = DefaultConcurrency
	}
	env, region, err := processEnv(fn)
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		fn:   fn,
		env:  env,
		arn:  "arn:aws:lambda:" + region + ":" + accountID + ":function:" + fn.Name,
		done: make(chan struct{}),
	}
	if fn.Logs != nil {
		e.logs = &logSink{w: fn.Logs, prefix: fn.LogPrefix}
	}
	return e, nil
}

// Invoke runs one invocation in an idle execution environment, the most recently used first,
// or in a new one when every environment is busy; at the function's Concurrency limit it
// returns ErrThrottled at once, as Lambda does. Function failures (handled errors, panics,
// timeouts, crashes, init failures) are a Result with FunctionError set; the error is for the
// emulator itself: ErrClosed, ErrInvalidPayload, ErrThrottled, ctx ending, or a bootstrap
// that cannot be executed. As in Lambda, ctx ending does not stop an invocation once accepted:
// it runs on, within its Timeout, and its environment is reused afterwards.
func (e *Emulator) Invoke(ctx context.Context, payload []byte) (Result, error) {
	return e.invoke(ctx, payload, "")
}

func (e *Emulator) invoke(ctx context.Context, payload []byte, traceID string) (Result, error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}") // what Lambda delivers when the caller sends no payload
	} else if !json.Valid(payload) {
		return Result{}, ErrInvalidPayload
	} else {
		// The invocation may outlive this call (ctx ending), so it must not share the
		// caller's buffer.
		payload = bytes.Clone(payload)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err // the invoker left before asking: nothing runs
	}
	if traceID == "" {
		traceID = newTraceID()
	}
	env, err := e.acquire()
	if err != nil {
		return Result{}, err
	}
	inv := newInvocation(payload, traceID)
	type reply struct {
		res Result
		err error
	}
	replies := make(chan reply, 1)
	go func() {
		defer e.wg.Done()
		res, err := env.run(inv)
		replies <- reply{res, err}
		env.settle()
		e.release(env)
	}()
	select {
	case r := <-replies:
		return r.res, r.err
	case <-ctx.Done():
		return Result{RequestID: inv.id}, ctx.Err()
	}
}

// acquire takes an idle environment, or starts one, and counts the invocation in e.wg.
func (e *Emulator) acquire() (*environment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// Checked under e.mu, which Close takes to set closed: an environment started here is
	// one Close sees and stops.
	if e.closed {
		return nil, ErrClosed
	}
	var env *environment
	if n := len(e.idle); n > 0 {
		env = e.idle[n-1]
		e.idle = e.idle[:n-1]
	} else {
		if len(e.envs) >= e.fn.Concurrency {
			return nil, ErrThrottled
		}
		var err error
		if env, err = newEnvironment(e); err != nil {
			return nil, err
		}
		e.envs = append(e.envs, env)
	}
	e.wg.Add(1)
	return env, nil
}

func (e *Emulator) release(env *environment) {
	e.mu.Lock()
	e.idle = append(e.idle, env)
	e.mu.Unlock()
}

// Environments reports how many execution environments the function has started.
func (e *Emulator) Environments() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.envs)
}

// Running is an invocation a process is working on.
type Running struct {
	RequestID string
	Payload   []byte // the event; do not modify
	Started   time.Time
}

// InFlight lists the invocations the function's processes are working on now.
func (e *Emulator) InFlight() []Running {
	e.mu.Lock()
	envs := append([]*environment(nil), e.envs...)
	e.mu.Unlock()
	var out []Running
	for _, env := range envs {
		p := env.current()
		if p == nil {
			continue
		}
		p.mu.Lock()
		if inv := p.cur; inv != nil {
			out = append(out, Running{RequestID: inv.id, Payload: inv.payload, Started: inv.start})
		}
		p.mu.Unlock()
	}
	return out
}

// Kill ends the process working on invocation requestID with SIGKILL, as a host failure or an
// out-of-memory kill would: the invocation ends with Runtime.ExitError ("signal: killed") and
// the environment's next invocation starts a fresh process. It reports whether a process was
// working on that invocation. Fault-injection tests use it to crash a function at a precise
// point, e.g. after a ticket was created and before its result was recorded.
func (e *Emulator) Kill(requestID string) bool {
	e.mu.Lock()
	envs := append([]*environment(nil), e.envs...)
	e.mu.Unlock()
	for _, env := range envs {
		p := env.current()
		if p == nil {
			continue
		}
		// Under p.mu the process cannot answer the invocation and take another meanwhile.
		p.mu.Lock()
		hit := p.cur != nil && p.cur.id == requestID
		if hit {
			_ = p.cmd.Process.Kill()
		}
		p.mu.Unlock()
		if hit {
			return true
		}
	}
	return false
}

// Close stops every process (SIGTERM, then SIGKILL after 500 ms), closes the Runtime API
// listeners, and waits until no goroutine of the emulator can write to Logs any more.
// Invocations in flight end with ErrClosed. Close is idempotent.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	envs := e.envs
	e.mu.Unlock()

	errs := make([]error, len(envs))
	var wg sync.WaitGroup
	for i, env := range envs {
		wg.Go(func() { errs[i] = env.shutdown() })
	}
	wg.Wait()
	e.wg.Wait()
	return errors.Join(errs...)
}

// platformError logs an error the platform (not the function) detected, in the two lines
// Lambda writes to the function's log, and returns the document for the invoker.
func (e *Emulator) platformError(errorType, requestID, message string) []byte {
	e.logPlatformError(errorType, requestID, message)
	return errorDocument(errorType, requestID, message)
}

func (e *Emulator) logPlatformError(errorType, requestID, message string) {
	e.logs.linef("RequestId: %s Error: %s", requestID, message)
	e.logs.linef("%s", errorType)
}

// errorDocument renders a platform error the way Lambda reports it to the invoker.
func errorDocument(errorType, requestID, message string) []byte {
	b, _ := json.Marshal(struct {
		Message string `json:"errorMessage"`
		Type    string `json:"errorType"`
	}{"RequestId: " + requestID + " Error: " + message, errorType})
	return b
}
