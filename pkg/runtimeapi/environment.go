package runtimeapi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// environment is one execution environment: a Runtime API listener that outlives the
// processes it serves, and at most one live bootstrap process.
type environment struct {
	e    *Emulator
	addr string // AWS_LAMBDA_RUNTIME_API
	srv  *http.Server

	mu   sync.Mutex
	proc *process // the latest process; it may have exited

	// stale is a timed-out process still to be stopped. Lambda answers the invoker at the
	// timeout and shuts the runtime down afterwards, so run leaves the stop to settle, which
	// runs after the answer is handed over and before the environment is reused.
	stale *process
}

// process is one run of the bootstrap.
type process struct {
	cmd   *exec.Cmd
	start time.Time
	work  chan *invocation // unbuffered: a send completes when the runtime's /next takes it

	ready     chan struct{} // closed at the first /next: init is done
	readyOnce sync.Once
	initDur   time.Duration // written before ready is closed

	initFailed   chan struct{} // closed when the runtime posts /runtime/init/error
	initFailOnce sync.Once
	initErrBody  []byte // written before initFailed is closed

	exited  chan struct{} // closed once the process has been reaped
	exitErr error         // written before exited is closed

	// extension is set when the process registers with the Extensions API; Lambda then
	// sends SIGTERM before SIGKILL, otherwise SIGKILL alone.
	extension atomic.Bool

	mu  sync.Mutex
	cur *invocation // the invocation handed out by /next and not yet answered
}

// invocation is one event on its way through a process.
type invocation struct {
	id, traceID string
	payload     []byte

	delivered       chan struct{} // closed by /next after it sets start and deadline
	start, deadline time.Time

	mu   sync.Mutex
	done chan struct{} // closed when out is set; the first outcome wins
	out  outcome
}

type outcome struct {
	payload []byte
	failed  bool
	end     time.Time
}

func newInvocation(payload []byte, traceID string) *invocation {
	return &invocation{
		id:        newRequestID(),
		traceID:   traceID,
		payload:   payload,
		delivered: make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// finish records o unless another outcome came first (a response racing a timeout, an
// error posted just before the process exits) and reports whether o was recorded.
func (inv *invocation) finish(o outcome) bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	select {
	case <-inv.done:
		return false
	default:
	}
	inv.out = o
	close(inv.done)
	return true
}

func newEnvironment(e *Emulator) (*environment, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtimeapi: listen: %w", err)
	}
	env := &environment{e: e, addr: ln.Addr().String()}
	env.srv = &http.Server{Handler: env.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = env.srv.Serve(ln) }() // returns http.ErrServerClosed when shutdown closes it
	return env, nil
}

// run drives inv through this environment: it starts a process if none is alive, hands the
// event to the runtime's /next, and waits for the answer, the deadline or the process's
// death, whichever comes first.
func (env *environment) run(inv *invocation) (Result, error) {
	fn := env.e.fn
	res := Result{RequestID: inv.id}
	var p *process
	for attempt := 0; ; attempt++ {
		var cold bool
		var err error
		p, cold, err = env.process()
		if err != nil {
			return res, err
		}
		// A warm runtime is back at /next within microseconds of its last answer; one
		// that is not is still inside the previous invocation, which Lambda bounds by the
		// function timeout.
		limit := fn.Timeout
		if cold {
			limit = fn.InitTimeout
		}
		timer := time.NewTimer(limit)
		select {
		case p.work <- inv:
			timer.Stop()
			<-inv.delivered
			if cold {
				res.InitDuration = p.initDur
			}
		case <-p.initFailed:
			timer.Stop()
			// Lambda tears the environment down after init/error, whatever the runtime does next.
			p.stop(env.killGrace(p))
			return env.initFailure(res, p, inv), nil
		case <-p.exited:
			timer.Stop()
			if isClosed(env.e.done) {
				return res, ErrClosed // Close killed it
			}
			if isClosed(p.ready) && attempt == 0 {
				// The process died between invocations (aws-lambda-go exits after reporting
				// a panic): like Lambda, start a fresh one for this event.
				continue
			}
			return env.initFailure(res, p, inv), nil
		case <-timer.C:
			env.stale = p // stopped once the invoker has the answer (settle)
			res.FunctionError = Unhandled
			if !cold {
				res.Payload = env.e.platformError(ErrorTypeTimeout, inv.id, timedOut(fn.Timeout))
				return res, nil
			}
			res.InitDuration = fn.InitTimeout
			res.Payload = env.e.platformError(ErrorTypeInitTimeout, inv.id,
				fmt.Sprintf("Init timed out after %.2f seconds", fn.InitTimeout.Seconds()))
			return res, nil
		case <-env.e.done:
			timer.Stop()
			return res, ErrClosed
		}
		break
	}

	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()
	select {
	case <-inv.done:
	case <-p.exited:
		if isClosed(env.e.done) {
			return res, ErrClosed // Close killed it
		}
		// Usually the runtime died mid-invocation; if it answered first (a panic is reported,
		// then the process exits) finish keeps that answer.
		msg := exitMessage(p.exitErr)
		if inv.finish(outcome{payload: errorDocument(ErrorTypeExit, inv.id, msg), failed: true, end: time.Now()}) {
			env.e.logPlatformError(ErrorTypeExit, inv.id, msg)
		}
	case <-timer.C:
		msg := timedOut(fn.Timeout)
		if inv.finish(outcome{payload: errorDocument(ErrorTypeTimeout, inv.id, msg), failed: true, end: inv.deadline}) {
			env.e.logPlatformError(ErrorTypeTimeout, inv.id, msg)
			env.stale = p // stopped once the invoker has the answer (settle)
		}
	case <-env.e.done:
		return res, ErrClosed
	}
	out := inv.out
	res.Payload = out.payload
	if out.failed {
		res.FunctionError = Unhandled
	}
	res.Duration = out.end.Sub(inv.start)
	env.e.logs.linef("END RequestId: %s", inv.id)
	billed := (res.Duration + time.Millisecond - 1) / time.Millisecond // Lambda rounds up to the ms
	report := fmt.Sprintf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB",
		inv.id, ms(res.Duration), billed, fn.MemoryMB)
	if res.InitDuration > 0 {
		report += fmt.Sprintf("\tInit Duration: %.2f ms", ms(res.InitDuration))
	}
	env.e.logs.linef("%s", report)
	return res, nil
}

// settle stops the process a timeout left behind, if any.
func (env *environment) settle() {
	if p := env.stale; p != nil {
		env.stale = nil
		p.stop(env.killGrace(p))
	}
}

// initFailure reports a process that ended before asking for work: the body it posted to
// init/error if it did, otherwise a Runtime.ExitError with its exit status.
func (env *environment) initFailure(res Result, p *process, inv *invocation) Result {
	res.FunctionError = Unhandled
	res.InitDuration = time.Since(p.start)
	if isClosed(p.initFailed) {
		res.Payload = p.initErrBody
		return res
	}
	res.Payload = env.e.platformError(ErrorTypeExit, inv.id, exitMessage(p.exitErr))
	return res
}

// killGrace is Lambda's rule for stopping a runtime: SIGKILL straight away unless it
// registered an extension, which earns it SIGTERM and a grace period.
func (env *environment) killGrace(p *process) time.Duration {
	if p.extension.Load() {
		return shutdownGrace
	}
	return 0
}

// process returns the live process, starting one if there is none; cold reports a start.
func (env *environment) process() (p *process, cold bool, err error) {
	env.mu.Lock()
	defer env.mu.Unlock()
	// Checked under env.mu so that Close, which takes env.mu after closing done, either
	// sees the process started here or prevents it.
	if isClosed(env.e.done) {
		return nil, false, ErrClosed
	}
	if env.proc != nil && !isClosed(env.proc.exited) {
		return env.proc, false, nil
	}
	p, err = env.spawn()
	if err != nil {
		return nil, false, err
	}
	env.proc = p
	return p, true, nil
}

func (env *environment) current() *process {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.proc
}

func (env *environment) spawn() (*process, error) {
	e := env.e
	cmd := exec.Command(e.fn.Bootstrap)
	cmd.Dir = filepath.Dir(e.fn.Bootstrap) // Lambda runs bootstrap from LAMBDA_TASK_ROOT
	cmd.Env = append(e.env[:len(e.env):len(e.env)], "AWS_LAMBDA_RUNTIME_API="+env.addr)
	var lines *lineWriter
	if e.logs != nil {
		// The same writer for both streams: exec then shares one pipe, so stdout and
		// stderr lines keep their order.
		lines = &lineWriter{sink: e.logs}
		cmd.Stdout, cmd.Stderr = lines, lines
	}
	// Bounds Wait if a grandchild keeps the output pipe open after the bootstrap exits.
	cmd.WaitDelay = time.Second
	configureProcess(cmd)
	p := &process{
		cmd:        cmd,
		work:       make(chan *invocation),
		ready:      make(chan struct{}),
		initFailed: make(chan struct{}),
		exited:     make(chan struct{}),
	}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("runtimeapi: start %s: %w", e.fn.Bootstrap, err)
	}
	e.wg.Add(1) // a caller of spawn holds a count already, so this never races Close's Wait
	go func() {
		defer e.wg.Done()
		p.exitErr = cmd.Wait()
		if lines != nil {
			lines.flush()
		}
		close(p.exited)
	}()
	return p, nil
}

// stop ends the process and waits until it has been reaped: SIGTERM and up to grace for it
// to exit, then SIGKILL.
func (p *process) stop(grace time.Duration) {
	if isClosed(p.exited) {
		return
	}
	if grace > 0 {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-p.exited:
			t.Stop()
			return
		case <-t.C:
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (env *environment) shutdown() error {
	env.mu.Lock()
	p := env.proc
	env.mu.Unlock()
	if p != nil {
		p.stop(shutdownGrace)
	}
	return env.srv.Close()
}

// reserved are the variables Lambda sets itself and refuses in a function's configuration.
var reserved = []string{
	"AWS_LAMBDA_RUNTIME_API", "_HANDLER", "LAMBDA_TASK_ROOT",
	"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
}

// processEnv builds the environment Lambda gives a provided.al2023 function: the caller's
// variables, Lambda's reserved ones, and defaults the caller may override. The parent's
// environment is deliberately not inherited (a test must not pass just because the developer
// exported something); only PATH and HOME are, when the caller sets neither.
func processEnv(fn Function) (env []string, region string, err error) {
	vars := make(map[string]string, len(fn.Env)+16)
	for k, v := range fn.Env {
		for _, r := range reserved {
			if k == r {
				return nil, "", fmt.Errorf("runtimeapi: %s is set by the runtime and cannot be configured", k)
			}
		}
		vars[k] = v
	}
	setDefault := func(k, v string) {
		if _, ok := vars[k]; !ok {
			vars[k] = v
		}
	}
	setDefault("AWS_REGION", "us-east-1")
	setDefault("AWS_DEFAULT_REGION", vars["AWS_REGION"])
	setDefault("AWS_LAMBDA_LOG_FORMAT", "JSON")
	setDefault("AWS_LAMBDA_LOG_LEVEL", "INFO")
	setDefault("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/"+fn.Name)
	setDefault("AWS_LAMBDA_LOG_STREAM_NAME", time.Now().UTC().Format("2006/01/02")+"/[$LATEST]"+randomHex(16))
	setDefault("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
	setDefault("TZ", ":UTC")
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			setDefault(k, v)
		}
	}
	vars["AWS_LAMBDA_FUNCTION_NAME"] = fn.Name
	vars["AWS_LAMBDA_FUNCTION_VERSION"] = "$LATEST"
	vars["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = fmt.Sprint(fn.MemoryMB)
	vars["_HANDLER"] = "bootstrap"
	vars["LAMBDA_TASK_ROOT"] = filepath.Dir(fn.Bootstrap)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env, vars["AWS_REGION"], nil
}

func exitMessage(err error) string {
	if err == nil {
		return "Runtime exited without providing a reason"
	}
	// exec's ExitError reads "exit status 2" or "signal: killed", which is exactly the
	// text Lambda's own (Go) supervisor puts after "Runtime exited with error: ".
	return "Runtime exited with error: " + err.Error()
}

func timedOut(d time.Duration) string {
	return fmt.Sprintf("Task timed out after %.2f seconds", d.Seconds())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// newRequestID returns a random (version 4) UUID, the form of Lambda request ids.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newTraceID returns an X-Ray trace header for an unsampled request, as Lambda passes when
// the caller sends none.
func newTraceID() string {
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", time.Now().Unix(), randomHex(12), randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
