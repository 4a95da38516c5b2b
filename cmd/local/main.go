// Command local runs cxbridge on this machine.
//
//	go run ./cmd/local invoke <function> <event.json>
//
// invoke starts the local stack (DynamoDB Local, the Secrets Manager fake and a fake for every
// external system whose *_BASE_URL / TELEMETRY_URL is not set), builds the function's real
// bootstrap, runs it under the Runtime API emulator exactly as `sam local invoke` would, sends
// the event and prints the response. The function's log lines go to stderr.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
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
  local invoke <function> <event.json>   run one event through a function (e.g. telemetry-tier events/telemetry-tier/critical.json)`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError(usage)
	}
	switch args[0] {
	case "invoke":
		if len(args) != 3 {
			return usageError(usage)
		}
		return invoke(ctx, args[1], args[2])
	default:
		return usageError(usage)
	}
}

func invoke(ctx context.Context, function, eventPath string) error {
	event, err := os.ReadFile(eventPath)
	if err != nil {
		return err
	}
	st, err := startStack(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	fn, err := st.Function(ctx, function)
	if err != nil {
		return err
	}
	// A signed event is signed again at the current time, as its sender would.
	if event, err = st.PrepareEvent(ctx, eventPath, event); err != nil {
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
