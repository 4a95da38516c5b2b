package lookup

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/observe"
)

// sideWork is what a lookup does besides answering: record the caller's waiting conversation
// and learn a new number. Both start the moment the caller is known and run while the incident
// query finishes; the answer waits for them, but never past the lookup's budget (their context
// is the budget). A failure is logged and counted, never silent, and never fails the lookup.
type sideWork struct {
	s      *Service
	ctx    context.Context
	in     Input
	number Number // the valid calling number, when there is one

	wg      sync.WaitGroup
	mu      sync.Mutex
	linked  bool
	learned bool
}

// link records the caller -> waiting conversation link when the data action sent a
// conversation id.
func (w *sideWork) link(u servicenow.User) {
	if w.s.Links == nil || w.in.ConversationID.Text == "" {
		return
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		_, err := w.s.Links.Put(w.ctx, callerlink.Link{CallerSysID: u.SysID, ConversationID: string(w.in.ConversationID.Text), ParticipantID: string(w.in.ParticipantID.Text)})
		if err != nil {
			observe.MetricsFrom(w.ctx).Count("WaitingLinkFailed", 1)
			slog.WarnContext(w.ctx, "could not record the caller's waiting conversation; priority-sync will not find it", "user_sys_id", u.SysID, "error", err.Error())
			return
		}
		w.mu.Lock()
		w.linked = true
		w.mu.Unlock()
	}()
}

// learn writes the calling number to the user's mobile_phone after an employee-ID match, as
// LearnMode allows.
func (w *sideWork) learn(u servicenow.User) {
	if w.s.Config.Learn == LearnOff || w.number.E164 == "" {
		return
	}
	m := observe.MetricsFrom(w.ctx)
	if w.s.Config.Learn == LearnIfEmpty && strings.TrimSpace(u.MobilePhone) != "" {
		m.Count("PhoneLearnSkipped", 1)
		slog.InfoContext(w.ctx, "calling number not learned: the user already has a mobile number (LOOKUP_LEARN_MOBILE=if_empty)", "user_sys_id", u.SysID)
		return
	}
	id, err := u.ID()
	if err != nil {
		m.Count("PhoneLearnFailed", 1)
		slog.WarnContext(w.ctx, "calling number not learned: ServiceNow sent a malformed sys_id", "error", err.Error())
		return
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := w.s.guarded(w.ctx, func(ctx context.Context) error {
			return w.s.write(ctx, func(ctx context.Context) error { return w.s.ServiceNow.SetUserMobilePhone(ctx, id, w.number.E164) })
		})
		if err != nil {
			m.Count("PhoneLearnFailed", 1)
			slog.WarnContext(w.ctx, "could not add the calling number to the user's mobile_phone; the next call from it will need the employee ID again", "user_sys_id", u.SysID, "error", err.Error())
			return
		}
		m.Count("PhoneLearned", 1)
		slog.InfoContext(w.ctx, "calling number added to the user's mobile_phone", "user_sys_id", u.SysID)
		w.mu.Lock()
		w.learned = true
		w.mu.Unlock()
	}()
}

func (w *sideWork) wait() { w.wg.Wait() }

// finish waits for the side work and reports it in r.
func (w *sideWork) finish(r Result) Result {
	w.wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	r.ConversationLinked, r.LearnedPhone = w.linked, w.learned
	return r
}
