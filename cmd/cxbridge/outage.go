package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/health"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// state is the stack's state table, opened through the caller's AWS configuration.
type state struct {
	aws    aws.Config
	db     *dynamodb.Client
	table  string
	outage *escalation.Outage
	outbox *escalation.Outbox
}

func open(ctx context.Context, table string) (*state, error) {
	if table == "" {
		return nil, usageError("the state table is unknown: pass --table or set STATE_TABLE (the stack's StateTableName output)")
	}
	cfg, err := store.LoadAWS(ctx)
	if err != nil {
		return nil, err
	}
	// An operator's machine may be a continent away from the table: calls get seconds, not the
	// functions' milliseconds.
	db := store.NewDynamoDB(cfg, store.Bounds{CallTimeout: 10 * time.Second})
	return &state{aws: cfg, db: db, table: table,
		outage: &escalation.Outage{DB: db, Table: table, CacheFor: -1},
		outbox: &escalation.Outbox{DB: db, Table: table}}, nil
}

func flags(name string, getenv func(string) string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	table := fs.String("table", getenv("STATE_TABLE"), "state table")
	return fs, table
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError(fmt.Sprintf("%s: %v\n%s", fs.Name(), err, usage))
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("%s: unexpected %q\n%s", fs.Name(), fs.Arg(0), usage))
	}
	return nil
}

func checkTarget(t string) error {
	if t != escalation.Jira && t != escalation.ServiceNow {
		return usageError("--target must be jira or servicenow")
	}
	return nil
}

func outageOn(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("outage on", getenv)
	target := fs.String("target", "", "jira or servicenow")
	master := fs.String("master", "", "master incident number or request key")
	sysID := fs.String("master-sys-id", "", "the master incident's sys_id (ServiceNow), if known")
	message := fs.String("message", "", "what the IVR may play")
	reason := fs.String("reason", "", "why, for the record")
	lasts := fs.Duration("for", 0, "turn off automatically after this long")
	standby := fs.Bool("standby", false, "use the master only while the target's breaker is open")
	noVerify := fs.Bool("no-verify", false, "do not check the master ticket")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkTarget(*target); err != nil {
		return err
	}
	if strings.TrimSpace(*master) == "" {
		return usageError("--master is required: the incident number or request key calls are linked to")
	}
	st, err := open(ctx, *table)
	if err != nil {
		return err
	}
	m, verified, err := st.master(ctx, *target, *master, *sysID, *noVerify, getenv)
	if err != nil {
		return err
	}
	f := escalation.Flag{Target: *target, Active: !*standby, Master: m, Message: *message, Reason: *reason, SetBy: getenv("USER")}
	if *lasts > 0 {
		f.Until = time.Now().Add(*lasts)
	}
	if err := st.outage.SetFlag(ctx, f); err != nil {
		return err
	}
	mode := "ON: every escalation is linked to"
	if *standby {
		mode = "STANDBY: while the breaker is open, escalations are linked to"
	}
	fmt.Fprintf(out, "%s outage mode %s %s\n", *target, mode, m.Key)
	if !verified {
		fmt.Fprintf(out, "  master not checked (set %s_BASE_URL to check it)\n", strings.ToUpper(*target))
	}
	if f.Message != "" {
		fmt.Fprintf(out, "  callers hear: %s\n", f.Message)
	} else {
		fmt.Fprintln(out, "  callers hear the deployment's OUTAGE_MESSAGE")
	}
	if !f.Until.IsZero() {
		fmt.Fprintf(out, "  ends at %s\n", f.Until.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(out, "  functions see it within a second; links are noted on the master once a minute")
	return nil
}

// master is the master ticket --master names, checked in the target unless noVerify; verified
// says it was checked.
func (st *state) master(ctx context.Context, target, key, sysID string, noVerify bool, getenv func(string) string) (m escalation.Master, verified bool, err error) {
	m = escalation.Master{Key: strings.TrimSpace(key), SysID: sysID}
	if noVerify {
		return m, false, nil
	}
	if m, verified, err = verifyMaster(ctx, st.aws, target, m, getenv); err != nil {
		return m, false, fmt.Errorf("master %s could not be checked: %w (fix it, or pass --no-verify)", key, err)
	}
	return m, verified, nil
}

// verifyMaster checks the master ticket when the target's base URL is known. It returns the
// master completed (the ServiceNow sys_id) and whether it was checked.
func verifyMaster(ctx context.Context, cfg aws.Config, target string, m escalation.Master, getenv func(string) string) (escalation.Master, bool, error) {
	sec := secrets.NewFromConfig(cfg)
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	var t escalation.Target
	switch target {
	case escalation.Jira:
		base := getenv("JIRA_BASE_URL")
		if base == "" {
			return m, false, nil
		}
		t = &escalation.JiraTarget{API: jira.New(base, sec, env("JIRA_SECRET_ID", "cxbridge/jira"), nil)}
	default:
		base := getenv("SERVICENOW_BASE_URL")
		if base == "" {
			return m, false, nil
		}
		t = &escalation.ServiceNowTarget{API: servicenow.New(base, sec, env("SERVICENOW_SECRET_ID", "cxbridge/servicenow"), nil)}
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	m, err := t.ResolveMaster(ctx, m)
	return m, err == nil, err
}

// outageEnd turns a target's outage off (outage off, outage end).
func outageEnd(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("outage end", getenv)
	target := fs.String("target", "", "jira or servicenow")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkTarget(*target); err != nil {
		return err
	}
	st, err := open(ctx, *table)
	if err != nil {
		return err
	}
	f, was, err := st.outage.End(ctx, *target, getenv("USER"))
	if err != nil {
		return err
	}
	if !was {
		fmt.Fprintf(out, "%s outage mode was not on\n", *target)
		return nil
	}
	fmt.Fprintf(out, "%s outage mode OFF: escalations are delivered again; links already made are still noted on the master\n", *target)
	if f.Auto && f.Pending {
		fmt.Fprintf(out, "  the automatic outage's master is still pending: escalation-redrive creates it when %s answers, for the calls already linked\n", *target)
	}
	return nil
}

// outageConfirm confirms an automatic outage: it stays until ended, and its alarm clears.
func outageConfirm(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("outage confirm", getenv)
	target := fs.String("target", "", "jira or servicenow")
	message := fs.String("message", "", "what the IVR may play from now on")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkTarget(*target); err != nil {
		return err
	}
	st, err := open(ctx, *table)
	if err != nil {
		return err
	}
	f, err := st.outage.Confirm(ctx, *target, getenv("USER"), *message)
	if errors.Is(err, escalation.ErrNoOutage) {
		return fmt.Errorf("%s has no automatic outage to confirm (cxbridge status shows the outage flags)", *target)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s automatic outage CONFIRMED: it stays until cxbridge outage end --target %s\n", *target, *target)
	fmt.Fprintf(out, "  declared because %s\n", f.Why)
	fmt.Fprintf(out, "  master %s\n", masterText(f))
	return nil
}

// outageReplace gives the target's outage another master ticket (checked like outage on).
func outageReplace(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("outage replace", getenv)
	target := fs.String("target", "", "jira or servicenow")
	master := fs.String("master", "", "the master incident number or request key to use instead")
	sysID := fs.String("master-sys-id", "", "the master incident's sys_id (ServiceNow), if known")
	message := fs.String("message", "", "what the IVR may play from now on")
	noVerify := fs.Bool("no-verify", false, "do not check the master ticket")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkTarget(*target); err != nil {
		return err
	}
	if strings.TrimSpace(*master) == "" {
		return usageError("--master is required: the incident number or request key calls are linked to from now on")
	}
	st, err := open(ctx, *table)
	if err != nil {
		return err
	}
	m, verified, err := st.master(ctx, *target, *master, *sysID, *noVerify, getenv)
	if err != nil {
		return err
	}
	f, err := st.outage.Replace(ctx, *target, m, getenv("USER"), *message)
	if errors.Is(err, escalation.ErrNoOutage) {
		return fmt.Errorf("%s has no outage in force to replace the master of; use cxbridge outage on", *target)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s outage: calls are now linked to %s\n", *target, f.Master.Key)
	if f.Auto {
		fmt.Fprintln(out, "  the automatic outage is confirmed; calls linked before and not yet noted are noted on the new master")
	}
	if !verified {
		fmt.Fprintf(out, "  master not checked (set %s_BASE_URL to check it)\n", strings.ToUpper(*target))
	}
	return nil
}

func outageStatus(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("outage status", getenv)
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := open(ctx, *table)
	if err != nil {
		return err
	}
	masters, err := readMasters(ctx, st)
	if err != nil {
		return err
	}
	now := time.Now()
	outages, err := health.ReadOutages(ctx, st.db, st.table, now)
	if err != nil {
		return err
	}
	for _, o := range outages {
		switch {
		case o.Automatic:
			fmt.Fprintf(out, "%-10s  outage mode ON (automatic), master %s\n", o.Target, orPending(o))
		case o.Active:
			fmt.Fprintf(out, "%-10s  outage mode ON, master %s (set by %s at %s)\n", o.Target, o.Master, orDash(o.SetBy), o.SetAt.UTC().Format(time.RFC3339))
		case o.Standby:
			fmt.Fprintf(out, "%-10s  standby master %s, used while the breaker is open\n", o.Target, o.Master)
		default:
			fmt.Fprintf(out, "%-10s  outage mode off\n", o.Target)
		}
		printOutageDetails(out, o, now, "            ")
		b, err := breaker.New(st.db, st.table, breaker.Settings{Name: o.Target}).State(ctx)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("breaker %s", b.State)
		if b.State == breaker.Open {
			line += " until " + b.OpenUntil.UTC().Format(time.RFC3339)
		}
		if b.ForcedAt(time.Now()) {
			line += " (forced: " + b.ForcedReason + ")"
		}
		fmt.Fprintf(out, "            %s\n", line)
	}
	printMasters(out, masters)
	return nil
}

func printMasters(out io.Writer, masters []MasterStatus) {
	for _, m := range masters {
		fmt.Fprintf(out, "master %s %s: %d call(s) waiting for the next note\n", m.Target, m.Master, m.Pending)
		if m.LastError != "" {
			fmt.Fprintf(out, "  last attempt to create it: %s\n", m.LastError)
		}
	}
}

// printOutageDetails prints what the on-call needs to know of a flag: why it is on, what it
// takes, how it ends, what they can do.
func printOutageDetails(out io.Writer, o health.Outage, now time.Time, indent string) {
	if o.Automatic {
		fmt.Fprintf(out, "%sdeclared automatically by %s at %s: %s\n", indent, orDash(o.SetBy), o.SetAt.UTC().Format(time.RFC3339), o.Why)
		switch {
		case o.Topic != "":
			fmt.Fprintf(out, "%slinks escalations about %s; others are delivered as usual\n", indent, o.Topic)
		default:
			fmt.Fprintf(out, "%slinks the escalations the %s breaker refuses\n", indent, o.Target)
		}
		if o.MasterPending {
			fmt.Fprintf(out, "%smaster pending: escalation-redrive creates it when %s answers; callers are linked meanwhile\n", indent, o.Target)
		}
		if o.Confirmed {
			fmt.Fprintf(out, "%sconfirmed by %s: it stays until cxbridge outage end --target %s\n", indent, orDash(o.ConfirmedBy), o.Target)
		} else {
			fmt.Fprintf(out, "%sNOT CONFIRMED: ends by itself at %s (%s; each call linked moves it on), last linked %s\n", indent,
				o.EndsAt.UTC().Format(time.RFC3339), until(now, o.EndsAt), o.LastLinked.UTC().Format(time.RFC3339))
			fmt.Fprintf(out, "%s  cxbridge outage confirm|replace --master <key>|end --target %s\n", indent, o.Target)
		}
	}
	if o.Reason != "" {
		fmt.Fprintf(out, "%sreason: %s\n", indent, o.Reason)
	}
	if !o.Until.IsZero() {
		fmt.Fprintf(out, "%sends at %s\n", indent, o.Until.UTC().Format(time.RFC3339))
	}
}

func until(now, t time.Time) string {
	if d := t.Sub(now); d > 0 {
		return "in " + d.Round(time.Second).String()
	}
	return "due"
}

// orPending is an outage's master, or why there is none yet.
func orPending(o health.Outage) string {
	if o.MasterPending || o.Master == "" {
		return "pending"
	}
	return o.Master
}

func masterText(f escalation.Flag) string {
	if f.Pending || f.Master.Key == "" {
		return "pending: created when " + f.Target + " answers"
	}
	return f.Master.Key
}

// readMasters lists the master tickets with links and how many wait for the next note; an
// automatic outage's master is read from its record (or shown as pending).
func readMasters(ctx context.Context, st *state) ([]MasterStatus, error) {
	refs, err := st.outage.Masters(ctx)
	if err != nil {
		return nil, err
	}
	out := []MasterStatus{}
	for _, ref := range refs {
		n, err := st.outage.PendingLinks(ctx, ref)
		if err != nil {
			return nil, err
		}
		ms := MasterStatus{Target: ref.Target, Master: ref.Master.Key, Pending: n}
		if ref.OutageID != "" {
			ms.OutageID = ref.OutageID
			rec, _, err := st.outage.Record(ctx, ref.Target, ref.OutageID)
			if err != nil {
				return nil, err
			}
			ms.Master = rec.Master.Key
			if ms.Master == "" {
				ms.Master = "(pending, outage " + ref.OutageID + ")"
				ms.MasterPending, ms.LastError = true, rec.LastError
			}
		}
		out = append(out, ms)
	}
	return out, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
