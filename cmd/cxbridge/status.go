package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/health"
)

// Status is the on-call's one screen, as --json prints it.
type Status struct {
	At       time.Time              `json:"at"`
	Table    string                 `json:"table"`
	Breakers []health.BreakerState  `json:"breakers"`
	Outages  []health.Outage        `json:"outages"`
	Masters  []MasterStatus         `json:"masters"`
	Outbox   escalation.OutboxStats `json:"outbox"`
	Health   HealthStatus           `json:"health"`
}

// MasterStatus is a master ticket with calls linked to it.
type MasterStatus struct {
	Target  string `json:"target"`
	Master  string `json:"master"`
	Pending int    `json:"pending"` // calls waiting for the next note
	// An automatic outage's master: its outage, and whether the ticket is still to be created.
	OutageID      string `json:"outageId,omitempty"`
	MasterPending bool   `json:"masterPending"`
	// LastError is why the last attempt to create a pending master failed.
	LastError string `json:"lastError,omitempty"`
}

// HealthStatus is integration-health's last run and the last result of every check.
type HealthStatus struct {
	Run     health.Run      `json:"run"`
	Results []health.Result `json:"results"`
}

func runStatus(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("status", getenv)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := open(ctx, *table)
	if err != nil {
		return err
	}
	s := Status{At: time.Now().UTC(), Table: st.table, Masters: []MasterStatus{}}
	if s.Breakers, err = health.ReadBreakers(ctx, st.db, st.table, s.At); err != nil {
		return err
	}
	if s.Outages, err = health.ReadOutages(ctx, st.db, st.table, s.At); err != nil {
		return err
	}
	if s.Masters, err = readMasters(ctx, st); err != nil {
		return err
	}
	if s.Outbox, err = st.outbox.Stats(ctx); err != nil {
		return err
	}
	hs := &health.Store{DB: st.db, Table: st.table}
	if s.Health.Run, s.Health.Results, err = hs.Last(ctx); err != nil {
		return err
	}
	if s.Health.Results == nil {
		s.Health.Results = []health.Result{}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	printStatus(out, s)
	return nil
}

func printStatus(out io.Writer, s Status) {
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339) + " (" + ago(s.At, t) + ")"
	}
	fmt.Fprintf(out, "cxbridge status at %s, state table %s\n", s.At.Format(time.RFC3339), s.Table)

	fmt.Fprintln(out, "\nCIRCUIT BREAKERS")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEPENDENCY\tSTATE\tREFUSING CALLS\tLAST OPENED\tFAILURES\tNOTE")
	for _, b := range s.Breakers {
		note := ""
		switch {
		case b.Forced:
			note = "forced open: " + orDash(b.Reason)
		case b.Open && !b.OpenUntil.IsZero():
			note = "probe after " + b.OpenUntil.UTC().Format(time.RFC3339)
		case b.State == "OPEN":
			note = "open period over; the next call is the probe"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", b.Dependency, b.State, yesNo(b.Open), when(b.OpenedAt), b.Failures, note)
	}
	_ = tw.Flush()

	fmt.Fprintln(out, "\nOUTAGE MODE")
	for _, o := range s.Outages {
		switch {
		case o.Automatic:
			fmt.Fprintf(out, "%-10s  ON, AUTOMATIC: master %s\n", o.Target, orPending(o))
			printOutageDetails(out, o, s.At, "            ")
			continue
		case o.Active:
			fmt.Fprintf(out, "%-10s  ON: every escalation is linked to %s (set by %s at %s)\n", o.Target, o.Master, orDash(o.SetBy), when(o.SetAt))
		case o.Standby:
			fmt.Fprintf(out, "%-10s  standby master %s, used while the breaker is open (set by %s)\n", o.Target, o.Master, orDash(o.SetBy))
		default:
			fmt.Fprintf(out, "%-10s  off\n", o.Target)
		}
		if o.Reason != "" {
			fmt.Fprintf(out, "            reason: %s\n", o.Reason)
		}
		if !o.Until.IsZero() {
			fmt.Fprintf(out, "            ends at %s\n", o.Until.UTC().Format(time.RFC3339))
		}
	}
	printMasters(out, s.Masters)

	fmt.Fprintln(out, "\nESCALATION OUTBOX")
	q := fmt.Sprint(s.Outbox.Queued)
	if s.Outbox.Truncated {
		q += "+"
	}
	fmt.Fprintf(out, "queued %s, oldest accepted %s, next due %s\n", q, when(s.Outbox.Oldest), when(s.Outbox.NextDue))
	fmt.Fprintf(out, "failed %d", s.Outbox.Failed)
	if s.Outbox.Failed > 0 {
		fmt.Fprint(out, " (cxbridge escalations failed; retry with cxbridge escalations retry)")
	}
	fmt.Fprintln(out)

	fmt.Fprintln(out, "\nINTEGRATION HEALTH")
	switch {
	case s.Health.Run.StartedAt.IsZero():
		fmt.Fprintln(out, "no run recorded yet (integration-health runs its checks every HealthCheckIntervalMinutes)")
		return
	case !s.Health.Run.Finished:
		fmt.Fprintf(out, "a run started %s and has not finished; the results below are from the one before\n", when(s.Health.Run.StartedAt))
	default:
		fmt.Fprintf(out, "last run %s: %d checks, %d failed, %d warnings\n", when(s.Health.Run.StartedAt), s.Health.Run.Checks, s.Health.Run.Failed, s.Health.Run.Warnings)
	}
	printResults(out, s.Health.Results, true)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + (-d).Round(time.Second).String()
	}
	return d.Round(time.Second).String() + " ago"
}
