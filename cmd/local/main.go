// Command local runs cxbridge on this machine.
//
//	go run ./cmd/local run [-port 3000] [-params overrides.json]      the whole product on 127.0.0.1
//	go run ./cmd/local demo                                           every seed scenario, with a transcript
//	go run ./cmd/local chaos [-escalations 1000] ...                  the fault-injection proof of the promises
//	go run ./cmd/local invoke [-params overrides.json] <function> <event.json>
//	go run ./cmd/local sign <function> <event.json> > signed.json
//
// run serves every route of template.yaml (with the deployed API's API-key check) and runs the
// scheduled functions on their schedules, until Ctrl-C.
//
// invoke starts the local stack (DynamoDB Local, the Secrets Manager fake and a fake for every
// external system whose *_BASE_URL / TELEMETRY_URL is not set), builds the function's real
// bootstrap, runs it under the Runtime API emulator exactly as `sam local invoke` would, sends
// the event and prints the response. The function's log lines go to stderr.
//
// -params names a JSON file of template parameter overrides ({"TierL1QueueId":"..."}), or of
// environment variables in the shape of `sam local invoke --env-vars`
// ({"Parameters":{...},"CreateEscalationFunction":{...}}), so a developer pointing one system at
// a real sandbox also uses its real queue ids, service desks and projects.
//
// chaos runs pkg/chaos: escalations and WhatsApp conversations under injected faults, then
// counts what was lost, doubled or answered late; it prints one summary line and exits 1 when
// a promise was broken.
//
// sign prints an event with its signatures filled in, for `sam local invoke -e`: webhook events
// (messagebird-inbound) hold "local-sign" placeholders, because a MessageBird JWT is valid for
// minutes only. Keys and addresses come from the environment (MESSAGEBIRD_SIGNING_KEY,
// MESSAGEBIRD_WEBHOOK_URL, JIRA_WEBHOOK_SECRET, MESSAGEBIRD_BASE_URL), else the local stack's.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cxbridge/cxbridge/pkg/localstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
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
  local run [-port 3000] [-quiet] [-params overrides.json]     the whole product on 127.0.0.1 until Ctrl-C
  local demo                                                   walk through every seed scenario and check each outcome
  local chaos [-escalations N] [-parallel N] [-seed S] [-redrive-every D] [-pause-dynamodb D] [-conversations N]
                                                               the fault-injection suite (CHAOS_ESCALATIONS, CHAOS_PARALLEL, CHAOS_SEED, ...)
  local invoke [-params overrides.json] <function> <event.json>   run one event through a function (e.g. telemetry-tier events/telemetry-tier/critical.json)
  local sign <function> <event.json>     print the event signed for sam local invoke -e (e.g. messagebird-inbound events/messagebird-inbound/first-message.json)`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError(usage)
	}
	switch args[0] {
	case "run":
		return serve(ctx, args[1:])
	case "demo":
		return runDemo(ctx, args[1:])
	case "chaos":
		return runChaos(ctx, args[1:])
	case "invoke":
		fs := flag.NewFlagSet("invoke", flag.ContinueOnError)
		params := fs.String("params", "", "JSON file of template parameter or environment overrides")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 2 {
			return usageError(usage)
		}
		return invoke(ctx, fs.Arg(0), fs.Arg(1), *params)
	case "sign":
		if len(args) != 3 {
			return usageError(usage)
		}
		event, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		// The function names the preparer; the file name selects a per-file one (a replay, ...).
		signed, err := localstack.Sign(ctx, args[1]+"/"+filepath.Base(args[2]), event, os.Getenv)
		if err != nil {
			return err
		}
		fmt.Println(string(signed))
		return nil
	default:
		return usageError(usage)
	}
}

func invoke(ctx context.Context, function, eventPath, params string) error {
	event, err := os.ReadFile(eventPath)
	if err != nil {
		return err
	}
	st, err := startStack(ctx, os.Stderr, os.Stderr, params)
	if err != nil {
		return err
	}
	defer st.Close()
	began := time.Now()
	fmt.Fprintf(os.Stderr, "  building and starting %s...\n", function)
	fn, err := st.Function(ctx, function)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "  %s ready (%s)\n", function, time.Since(began).Round(100*time.Millisecond))
	// Signed events are signed at send time, as their sender would (pkg/localstack/prepare.go).
	if event, err = st.Prepare(ctx, eventPath, event); err != nil {
		return err
	}
	res, err := fn.Invoke(ctx, event)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, res.Payload, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(res.Payload)
	}
	fmt.Println(pretty.String())
	if res.FunctionError != "" {
		fmt.Fprintf(os.Stderr, "function error (%s) after %s\n", res.FunctionError, res.Duration.Round(1e6))
	} else {
		fmt.Fprintf(os.Stderr, "answered in %s (init %s)\n", res.Duration.Round(1e5), res.InitDuration.Round(1e5))
	}
	return nil
}
