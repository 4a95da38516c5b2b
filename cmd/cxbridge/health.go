package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/health"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// runHealth runs integration-health's checks from this machine with the stack's configuration
// (the environment, or --env-file) and fails when any check fails.
func runHealth(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, _ := flags("health", getenv)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	r := config.New(getenv)
	cfg := health.LoadConfig(r)
	if err := r.Err(); err != nil {
		return usageError("health: the configuration has problems:\n" + err.Error())
	}
	if len(cfg.Systems()) == 0 {
		return usageError("health: no system is configured: set JIRA_BASE_URL, SERVICENOW_BASE_URL, GENESYS_SECRET_ID, MESSAGEBIRD_WEBHOOK_URL or TELEMETRY_URL (or pass --env-file with the stack's configuration)")
	}
	awsCfg, err := store.LoadAWS(ctx)
	if err != nil {
		return err
	}
	checker := health.NewChecker(cfg, secrets.NewFromConfig(awsCfg), connectors.DefaultHTTPClient)
	rep := checker.Run(ctx)
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printResults(out, rep.Results, true)
		fmt.Fprintf(out, "\n%d checks of %s: %d failed, %d warnings (%s)\n", len(rep.Results), strings.Join(cfg.Systems(), ", "),
			rep.Failed, rep.Warnings, (time.Duration(rep.Duration) * time.Millisecond).Round(time.Millisecond))
	}
	if !rep.OK() {
		return fmt.Errorf("%d integration-health check(s) failed", rep.Failed)
	}
	return nil
}

// printResults prints one line per result and, under a failure or warning, what to do. With
// all false, passing checks are counted instead of listed.
func printResults(out io.Writer, results []health.Result, all bool) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSTEM\tCHECK\tTARGET\tRESULT\tHTTP\tDETAIL")
	passed := 0
	for _, r := range results {
		if !all && r.Status == health.OK {
			passed++
			continue
		}
		res := string(r.Status)
		if r.Status == health.Failed {
			res = "FAILED"
		}
		httpStatus := "-"
		if r.HTTPStatus != 0 {
			httpStatus = fmt.Sprint(r.HTTPStatus)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.System, r.Check, orDash(r.Target), res, httpStatus, r.Detail)
		if r.Fix != "" {
			fmt.Fprintf(tw, "\t\t\t\t\tfix: %s\n", r.Fix)
		}
		if r.Status == health.Failed && r.Call != "" {
			fmt.Fprintf(tw, "\t\t\t\t\tcall: %s\n", r.Call)
		}
	}
	_ = tw.Flush()
	if passed > 0 {
		fmt.Fprintf(out, "(%d passing checks not listed)\n", passed)
	}
}
