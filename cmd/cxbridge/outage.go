package main

import (
	"context"
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
	m := escalation.Master{Key: strings.TrimSpace(*master), SysID: *sysID}
	verified := false
	if !*noVerify {
		if m, verified, err = verifyMaster(ctx, st.aws, *target, m, getenv); err != nil {
			return fmt.Errorf("master %s could not be checked: %w (fix it, or pass --no-verify)", *master, err)
		}
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

func outageOff(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs, table := flags("outage off", getenv)
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
	was, err := st.outage.ClearFlag(ctx, *target)
	if err != nil {
		return err
	}
	if !was {
		fmt.Fprintf(out, "%s outage mode was not on\n", *target)
		return nil
	}
	fmt.Fprintf(out, "%s outage mode OFF: escalations are delivered again; links already made are still noted on the master\n", *target)
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
	pending := map[string]int{}
	refs, err := st.outage.Masters(ctx)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		n, err := st.outage.PendingLinks(ctx, ref)
		if err != nil {
			return err
		}
		pending[ref.Target+"#"+ref.Master.Key] = n
	}
	for _, target := range []string{escalation.Jira, escalation.ServiceNow} {
		f, _, err := st.outage.ReadFlag(ctx, target, true)
		if err != nil {
			return err
		}
		switch {
		case f.Master.Key == "":
			fmt.Fprintf(out, "%-10s  outage mode off\n", target)
		case f.Active:
			fmt.Fprintf(out, "%-10s  outage mode ON, master %s (set by %s at %s)\n", target, f.Master.Key, orDash(f.SetBy), f.SetAt.UTC().Format(time.RFC3339))
		default:
			fmt.Fprintf(out, "%-10s  standby master %s, used while the breaker is open\n", target, f.Master.Key)
		}
		if f.Reason != "" {
			fmt.Fprintf(out, "            reason: %s\n", f.Reason)
		}
		if !f.Until.IsZero() {
			fmt.Fprintf(out, "            ends at %s\n", f.Until.UTC().Format(time.RFC3339))
		}
		b, err := breaker.New(st.db, st.table, breaker.Settings{Name: target}).State(ctx)
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
	for _, ref := range refs {
		fmt.Fprintf(out, "master %s %s: %d call(s) waiting for the next note\n", ref.Target, ref.Master.Key, pending[ref.Target+"#"+ref.Master.Key])
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
