package runtimeapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/runtimeapi"
)

// echoBootstrap is testdata/echo, built once per test binary.
var echoBootstrap string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "runtimeapi-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	echoBootstrap = filepath.Join(dir, "bootstrap")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := runtimeapi.BuildBootstrap(ctx, ".", "testdata/echo", echoBootstrap); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// logBuffer collects the function's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const logPrefix = "echo| "

// start runs the echo function with fn's settings; its logs go to the test output and to
// the returned buffer. Close runs at cleanup, before the test ends, so no line arrives late.
func start(t *testing.T, fn runtimeapi.Function) (*runtimeapi.Emulator, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if fn.Name == "" {
		fn.Name = "echo"
	}
	if fn.Bootstrap == "" {
		fn.Bootstrap = echoBootstrap
	}
	fn.Logs = io.MultiWriter(t.Output(), logs)
	fn.LogPrefix = logPrefix
	em, err := runtimeapi.Start(fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := em.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return em, logs
}

func invoke(t *testing.T, em *runtimeapi.Emulator, event any) runtimeapi.Result {
	t.Helper()
	payload, err := json.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := em.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("Invoke(%s): %v", payload, err)
	}
	return res
}

// echoed is testdata/echo's answer.
type echoed struct {
	Event        json.RawMessage   `json:"event"`
	FunctionName string            `json:"function_name"`
	RequestID    string            `json:"request_id"`
	FunctionARN  string            `json:"function_arn"`
	RemainingMS  int64             `json:"remaining_ms"`
	TraceID      string            `json:"trace_id"`
	PID          int               `json:"pid"`
	Env          map[string]string `json:"env"`
	Peers        []string          `json:"peers"`
}

func mustEcho(t *testing.T, res runtimeapi.Result) echoed {
	t.Helper()
	if res.FunctionError != "" {
		t.Fatalf("FunctionError %q, payload %s", res.FunctionError, res.Payload)
	}
	var out echoed
	if err := json.Unmarshal(res.Payload, &out); err != nil {
		t.Fatalf("payload %s: %v", res.Payload, err)
	}
	return out
}

// lambdaError is the error document an invoker receives.
type lambdaError struct {
	Message    string            `json:"errorMessage"`
	Type       string            `json:"errorType"`
	StackTrace []json.RawMessage `json:"stackTrace"`
}

func mustFail(t *testing.T, res runtimeapi.Result) lambdaError {
	t.Helper()
	if res.FunctionError != runtimeapi.Unhandled {
		t.Fatalf("FunctionError = %q, want Unhandled; payload %s", res.FunctionError, res.Payload)
	}
	var out lambdaError
	if err := json.Unmarshal(res.Payload, &out); err != nil {
		t.Fatalf("error payload %s: %v", res.Payload, err)
	}
	return out
}

// alive reports whether pid is a live (or unreaped) process.
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}

func TestEchoRoundTripAndWarmReuse(t *testing.T) {
	t.Parallel()
	em, logs := start(t, runtimeapi.Function{})

	event := map[string]any{"op": "echo", "data": map[string]any{"n": []int{1, 2, 3}, "s": "é"}}
	began := time.Now()
	cold := invoke(t, em, event)
	coldLatency := time.Since(began)
	first := mustEcho(t, cold)

	want, _ := json.Marshal(event)
	var got bytes.Buffer
	if err := json.Compact(&got, first.Event); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("event = %s, want %s", got.String(), want)
	}
	if first.FunctionName != "echo" {
		t.Errorf("function name = %q", first.FunctionName)
	}
	if first.RequestID != cold.RequestID || cold.RequestID == "" {
		t.Errorf("handler saw request id %q, Result has %q", first.RequestID, cold.RequestID)
	}
	if first.FunctionARN != "arn:aws:lambda:us-east-1:012345678912:function:echo" {
		t.Errorf("function ARN = %q", first.FunctionARN)
	}
	if !strings.HasPrefix(first.TraceID, "Root=1-") {
		t.Errorf("trace id = %q", first.TraceID)
	}
	if cold.InitDuration <= 0 || cold.Duration <= 0 {
		t.Errorf("cold start: InitDuration %v, Duration %v; want both > 0", cold.InitDuration, cold.Duration)
	}

	began = time.Now()
	warm := invoke(t, em, map[string]any{"op": "echo"})
	warmLatency := time.Since(began)
	second := mustEcho(t, warm)
	if second.PID != first.PID {
		t.Errorf("warm invocation ran in pid %d, first in %d: the process was not reused", second.PID, first.PID)
	}
	if warm.InitDuration != 0 {
		t.Errorf("warm invocation has InitDuration %v", warm.InitDuration)
	}
	if warm.RequestID == cold.RequestID {
		t.Error("request ids repeat")
	}
	t.Logf("cold invoke %v (init %v, handler %v); warm invoke %v (handler %v)",
		coldLatency, cold.InitDuration, cold.Duration, warmLatency, warm.Duration)

	for _, line := range []string{
		logPrefix + "START RequestId: " + cold.RequestID + " Version: $LATEST",
		"echo: op=echo request=" + cold.RequestID,             // stderr (log)
		logPrefix + "echo: stdout line for " + cold.RequestID, // stdout
		logPrefix + "REPORT RequestId: " + cold.RequestID,
		"Init Duration: ",
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("logs lack %q:\n%s", line, logs)
		}
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{
		MemoryMB: 256,
		Env:      map[string]string{"CUSTOM": "x=y", "AWS_LAMBDA_LOG_LEVEL": "DEBUG", "AWS_REGION": "eu-west-1"},
	})
	got := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"})).Env
	want := map[string]string{
		"CUSTOM":                          "x=y",
		"AWS_LAMBDA_FUNCTION_NAME":        "echo",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_LOG_FORMAT":           "JSON",
		"AWS_LAMBDA_LOG_LEVEL":            "DEBUG",
		"AWS_REGION":                      "eu-west-1",
		"AWS_DEFAULT_REGION":              "eu-west-1",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                filepath.Dir(echoBootstrap),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if host, _, err := net.SplitHostPort(got["AWS_LAMBDA_RUNTIME_API"]); err != nil || host != "127.0.0.1" {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q, want 127.0.0.1:<port>", got["AWS_LAMBDA_RUNTIME_API"])
	}
	// Nothing else leaks in from the test process's environment.
	allowed := map[string]bool{
		"AWS_LAMBDA_RUNTIME_API": true, "AWS_LAMBDA_LOG_GROUP_NAME": true, "AWS_LAMBDA_LOG_STREAM_NAME": true,
		"AWS_LAMBDA_INITIALIZATION_TYPE": true, "TZ": true, "PATH": true, "HOME": true,
		"_X_AMZN_TRACE_ID": true, // set by aws-lambda-go per invocation
	}
	for k := range got {
		if _, ok := want[k]; !ok && !allowed[k] {
			t.Errorf("unexpected variable %s=%q", k, got[k])
		}
	}

	if _, err := runtimeapi.Start(runtimeapi.Function{Name: "x", Bootstrap: echoBootstrap,
		Env: map[string]string{"AWS_LAMBDA_RUNTIME_API": "elsewhere"}}); err == nil {
		t.Error("Start accepted a reserved variable")
	}
	if _, err := runtimeapi.Start(runtimeapi.Function{Name: "x", Bootstrap: filepath.Dir(echoBootstrap)}); err == nil {
		t.Error("Start accepted a directory as bootstrap")
	}
}

func TestDeadlineReachesHandler(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{Timeout: 3 * time.Second})
	res := invoke(t, em, map[string]any{"op": "echo"})
	got := mustEcho(t, res)
	if got.RequestID != res.RequestID {
		t.Errorf("handler request id %q, invoker %q", got.RequestID, res.RequestID)
	}
	// The deadline is set when the event is handed over; the handler runs right after, so
	// almost all of the timeout remains.
	if got.RemainingMS > 3000 || got.RemainingMS < 2000 {
		t.Errorf("remaining time %d ms, want about 3000", got.RemainingMS)
	}
}

func TestHandledError(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{})
	before := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"}))
	e := mustFail(t, invoke(t, em, map[string]any{"op": "error", "message": "ticket system said no"}))
	if e.Message != "ticket system said no" || e.Type != "errorString" {
		t.Errorf("error = %+v", e)
	}
	after := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"}))
	if after.PID != before.PID {
		t.Error("a handled error replaced the process; Lambda keeps it")
	}
}

func TestBrokenResponseStream(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{})
	e := mustFail(t, invoke(t, em, map[string]any{"op": "stream_error"}))
	if e.Message != "stream broke" || e.Type != "errorString" {
		t.Errorf("error = %+v, want the one aws-lambda-go put in the response trailers", e)
	}
}

func TestTimeoutKillsAndNextInvocationStartsFresh(t *testing.T) {
	t.Parallel()
	em, logs := start(t, runtimeapi.Function{Timeout: time.Second})
	first := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"}))

	res := invoke(t, em, map[string]any{"op": "sleep", "sleep_ms": 10_000})
	e := mustFail(t, res)
	wantMsg := "RequestId: " + res.RequestID + " Error: Task timed out after 1.00 seconds"
	if e.Type != runtimeapi.ErrorTypeTimeout || e.Message != wantMsg {
		t.Errorf("timeout error = %+v, want type %s message %q", e, runtimeapi.ErrorTypeTimeout, wantMsg)
	}
	if res.Duration != time.Second {
		t.Errorf("Duration = %v, want the timeout", res.Duration)
	}
	// As in Lambda, the invoker has the answer at the timeout; the runtime is stopped after.
	for give := time.Now().Add(10 * time.Second); alive(first.PID) && time.Now().Before(give); {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(first.PID) {
		t.Errorf("timed-out process %d is still alive", first.PID)
	}
	// The echo function registered an extension (WithEnableSIGTERM), so it got SIGTERM first.
	if !strings.Contains(logs.String(), fmt.Sprintf("echo: SIGTERM pid=%d", first.PID)) {
		t.Errorf("no SIGTERM line for pid %d", first.PID)
	}

	next := invoke(t, em, map[string]any{"op": "echo"})
	if got := mustEcho(t, next); got.PID == first.PID {
		t.Error("invocation after a timeout reused the killed process")
	}
	if next.InitDuration == 0 {
		t.Error("invocation after a timeout was not a cold start")
	}
}

func TestCrashIsExitErrorAndRecovers(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{})
	first := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"}))

	res := invoke(t, em, map[string]any{"op": "exit", "code": 3})
	e := mustFail(t, res)
	wantMsg := "RequestId: " + res.RequestID + " Error: Runtime exited with error: exit status 3"
	if e.Type != runtimeapi.ErrorTypeExit || e.Message != wantMsg {
		t.Errorf("crash error = %+v, want %s %q", e, runtimeapi.ErrorTypeExit, wantMsg)
	}
	if alive(first.PID) {
		t.Errorf("crashed process %d not reaped", first.PID)
	}
	next := invoke(t, em, map[string]any{"op": "echo"})
	if mustEcho(t, next).PID == first.PID || next.InitDuration == 0 {
		t.Error("invocation after a crash did not start a fresh process")
	}
}

func TestPanicIsReportedAndProcessReplaced(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{})
	first := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"}))

	e := mustFail(t, invoke(t, em, map[string]any{"op": "panic", "message": "nil map"}))
	if e.Type != "string" || e.Message != "nil map" || len(e.StackTrace) == 0 {
		t.Errorf("panic error = %+v", e)
	}
	// aws-lambda-go exits after reporting a panic; the next event gets a new process.
	next := invoke(t, em, map[string]any{"op": "echo"})
	if mustEcho(t, next).PID == first.PID || next.InitDuration == 0 {
		t.Error("invocation after a panic did not start a fresh process")
	}
}

func TestInitFailureByExit(t *testing.T) {
	t.Parallel()
	em, logs := start(t, runtimeapi.Function{Env: map[string]string{"ECHO_INIT_FAIL": "exit"}})
	for range 2 { // each invocation tries a fresh init
		res := invoke(t, em, map[string]any{"op": "echo"})
		e := mustFail(t, res)
		wantMsg := "RequestId: " + res.RequestID + " Error: Runtime exited with error: exit status 1"
		if e.Type != runtimeapi.ErrorTypeExit || e.Message != wantMsg {
			t.Errorf("init failure = %+v, want %s %q", e, runtimeapi.ErrorTypeExit, wantMsg)
		}
		if res.InitDuration <= 0 {
			t.Error("no InitDuration for a failed init")
		}
	}
	if n := strings.Count(logs.String(), "echo: init failed: ECHO_REQUIRED is not set"); n != 2 {
		t.Errorf("init ran %d times, want 2:\n%s", n, logs)
	}
}

func TestInitFailureByInitErrorEndpoint(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{Env: map[string]string{"ECHO_INIT_FAIL": "post"}})
	e := mustFail(t, invoke(t, em, map[string]any{"op": "echo"}))
	var pid int
	if _, err := fmt.Sscanf(e.Message, "echo: cannot init (pid %d)", &pid); err != nil || e.Type != "EchoInitError" {
		t.Fatalf("init error = %+v (%v); want the posted document", e, err)
	}
	// The runtime hangs after posting; the emulator must have killed it.
	if alive(pid) {
		t.Errorf("process %d that posted init/error is still alive", pid)
	}
}

func TestInitTimeout(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{
		InitTimeout: 300 * time.Millisecond,
		Env:         map[string]string{"ECHO_INIT_SLEEP_MS": "30000"},
	})
	res := invoke(t, em, map[string]any{"op": "echo"})
	e := mustFail(t, res)
	if e.Type != runtimeapi.ErrorTypeInitTimeout || !strings.HasSuffix(e.Message, "Init timed out after 0.30 seconds") {
		t.Errorf("init timeout error = %+v", e)
	}
}

// overlapping runs n "overlap" invocations at once; each returns once it has seen all n in
// flight, or at its deadline.
func overlapping(t *testing.T, em *runtimeapi.Emulator, n int) []echoed {
	t.Helper()
	dir := t.TempDir()
	payload := fmt.Appendf(nil, `{"op":"overlap","dir":%q,"want":%d}`, dir, n)
	results := make([]runtimeapi.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = em.Invoke(context.Background(), payload) })
	}
	wg.Wait()
	out := make([]echoed, n)
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		out[i] = mustEcho(t, results[i])
	}
	return out
}

func TestPoolServesInParallel(t *testing.T) {
	t.Parallel()
	const n = 3
	em, _ := start(t, runtimeapi.Function{Concurrency: n, Timeout: 20 * time.Second})
	results := overlapping(t, em, n)
	pids := map[int]bool{}
	for i, r := range results {
		// Each invocation waits for the others' markers before returning, so seeing all n
		// means all n were in flight together: with one environment the first would never
		// see the second and would give up at its deadline.
		if len(r.Peers) != n {
			t.Errorf("invocation %d saw %v, want %d invocations in flight together", i, r.Peers, n)
		}
		pids[r.PID] = true
	}
	if len(pids) != n {
		t.Errorf("%d invocations ran in %d processes, want %d", n, len(pids), n)
	}
}

func TestInvokerGoingAwayDoesNotStopTheInvocation(t *testing.T) {
	t.Parallel()
	em, logs := start(t, runtimeapi.Function{})
	first := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"}))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	res, err := em.Invoke(ctx, []byte(`{"op":"sleep","sleep_ms":300}`))
	if !errors.Is(err, context.Canceled) || res.RequestID == "" {
		t.Fatalf("Invoke with a cancelled context: %v (request %q)", err, res.RequestID)
	}
	// The sleep runs to its end in the same process, which then serves the next event.
	for give := time.Now().Add(time.Minute); !strings.Contains(logs.String(), "END RequestId: "+res.RequestID); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(give) {
			t.Fatalf("the invocation whose invoker left did not run to its end:\n%s", logs)
		}
	}
	time.Sleep(200 * time.Millisecond) // the environment is idle again right after END
	if mustEcho(t, invoke(t, em, map[string]any{"op": "echo"})).PID != first.PID {
		t.Error("process was replaced after the invoker went away")
	}
	gone, cancelGone := context.WithCancel(context.Background())
	cancelGone()
	starts := strings.Count(logs.String(), "START RequestId")
	if _, err := em.Invoke(gone, []byte(`{"op":"echo"}`)); !errors.Is(err, context.Canceled) {
		t.Errorf("an invoker gone before asking: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logs.String(), "START RequestId"); n != starts {
		t.Error("an invocation ran for an invoker that had gone before asking")
	}
	if _, err := em.Invoke(context.Background(), []byte(`{"op":`)); !errors.Is(err, runtimeapi.ErrInvalidPayload) {
		t.Errorf("Invoke with broken JSON: %v", err)
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{})
	srv := httptest.NewServer(em.Handler())
	defer srv.Close()

	// post returns the response with its body already read and closed.
	post := func(name, body string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/2015-03-31/functions/"+name+"/invocations", strings.NewReader(body))
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	trace := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	resp, body := post("function", `{"op":"echo","k":"v"}`, http.Header{"X-Amzn-Trace-Id": {trace}}) //nolint:bodyclose // closed in post
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Fatalf("echo: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var got echoed
	if err := json.Unmarshal(body, &got); err != nil || !strings.Contains(string(got.Event), `"k":"v"`) {
		t.Errorf("echo body %s (%v)", body, err)
	}
	if got.TraceID != trace {
		t.Errorf("trace id %q, want the caller's %q", got.TraceID, trace)
	}
	if resp.Header.Get("X-Amzn-Requestid") != got.RequestID {
		t.Errorf("X-Amzn-Requestid %q, handler saw %q", resp.Header.Get("X-Amzn-Requestid"), got.RequestID)
	}

	resp, body = post("echo", `{"op":"error","message":"nope"}`, nil) //nolint:bodyclose // closed in post
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" {
		t.Errorf("error: %d %q", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"))
	}
	var e lambdaError
	if err := json.Unmarshal(body, &e); err != nil || e.Message != "nope" || e.Type != "errorString" {
		t.Errorf("error body %s (%v)", body, err)
	}

	if resp, _ := post("other", `{}`, nil); resp.StatusCode != http.StatusNotFound { //nolint:bodyclose // closed in post
		t.Errorf("unknown function: %d", resp.StatusCode)
	}
	if resp, _ := post("function", `{"op":`, nil); resp.StatusCode != http.StatusBadRequest { //nolint:bodyclose // closed in post
		t.Errorf("broken JSON: %d", resp.StatusCode)
	}
	if resp, err := http.Get(srv.URL + "/2015-03-31/functions/function/invocations"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
}

func TestCloseLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	const n = 2
	em, logs := start(t, runtimeapi.Function{Concurrency: n, Timeout: 20 * time.Second})
	results := overlapping(t, em, n)

	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if alive(r.PID) {
			t.Errorf("process %d survived Close", r.PID)
		}
		if !strings.Contains(logs.String(), fmt.Sprintf("echo: SIGTERM pid=%d", r.PID)) {
			t.Errorf("process %d got no SIGTERM", r.PID)
		}
		addr := r.Env["AWS_LAMBDA_RUNTIME_API"]
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("Runtime API %s still accepts connections", addr)
		}
	}
	if _, err := em.Invoke(context.Background(), []byte(`{}`)); !errors.Is(err, runtimeapi.ErrClosed) {
		t.Errorf("Invoke after Close: %v", err)
	}
	if err := em.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseEndsInvocationInFlight(t *testing.T) {
	t.Parallel()
	em, logs := start(t, runtimeapi.Function{Timeout: 30 * time.Second})
	errc := make(chan error, 1)
	go func() {
		_, err := em.Invoke(context.Background(), []byte(`{"op":"sleep","sleep_ms":30000}`))
		errc <- err
	}()
	for give := time.Now().Add(time.Minute); !strings.Contains(logs.String(), "echo: op=sleep"); {
		if time.Now().After(give) {
			t.Fatal("the sleep invocation never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, runtimeapi.ErrClosed) {
		t.Errorf("Invoke in flight during Close: %v, want ErrClosed", err)
	}
}

func TestBuildBootstrapConcurrently(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "bin", "bootstrap")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = runtimeapi.BuildBootstrap(context.Background(), ".", "testdata/echo", out) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("build left %d entries beside the bootstrap", len(entries)-1)
	}
	em, _ := start(t, runtimeapi.Function{Bootstrap: out})
	mustEcho(t, invoke(t, em, map[string]any{"op": "echo"}))
	if err := runtimeapi.BuildBootstrap(context.Background(), ".", "testdata/nosuchpkg", out); err == nil {
		t.Error("building a missing package succeeded")
	}
}

// TestScalesOutAndReusesWarmEnvironments: invocations that find every environment busy get a
// new one each, as Lambda scales out; once they are done, the next invocation reuses the most
// recently used environment instead of starting another.
func TestScalesOutAndReusesWarmEnvironments(t *testing.T) {
	t.Parallel()
	const n = 6
	em, _ := start(t, runtimeapi.Function{Timeout: 20 * time.Second}) // default limit: 32
	results := overlapping(t, em, n)
	pids := map[int]bool{}
	for i, r := range results {
		if len(r.Peers) != n {
			t.Errorf("invocation %d saw %d invocations in flight, want %d: one waited for another", i, len(r.Peers), n)
		}
		pids[r.PID] = true
	}
	if len(pids) != n || em.Environments() != n {
		t.Errorf("%d invocations at once ran in %d processes and %d environments, want %d", n, len(pids), em.Environments(), n)
	}
	for range 3 {
		if pid := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"})).PID; !pids[pid] {
			t.Errorf("a sequential invocation ran in a new process %d instead of a warm one", pid)
		}
	}
	if em.Environments() != n {
		t.Errorf("sequential invocations started environments: %d, want %d", em.Environments(), n)
	}
}

// waitInFlight waits until an invocation whose event contains marker is running and returns it.
func waitInFlight(t *testing.T, em *runtimeapi.Emulator, marker string) runtimeapi.Running {
	t.Helper()
	for give := time.Now().Add(time.Minute); time.Now().Before(give); time.Sleep(5 * time.Millisecond) {
		for _, r := range em.InFlight() {
			if strings.Contains(string(r.Payload), marker) {
				return r
			}
		}
	}
	t.Fatalf("no invocation with %q started", marker)
	return runtimeapi.Running{}
}

// TestThrottledAtTheConcurrencyLimit: one invocation more than the limit is refused at once, as
// Lambda's TooManyRequestsException, and nothing runs for it.
func TestThrottledAtTheConcurrencyLimit(t *testing.T) {
	t.Parallel()
	em, _ := start(t, runtimeapi.Function{Concurrency: 1, Timeout: 20 * time.Second})
	done := make(chan runtimeapi.Result, 1)
	go func() {
		res, _ := em.Invoke(context.Background(), []byte(`{"op":"sleep","sleep_ms":1500,"message":"busy"}`))
		done <- res
	}()
	waitInFlight(t, em, "busy")
	began := time.Now()
	if _, err := em.Invoke(context.Background(), []byte(`{"op":"echo"}`)); !errors.Is(err, runtimeapi.ErrThrottled) {
		t.Fatalf("Invoke beyond the limit: %v, want ErrThrottled", err)
	}
	if waited := time.Since(began); waited > time.Second {
		t.Errorf("the throttled invocation waited %s; Lambda refuses at once", waited)
	}
	srv := httptest.NewServer(em.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/2015-03-31/functions/function/invocations", "application/json", strings.NewReader(`{"op":"echo"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Amzn-ErrorType") != "TooManyRequestsException" ||
		!strings.Contains(string(body), "ReservedFunctionConcurrentInvocationLimitExceeded") {
		t.Errorf("throttled over HTTP: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	mustEcho(t, <-done)
	mustEcho(t, invoke(t, em, map[string]any{"op": "echo"})) // the environment is free again
}

// TestKillCrashesTheInvocation: Kill ends the process working on one invocation, which the
// invoker sees as Lambda reports a crash; the next invocation gets a fresh process.
func TestKillCrashesTheInvocation(t *testing.T) {
	t.Parallel()
	em, logs := start(t, runtimeapi.Function{Timeout: 20 * time.Second})
	first := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"}))
	done := make(chan runtimeapi.Result, 1)
	go func() {
		res, _ := em.Invoke(context.Background(), []byte(`{"op":"sleep","sleep_ms":10000,"message":"victim"}`))
		done <- res
	}()
	victim := waitInFlight(t, em, "victim")
	if em.Kill("no-such-request") {
		t.Error("Kill of an unknown request id reported a kill")
	}
	if !em.Kill(victim.RequestID) {
		t.Fatal("Kill did not find the running invocation")
	}
	res := <-done
	e := mustFail(t, res)
	if e.Type != runtimeapi.ErrorTypeExit || !strings.Contains(e.Message, "signal: killed") || res.RequestID != victim.RequestID {
		t.Errorf("killed invocation: %+v (request %s, want %s)", e, res.RequestID, victim.RequestID)
	}
	if alive(first.PID) {
		t.Errorf("process %d survived Kill", first.PID)
	}
	if next := mustEcho(t, invoke(t, em, map[string]any{"op": "echo"})); next.PID == first.PID {
		t.Error("the next invocation ran in the killed process")
	}
	if !strings.Contains(logs.String(), "Runtime exited with error: signal: killed") {
		t.Errorf("the function's log does not record the crash:\n%s", logs)
	}
	if len(em.InFlight()) != 0 {
		t.Errorf("in flight after every invocation ended: %+v", em.InFlight())
	}
}
