package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// serve runs the whole product locally until ctx ends (Ctrl-C): every function behind the
// template's routes on 127.0.0.1, the scheduled functions on their schedules.
func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	port := fs.Int("port", 3000, "port of the local API on 127.0.0.1 (0 picks a free one)")
	quiet := fs.Bool("quiet", false, "do not print the functions' log lines")
	params := fs.String("params", "", "JSON file of template parameter or environment overrides (the shape of sam local invoke --env-vars, or parameter name -> value)")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments: " + strings.Join(fs.Args(), " "))
	}
	var logs io.Writer = os.Stderr
	if *quiet {
		logs = io.Discard
	}
	fmt.Fprintln(os.Stderr, "starting DynamoDB Local, the fakes and every function...")
	st, err := startStack(ctx, logs, os.Stderr, *params)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Warm(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: st.API(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	st.ConnectWebhooks("http://" + ln.Addr().String())
	if err := st.RunSchedules(ctx); err != nil {
		return err
	}
	printBanner(os.Stdout, st, "http://"+ln.Addr().String())
	if path, err := writeCLIEnv(st, filepath.Join(os.TempDir(), "cxbridge-local.env")); err != nil {
		fmt.Fprintf(os.Stderr, "the on-call CLI's environment could not be written: %v\n", err)
	} else {
		fmt.Printf("On-call CLI against this stack:\n  go run ./cmd/cxbridge status --env-file %s\n  go run ./cmd/cxbridge health --env-file %s\n\n", path, path)
	}

	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\nstopping...")
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func printBanner(w io.Writer, st *localstack.Stack, base string) {
	fmt.Fprintf(w, "\ncxbridge is running on %s\n\n", base)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tFUNCTION\tAUTH")
	for _, r := range st.Template.Routes() {
		auth := "signature (no API key)"
		if r.ApiKeyRequired {
			auth = "x-api-key"
		}
		fmt.Fprintf(tw, "%s %s%s\t%s\t%s\n", r.Method, base, r.Path, localstack.DirOf(r.Function), auth)
	}
	_ = tw.Flush()
	if scheds, err := st.Schedules(); err == nil && len(scheds) > 0 {
		fmt.Fprintln(w)
		for _, s := range scheds {
			fmt.Fprintf(w, "schedule  %-24s %s\n", s.Function, s.Rule)
		}
	}
	fmt.Fprintf(w, "\nAPI keys  x-api-key: %s (Genesys), %s (ServiceNow)\n\n", localstack.LocalAPIKey, localstack.LocalServiceNowAPIKey)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSTEM\tADDRESS\t")
	fmt.Fprintf(tw, "dynamodb\t%s\tDynamoDB Local, tables %s\n", st.DynamoDB.Endpoint(), strings.Join([]string{st.Tables.State, st.Tables.Idempotency}, ", "))
	fmt.Fprintf(tw, "secretsmanager\t%s\tfake\n", st.Secrets.URL())
	for _, e := range st.Endpoints() {
		kind := "REAL (from the environment)"
		if e.Simulated {
			kind = "fake"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.System, e.URL, kind)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nTry:\n  curl -s -H 'x-api-key: %s' -H 'Content-Type: application/json' \\\n    -d '{\"customerId\":\"%s\"}' %s/telemetry/tier\n\nCtrl-C stops everything.\n",
		localstack.LocalAPIKey, localstack.CustomerCritical, base)
}

// writeCLIEnv writes integration-health's environment in this stack (the state table, every
// system's address and secret ids, the local AWS endpoints) where `cxbridge --env-file` reads
// it, so the on-call CLI works against `make run` as it does against a deployed stack.
func writeCLIEnv(st *localstack.Stack, path string) (string, error) {
	env, err := st.Env("IntegrationHealthFunction")
	if err != nil {
		return "", err
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# cxbridge local stack: go run ./cmd/cxbridge status|health --env-file <this file>\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, strconv.Quote(env[k]))
	}
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}
