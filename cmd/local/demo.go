package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// scenario is one seed scenario the demo walks through. Each function's file registers its own.
type scenario struct {
	order int
	title string
	run   func(d *demo) error
}

var scenarios []scenario

func addScenario(s scenario) { scenarios = append(scenarios, s) }

// demo is the state shared by the scenarios: the running stack, the local API and the
// transcript.
type demo struct {
	ctx  context.Context
	st   *localstack.Stack
	base string
	out  io.Writer

	failures []string
	mark     int // a position in the stack's metrics recording (demo_health.go)
}

// runDemo starts the stack, runs every scenario in order and prints a transcript of what each
// system sent and received. It fails when any scenario's outcome is not what it claims.
func runDemo(ctx context.Context, args []string) error {
	start := time.Now()
	out := os.Stdout
	logPath := filepath.Join(os.TempDir(), "cxbridge-demo-functions.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	fmt.Fprintln(out, "Starting cxbridge locally: DynamoDB Local, Secrets Manager and every external system as wire-level fakes, each function's real bootstrap...")
	st, err := localstack.Start(ctx, localstack.Options{Logs: logFile, Getenv: func(string) string { return "" }, Progress: out})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Warm(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: st.API(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	st.ConnectWebhooks("http://" + ln.Addr().String())
	fmt.Fprintf(out, "Ready in %s. Local API: http://%s (functions' logs: %s)\n", time.Since(start).Round(100*time.Millisecond), ln.Addr(), logPath)

	sort.SliceStable(scenarios, func(i, j int) bool { return scenarios[i].order < scenarios[j].order })
	passed := 0
	for i, sc := range scenarios {
		d := &demo{ctx: ctx, st: st, base: "http://" + ln.Addr().String(), out: out}
		fmt.Fprintf(out, "\n== %d. %s\n", i+1, sc.title)
		scStart := time.Now()
		err := sc.run(d)
		if err != nil {
			d.failures = append(d.failures, err.Error())
		}
		if len(d.failures) == 0 {
			passed++
			fmt.Fprintf(out, "   PASS (%s)\n", time.Since(scStart).Round(time.Millisecond))
		} else {
			for _, f := range d.failures {
				fmt.Fprintf(out, "   FAIL: %s\n", f)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	fmt.Fprintf(out, "\n%d of %d scenarios passed in %s.\n", passed, len(scenarios), time.Since(start).Round(100*time.Millisecond))
	if passed != len(scenarios) {
		return fmt.Errorf("%d scenario(s) failed; the functions' logs are in %s", len(scenarios)-passed, logPath)
	}
	return nil
}

// say prints one transcript line: who did what.
func (d *demo) say(who, format string, args ...any) {
	fmt.Fprintf(d.out, "   %-12s %s\n", who, fmt.Sprintf(format, args...))
}

// check records a failed expectation; the scenario continues so the transcript stays complete.
func (d *demo) check(ok bool, format string, args ...any) {
	if !ok {
		d.failures = append(d.failures, fmt.Sprintf(format, args...))
	}
}

// post sends a JSON request to the local API the way its caller would and prints both sides.
func (d *demo) post(caller, path, apiKey string, headers map[string]string, body any) (int, map[string]any) {
	raw := encode(body)
	d.say(caller, "POST %s %s", path, short(raw))
	status, out, respBody, took, err := d.call(path, apiKey, headers, raw)
	if err != nil {
		d.check(false, "POST %s: %v", path, err)
		return 0, nil
	}
	d.say("cxbridge", "%d in %s %s", status, took.Round(time.Millisecond), short(respBody))
	return status, out
}

// call sends a request without printing (for bursts, where a transcript line per call would
// drown the story).
func (d *demo) call(path, apiKey string, headers map[string]string, raw []byte) (int, map[string]any, []byte, time.Duration, error) {
	req, _ := http.NewRequestWithContext(d.ctx, http.MethodPost, d.base+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if apiKey != "" {
		req.Header.Set("x-api-key", apiKey)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, 0, err
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(respBody, &out)
	return resp.StatusCode, out, respBody, time.Since(start), nil
}

func encode(body any) []byte {
	if b, ok := body.([]byte); ok {
		return b
	}
	raw, _ := json.Marshal(body)
	return raw
}

// short renders JSON on one line, cut to fit a terminal.
func short(raw []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		buf.Reset()
		buf.Write(raw)
	}
	s := strings.TrimSpace(buf.String())
	if len(s) > 220 {
		s = s[:217] + "..."
	}
	return s
}
