// Command echo is the Lambda function the runtimeapi tests run under the emulator. The event's
// "op" picks a behaviour; ECHO_INIT_FAIL makes init fail.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Op      string `json:"op"`
	Message string `json:"message"`
	SleepMS int    `json:"sleep_ms"`
	Code    int    `json:"code"`
	Dir     string `json:"dir"`  // overlap: directory shared by the invocations
	Want    int    `json:"want"` // overlap: how many invocations to wait for
}

type response struct {
	Event        json.RawMessage   `json:"event"`
	FunctionName string            `json:"function_name"`
	RequestID    string            `json:"request_id"`
	FunctionARN  string            `json:"function_arn"`
	RemainingMS  int64             `json:"remaining_ms"`
	TraceID      string            `json:"trace_id"`
	PID          int               `json:"pid"`
	Env          map[string]string `json:"env"`
	Peers        []string          `json:"peers,omitempty"`
}

func main() {
	switch os.Getenv("ECHO_INIT_FAIL") {
	case "exit":
		// A function whose configuration check fails at cold start.
		log.Fatalf("echo: init failed: ECHO_REQUIRED is not set")
	case "post":
		// A runtime that reports its init failure through the Runtime API and then hangs:
		// the emulator must kill it.
		body := fmt.Sprintf(`{"errorMessage":"echo: cannot init (pid %d)","errorType":"EchoInitError"}`, os.Getpid())
		req, _ := http.NewRequest(http.MethodPost, "http://"+os.Getenv("AWS_LAMBDA_RUNTIME_API")+"/2018-06-01/runtime/init/error", strings.NewReader(body))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "EchoInitError")
		if resp, err := http.DefaultClient.Do(req); err != nil {
			log.Fatalf("echo: posting init error: %v", err)
		} else {
			resp.Body.Close()
			log.Printf("echo: init/error answered %d", resp.StatusCode)
		}
		select {}
	}
	if ms, err := strconv.Atoi(os.Getenv("ECHO_INIT_SLEEP_MS")); err == nil {
		time.Sleep(time.Duration(ms) * time.Millisecond) // a slow cold start
	}
	log.Printf("echo: init pid=%d", os.Getpid())
	lambda.StartWithOptions(handle, lambda.WithEnableSIGTERM(func() {
		log.Printf("echo: SIGTERM pid=%d", os.Getpid())
		os.Exit(0)
	}))
}

func handle(ctx context.Context, event json.RawMessage) (any, error) {
	var req request
	if err := json.Unmarshal(event, &req); err != nil {
		return nil, err
	}
	lc, _ := lambdacontext.FromContext(ctx)
	log.Printf("echo: op=%s request=%s", req.Op, lc.AwsRequestID)
	fmt.Printf("echo: stdout line for %s\n", lc.AwsRequestID)

	switch req.Op {
	case "error":
		return nil, errors.New(req.Message)
	case "panic":
		panic(req.Message)
	case "exit":
		os.Exit(req.Code)
	case "stream_error":
		// A streamed response whose reader fails midway: aws-lambda-go reports the
		// failure in HTTP trailers of the /response request.
		return &brokenStream{}, nil
	case "sleep":
		time.Sleep(time.Duration(req.SleepMS) * time.Millisecond) // ignores ctx on purpose
	}

	deadline, _ := ctx.Deadline()
	resp := &response{
		Event:        event,
		FunctionName: lambdacontext.FunctionName,
		RequestID:    lc.AwsRequestID,
		FunctionARN:  lc.InvokedFunctionArn,
		RemainingMS:  time.Until(deadline).Milliseconds(),
		PID:          os.Getpid(),
		Env:          map[string]string{},
	}
	resp.TraceID, _ = ctx.Value("x-amzn-trace-id").(string)
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		resp.Env[k] = v
	}
	if req.Op == "overlap" {
		peers, err := overlap(ctx, req.Dir, lc.AwsRequestID, req.Want)
		if err != nil {
			return nil, err
		}
		resp.Peers = peers
	}
	return resp, nil
}

// overlap leaves a marker named after this invocation in dir, then waits until markers of
// want invocations exist or the deadline nears, and returns the names it saw. An invocation
// sees another's marker only if that one started before this one returned, so when every
// invocation sees all want markers they were all in flight together.
func overlap(ctx context.Context, dir, id string, want int) ([]string, error) {
	if err := os.WriteFile(filepath.Join(dir, id), nil, 0o644); err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if len(names) >= want || time.Until(deadline) < 200*time.Millisecond {
			sort.Strings(names)
			return names, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// brokenStream is an io.Reader with no exported fields, so aws-lambda-go streams it as the
// response body instead of encoding it as JSON.
type brokenStream struct{ sent bool }

func (b *brokenStream) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, `{"partial":`), nil
	}
	return 0, errors.New("stream broke")
}
