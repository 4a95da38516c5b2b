package escalation

import (
	"fmt"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/config"
)

// Repeat callers (seed 001's "create or updated", seed 002's many calls to one ticket).
//
// A caller who already has an open ticket that cxbridge raised in the last RepeatCallers.Window
// does not get a second one: the new call is added to that ticket, as a work note (ServiceNow)
// or an internal comment (Jira), and answered "updated" with its key. It applies to the
// triggers in RepeatCallers.Triggers only, and only when the caller is known for sure: a
// callerSysId for ServiceNow, a customer accountId (customerAccountId, or the one found for
// customerEmail) for Jira. Without one nothing is merged; two different callers are never
// merged.
//
// The note carries the escalation id, so a note whose answer was lost is looked for (the
// incident's sys_journal_field, the request's internal comments: both consistent reads) before
// it is written again; a repeat of the same escalation replays its first answer as any other.

// RepeatCallers says which escalations join their caller's open ticket.
type RepeatCallers struct {
	// Triggers whose escalations join (REPEAT_CALLER_TRIGGERS); none by default.
	Triggers map[Trigger]bool
	// Window: only a ticket created this long ago or less is joined (REPEAT_CALLER_HOURS).
	Window time.Duration
}

// Applies reports whether escalations of trigger t join their caller's open ticket.
func (r RepeatCallers) Applies(t Trigger) bool { return r.Triggers[t] && r.Window > 0 }

// since is the oldest creation time of a ticket that may be joined at now.
func (r RepeatCallers) since(now time.Time) time.Time { return now.Add(-r.Window) }

// loadRepeatCallers reads REPEAT_CALLER_TRIGGERS (comma-separated triggers, "all" or "none")
// and REPEAT_CALLER_HOURS.
func loadRepeatCallers(r *config.Reader) RepeatCallers {
	rc := RepeatCallers{
		Triggers: map[Trigger]bool{},
		Window:   time.Duration(r.Int("REPEAT_CALLER_HOURS", 24, 1, 24*14)) * time.Hour,
	}
	for _, v := range r.List("REPEAT_CALLER_TRIGGERS", nil) {
		switch t := Trigger(strings.ToLower(v)); {
		case t == "none":
		case t == "all":
			for _, t := range Triggers {
				rc.Triggers[t] = true
			}
		case validTrigger(t):
			rc.Triggers[t] = true
		default:
			r.Problem("REPEAT_CALLER_TRIGGERS", "unknown trigger %q; want a comma-separated list of hold_time, vip, wrap_up, manual (or all, none)", v)
		}
	}
	return rc
}

// repeatNote is what a repeat caller's call adds to their open ticket. It names the escalation
// id, which is how a note whose answer was lost is found again.
func (e *Escalation) repeatNote() string {
	return fmt.Sprintf("Another call from this caller (%s, escalation id %s), added to this open ticket instead of raising a new one:\n\n%s",
		e.Trigger.Label(), e.ID, e.details())
}
