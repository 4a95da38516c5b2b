package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cxbridge/cxbridge/pkg/escalation"
)

// maxList bounds what one listing reads.
const maxList = 500

func listEscalations(ctx context.Context, which string, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("escalations "+which, getenv)
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := open(ctx, *table)
	if err != nil {
		return err
	}
	var items []escalation.Item
	if which == "failed" {
		items, err = st.outbox.Failed(ctx, maxList)
	} else {
		items, err = st.outbox.Pending(ctx, maxList)
	}
	if err != nil {
		return err
	}
	if len(items) == 0 {
		fmt.Fprintf(out, "no %s escalations\n", which)
		return nil
	}
	for _, it := range items {
		e := it.Escalation
		when := "due " + it.Due.UTC().Format(time.RFC3339)
		if which == "failed" {
			when = "failed " + it.FailedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(out, "%s  %-10s  %-9s  conversation %s  %s  attempts %d  reason %s\n",
			e.ID, e.Target, e.Trigger, e.ConversationID, when, it.Attempts, orDash(it.Reason))
		if it.LastError != "" {
			fmt.Fprintf(out, "    last error: %s\n", it.LastError)
		}
	}
	return nil
}

func retryEscalations(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("escalations retry", getenv)
	all := fs.Bool("all", false, "retry every failed escalation")
	maxAge := fs.Duration("max-age", 24*time.Hour, "how long the retried escalation may stay queued")
	id := ""
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if (id == "") == !*all {
		return usageError("escalations retry: give an escalation id or --all")
	}
	st, err := open(ctx, *table)
	if err != nil {
		return err
	}
	failed, err := st.outbox.Failed(ctx, maxList)
	if err != nil {
		return err
	}
	n := 0
	for _, it := range failed {
		if !*all && it.Escalation.ID != id {
			continue
		}
		err := st.outbox.Retry(ctx, it, *maxAge)
		switch {
		case errors.Is(err, escalation.ErrAlreadyQueued):
			fmt.Fprintf(out, "%s is already queued\n", it.Escalation.ID)
		case err != nil:
			return err
		default:
			n++
			fmt.Fprintf(out, "%s queued again (conversation %s, %s)\n", it.Escalation.ID, it.Escalation.ConversationID, it.Escalation.Target)
		}
	}
	if n == 0 && !*all {
		return fmt.Errorf("no failed escalation %s", id)
	}
	fmt.Fprintf(out, "%d escalation(s) queued; escalation-redrive delivers them within a minute\n", n)
	return nil
}
