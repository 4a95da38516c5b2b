// Command cxbridge is the on-call's tool for a deployed cxbridge stack. It writes the same
// state-table items the functions read, through the AWS SDK and the caller's AWS credentials.
//
//	cxbridge outage on  --target servicenow --master INC0012345 [--message "..."] [--reason "..."] [--for 4h] [--standby] [--no-verify]
//	cxbridge outage off|end --target servicenow
//	cxbridge outage confirm --target servicenow [--message "..."]
//	cxbridge outage replace --target servicenow --master INC0012345 [--master-sys-id ...] [--message "..."] [--no-verify]
//	cxbridge outage status
//	cxbridge escalations queued|failed
//	cxbridge escalations retry <escalation id>|--all
//	cxbridge health [--json]
//	cxbridge status [--json]
//	cxbridge genesys export --api-url <ApiUrl> | --stack <stack name> [--out genesys-actions]
//
// The state table is --table or STATE_TABLE (the stack's StateTableName output). "outage on"
// checks the master ticket first when the target is reachable (JIRA_BASE_URL or
// SERVICENOW_BASE_URL, with credentials from JIRA_SECRET_ID / SERVICENOW_SECRET_ID in Secrets
// Manager): a mistyped master would have every caller told about a ticket that does not exist.
//
// health runs integration-health's checks from this machine with the stack's configuration and
// exits 1 when one fails; status is the on-call's one screen: breakers, outage flags, the outbox
// and the last integration-health result of every check. --env-file <file> reads the stack's
// configuration from a file (KEY=VALUE lines, or the JSON of a function's environment).
// "genesys export" writes the shipped Genesys data actions (integrations/genesys) with the
// stack's API URL in place of CXBRIDGE_API_URL, ready to import; --stack reads it from the
// CloudFormation stack's ApiUrl output with the caller's AWS credentials and region.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "cxbridge:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError string

func (u usageError) Error() string { return string(u) }

const usage = `usage:
  cxbridge outage on --target jira|servicenow --master <key> [--message <text>] [--reason <text>] [--for <duration>] [--standby] [--no-verify]
  cxbridge outage off|end --target jira|servicenow
  cxbridge outage confirm --target jira|servicenow [--message <text>]      an automatic outage stays until ended
  cxbridge outage replace --target jira|servicenow --master <key> [--message <text>] [--no-verify]
  cxbridge outage status
  cxbridge escalations queued|failed
  cxbridge escalations retry <escalation id>|--all
  cxbridge genesys export --api-url <ApiUrl> | --stack <stack name> [--out genesys-actions] [--from integrations/genesys]
  cxbridge health [--json]                 integration-health's checks, from here; exit 1 when one fails
  cxbridge status [--json]                 breakers, outage mode, the outbox, the last health checks
common flags: --table <state table> (default $STATE_TABLE), --env-file <file> (the stack's configuration)`

func run(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	args, getenv, err := withEnvFile(args, getenv)
	if err != nil {
		return err
	}
	if len(args) >= 1 {
		switch args[0] {
		case "health":
			return runHealth(ctx, args[1:], out, getenv)
		case "status":
			return runStatus(ctx, args[1:], out, getenv)
		}
	}
	if len(args) < 2 {
		return usageError(usage)
	}
	switch args[0] + " " + args[1] {
	case "outage on":
		return outageOn(ctx, args[2:], out, getenv)
	case "outage off", "outage end":
		return outageEnd(ctx, args[2:], out, getenv)
	case "outage confirm":
		return outageConfirm(ctx, args[2:], out, getenv)
	case "outage replace":
		return outageReplace(ctx, args[2:], out, getenv)
	case "outage status":
		return outageStatus(ctx, args[2:], out, getenv)
	case "escalations queued", "escalations failed":
		return listEscalations(ctx, args[1], args[2:], out, getenv)
	case "escalations retry":
		return retryEscalations(ctx, args[2:], out, getenv)
	case "genesys export":
		return genesysExport(ctx, args[2:], out)
	}
	return usageError(usage)
}
