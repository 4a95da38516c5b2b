package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cxbridge/cxbridge/pkg/chaos"
)

// errBrokenPromise makes the command exit non-zero after the report is printed.
var errBrokenPromise = errors.New("chaos: a promise was broken (details above)")

// runChaos runs the fault-injection suite (pkg/chaos) and prints its summary line, and the
// details of every broken promise. Flags default to the CHAOS_* environment variables.
func runChaos(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	escalations := fs.Int("escalations", envInt("CHAOS_ESCALATIONS", 1000), "escalations to raise (CHAOS_ESCALATIONS)")
	parallel := fs.Int("parallel", envInt("CHAOS_PARALLEL", 20), "escalations in flight at once (CHAOS_PARALLEL)")
	conversations := fs.Int("conversations", envInt("CHAOS_CONVERSATIONS", 0), "WhatsApp conversations; default escalations/20 (CHAOS_CONVERSATIONS)")
	seed := fs.Int64("seed", int64(envInt("CHAOS_SEED", 0)), "fault plan seed; 0 picks one (CHAOS_SEED replays a run)")
	redrive := fs.Duration("redrive-every", envDuration("CHAOS_REDRIVE_EVERY", 10*time.Second), "run escalation-redrive this often (CHAOS_REDRIVE_EVERY; deployed: 1m)")
	pauseDB := fs.Duration("pause-dynamodb", envDuration("CHAOS_PAUSE_DYNAMODB", 10*time.Second), "stall DynamoDB this long midway; 0 never (CHAOS_PAUSE_DYNAMODB)")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if *pauseDB == 0 {
		*pauseDB = -1 // chaos.Config: zero is the default, negative is never
	}
	logPath := filepath.Join(os.TempDir(), "cxbridge-chaos-functions.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	rep, err := chaos.Run(ctx, chaos.Config{
		Escalations: *escalations, Parallel: *parallel, Conversations: *conversations, Seed: *seed,
		RedriveEvery: *redrive, PauseDynamoDB: *pauseDB, Logs: logFile, Progress: os.Stderr,
		StateFile: filepath.Join(os.TempDir(), "cxbridge-chaos-state.json"),
	})
	if err != nil {
		return err
	}
	fmt.Println(rep.Summary)
	for _, a := range rep.Accepted {
		fmt.Println()
		fmt.Println(a)
	}
	if rep.Passed {
		return nil
	}
	for _, d := range rep.Details {
		fmt.Println()
		fmt.Println(d)
	}
	fmt.Printf("\nThe functions' log lines are in %s (search for a conversation id); the fakes' final state is in %s.\n", logPath, rep.StateFile)
	return errBrokenPromise
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
