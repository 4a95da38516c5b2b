// Package lookup is the inbound screen pop (seed 001): who is calling, by their number or their
// employee ID, and their three most recent open ServiceNow incidents, in one ServiceNow round
// trip, inside a budget, with a status the Architect flow can branch on when ServiceNow cannot
// answer.
//
// Order of work for one call:
//
//  1. The ANI is normalised to E.164 (phone.go). Any number possible for its country is looked
//     up, listed in the phone metadata or not. A withheld number answers found:false, reason
//     withheld_number; what is not a phone number invalid_number. Neither reaches ServiceNow.
//  2. By number: the sys_user query (trailing digit pieces in phone or mobile_phone) and the
//     incident query (the same groups dot-walked through caller_id, open states, newest
//     sys_updated_on first) run at the same time: one round trip. Candidates are verified
//     exactly; several matches prefer active users, then the most recently updated record, and
//     report matchCount. The incidents are filtered to the chosen user. Only when that list was
//     cut off by the scan limit and holds fewer than three is the user's own incident list read
//     (a rare second round trip).
//  3. No match by number and an employee ID given: the same pair of queries by employee_number
//     (one more round trip). A match teaches ServiceNow the calling number (LearnMode), at the
//     same time as the incident query and the link below.
//  4. With a conversation id, the caller -> waiting conversation link is written to the state
//     table as soon as the caller is known, while the incident query is still running, for
//     priority-sync.
//
// Every ServiceNow call goes through the "servicenow" circuit breaker and a short retry that
// never waits past the budget (a 429 with a long Retry-After is not waited for). When ServiceNow
// is down, slow, rate-limited or the breaker is open, the answer is HTTP 200 with
// status:"unavailable", found:false and a reason, within the budget.
package lookup

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/retry"
)

// ServiceNow is the part of *servicenow.Client the lookup uses.
type ServiceNow interface {
	Query(ctx context.Context, table servicenow.Table, q *servicenow.EncodedQuery, opt servicenow.QueryOptions, out any) error
	SetUserMobilePhone(ctx context.Context, user servicenow.SysID, phone string) error
	UserURL(id servicenow.SysID) string
	IncidentURL(id servicenow.SysID) string
}

// Links records the caller -> waiting conversation link (*callerlink.Store).
type Links interface {
	Put(ctx context.Context, l callerlink.Link) (callerlink.Link, error)
}

// Guard runs a call through the ServiceNow circuit breaker (*breaker.Breaker).
type Guard interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// Service answers lookups.
type Service struct {
	Config     Config
	ServiceNow ServiceNow
	Links      Links // nil: links are not recorded
	Guard      Guard // nil: no breaker
}

// Input is the data action's request. Only a request with neither an ani nor an employeeId
// cannot be served; every other problem with an input is a warning (see clean).
type Input struct {
	ANI            apigw.LooseText `json:"ani"`
	EmployeeID     apigw.LooseText `json:"employeeId"`
	ConversationID apigw.LooseText `json:"conversationId"`
	ParticipantID  apigw.LooseText `json:"participantId"`

	// Set by clean: the ani or employee ID cannot be a number or an ID (too long, control
	// characters), so it answers invalid_number / invalid_employee_id without being parsed.
	badANI, badEmployeeID bool
	warnings              apigw.Warnings
}

// Scan limits: how many candidate users and incidents one query may return. Candidates are
// verified client-side, so these bound work, not correctness (see the follow-up query).
const (
	userScan     = 20
	incidentScan = 25
	maxIncidents = 3
)

// Fields read. Dot-walks through caller_id are evaluated by ServiceNow, so the incident query
// needs nothing from the user query and both run at once.
var (
	userFields = []servicenow.Field{servicenow.FieldSysID, servicenow.FieldUserName, servicenow.FieldName,
		servicenow.FieldPhone, servicenow.FieldMobilePhone, servicenow.FieldEmployeeNumber, servicenow.FieldActive,
		servicenow.FieldUpdatedOn, servicenow.FieldVIP}
	incidentFields = []servicenow.Field{servicenow.FieldSysID, servicenow.FieldNumber, servicenow.FieldShortDescription,
		servicenow.FieldState, servicenow.FieldPriority, servicenow.FieldCallerID, servicenow.FieldCreatedOn,
		servicenow.FieldUpdatedOn}
	fieldCallerEmployeeNumber servicenow.Field = "caller_id.employee_number"
)

// queryRetry allows one quick second attempt when the budget has room for it.
var queryRetry = retry.Policy{Attempts: 2, Base: 50 * time.Millisecond, Max: 200 * time.Millisecond, MinAttempt: 300 * time.Millisecond}

// Handle decodes, validates and answers one request.
func (s *Service) Handle(ctx context.Context, req *apigw.Request) apigw.Response {
	var in Input
	ws, err := apigw.DecodeInput(req.Body, &in)
	if err != nil {
		return err.Response()
	}
	if err := in.clean(ws); err != nil {
		return err.Response()
	}
	observe.SetCorrelationID(ctx, string(in.ConversationID.Text))
	return apigw.OK(s.Lookup(ctx, in))
}

// clean judges the inputs. A caller with neither a number nor an employee ID cannot be looked
// up (400). Anything else is served: a number or ID that cannot be one (longer than 64
// characters, control characters) answers invalid_number / invalid_employee_id as an unparsable
// one does, and a malformed conversationId or participantId is dropped (no waiting link); each
// is a warning. Content is judged later: an invalid number is an answer, not a bad request.
func (in *Input) clean(decoded apigw.Warnings) *apigw.Error {
	ws := decoded
	for _, f := range []struct {
		name string
		v    *apigw.LooseText
		bad  *bool
		what string
	}{{"ani", &in.ANI, &in.badANI, "number"}, {"employeeId", &in.EmployeeID, &in.badEmployeeID, "employee ID"}} {
		v := string(f.v.Text)
		switch {
		case f.v.Malformed != "":
			ws.Add(f.name, "%s instead of text; ignored", f.v.Malformed)
		case len(v) > 64 || strings.IndexFunc(v, unicode.IsControl) >= 0:
			ws.Add(f.name, "longer than 64 characters or holds control characters; answered as an invalid %s", f.what)
			*f.bad = true
		}
	}
	if in.ANI.Text == "" && in.EmployeeID.Text == "" {
		switch {
		case in.ANI.Malformed != "":
			return apigw.Invalid("ani", "invalid_field", "ani must be text (a number or tel:/sip: URI), not %s; or send employeeId", in.ANI.Malformed)
		case in.EmployeeID.Malformed != "":
			return apigw.Invalid("employeeId", "invalid_field", "employeeId must be text, not %s; or send ani", in.EmployeeID.Malformed)
		}
		return &apigw.Error{Status: 400, Code: "missing_field", Field: "ani", Message: "ani or employeeId is required"}
	}
	for _, f := range []struct {
		name string
		v    *apigw.LooseText
	}{{"conversationId", &in.ConversationID}, {"participantId", &in.ParticipantID}} {
		v := string(f.v.Text)
		switch {
		case f.v.Malformed != "":
			ws.Add(f.name, "%s instead of text; ignored", f.v.Malformed)
		case v != "" && (len(v) > 64 || strings.IndexFunc(v, notIDRune) >= 0):
			ws.Add(f.name, "not a Genesys id; ignored (the caller's waiting conversation is not recorded)")
			f.v.Text = ""
		}
	}
	in.warnings = ws
	return nil
}

func notIDRune(r rune) bool {
	return r != '-' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
}

// Lookup answers one call within Config.Timeout (plus the time to assemble the answer).
func (s *Service) Lookup(ctx context.Context, in Input) Result {
	start := time.Now()
	budget, cancel := context.WithTimeout(ctx, s.Config.Timeout)
	defer cancel()
	r, err := s.lookup(budget, in)
	if err != nil {
		r = Result{Status: StatusUnavailable, Reason: reasonFor(err), CallerNumber: r.CallerNumber, LearnedPhone: r.LearnedPhone, ConversationLinked: r.ConversationLinked}
	}
	if r.Incidents == nil {
		r.Incidents = []IncidentSummary{}
	}
	r.completeUserFields(s.Config.UserFields)
	r.LatencyMs = time.Since(start).Milliseconds()
	r.Warnings = in.warnings.Strings()
	in.warnings.Report(ctx)

	m := observe.MetricsFrom(ctx)
	m.Millis("LookupLatency", time.Since(start))
	matched := r.MatchedBy
	if matched == "" {
		matched = "none"
	}
	m.Count("Lookup", 1, observe.D("Status", r.Status), observe.D("MatchedBy", matched))
	if r.Status == StatusUnavailable {
		m.Count("LookupUnavailable", 1, observe.D("Reason", r.Reason))
		slog.WarnContext(ctx, "ServiceNow could not answer the lookup", "reason", r.Reason, "error", err.Error(), "latency_ms", r.LatencyMs)
	} else {
		slog.InfoContext(ctx, "caller looked up", "found", r.Found, "matched_by", r.MatchedBy, "match_count", r.MatchCount,
			"reason", r.Reason, "user_sys_id", r.UserSysID, "incident_count", r.IncidentCount, "learned_phone", r.LearnedPhone,
			"conversation_linked", r.ConversationLinked, "latency_ms", r.LatencyMs)
	}
	return r
}

func (s *Service) phones() Phones { return Phones{Region: s.Config.DefaultRegion} }

// lookup does the work. On error the partial result still carries what side work did.
func (s *Service) lookup(ctx context.Context, in Input) (Result, error) {
	r := Result{Status: StatusOK}
	side := &sideWork{s: s, ctx: ctx, in: in}
	defer side.wait()

	var num Number
	var numErr error
	if in.badANI {
		r.Reason = ReasonInvalidNumber
	} else if in.ANI.Text != "" {
		num, numErr = s.phones().Parse(string(in.ANI.Text))
		switch {
		case errors.Is(numErr, ErrWithheld):
			r.Reason = ReasonWithheld
		case numErr != nil:
			r.Reason = ReasonInvalidNumber
		default:
			r.CallerNumber = num.E164
			side.number = num
			if !num.Listed {
				// looked up all the same; the count shows how often the metadata lags
				observe.MetricsFrom(ctx).Count("LookupUnlistedNumber", 1)
			}
			p := s.phones()
			f, err := s.identify(ctx, byPhoneUsers(num), byPhoneIncidents(num),
				func(u servicenow.User) bool { return p.Same(num, u.Phone) || p.Same(num, u.MobilePhone) },
				func(u servicenow.User) { side.link(u) })
			if err != nil {
				return side.finish(r), err
			}
			if f.found {
				return s.answer(ctx, side, r, f, MatchedByANI)
			}
			r.Reason = ReasonNoMatch
		}
	}
	if in.EmployeeID.Text == "" {
		return side.finish(r), nil
	}
	if in.badEmployeeID {
		r.Reason = ReasonInvalidEmployeeID
		return side.finish(r), nil
	}
	emp, err := s.Config.EmployeeIDs.Parse(string(in.EmployeeID.Text))
	if err != nil {
		r.Reason = ReasonInvalidEmployeeID
		return side.finish(r), nil
	}
	f, err := s.identify(ctx, byEmployeeUsers(emp), byEmployeeIncidents(emp),
		func(u servicenow.User) bool { return strings.EqualFold(u.EmployeeNumber, emp.String()) },
		func(u servicenow.User) {
			side.link(u)
			side.learn(u)
		})
	if err != nil {
		return side.finish(r), err
	}
	if !f.found {
		r.Reason = ReasonNoMatch
		return side.finish(r), nil
	}
	return s.answer(ctx, side, r, f, MatchedByEmployeeID)
}

// answer completes a found result: the caller's incidents (reading them once more only when
// the shared scan was cut off), then the side work.
func (s *Service) answer(ctx context.Context, side *sideWork, r Result, f found, by string) (Result, error) {
	id, _ := f.user.ID()
	var mine []servicenow.Incident
	for _, in := range f.incidents {
		if in.CallerID == f.user.SysID {
			mine = append(mine, in)
		}
	}
	if len(mine) < maxIncidents && f.incidentsTruncated {
		observe.MetricsFrom(ctx).Count("LookupIncidentFollowUp", 1)
		q := servicenow.NewQuery().Where(servicenow.Eq(servicenow.FieldCallerID, id)).Where(servicenow.OpenStates()).OrderByDesc(servicenow.FieldUpdatedOn)
		mine = nil
		err := s.guarded(ctx, func(ctx context.Context) error {
			return s.query(ctx, servicenow.TableIncident, q, servicenow.QueryOptions{Fields: incidentFields, Limit: maxIncidents, Display: servicenow.DisplayAll}, &mine)
		})
		if err != nil {
			return side.finish(r), err
		}
	}
	if len(mine) > maxIncidents {
		mine = mine[:maxIncidents]
	}
	list := make([]IncidentSummary, 0, len(mine))
	for _, in := range mine {
		iid, _ := in.ID()
		list = append(list, summarise(in, s.ServiceNow.IncidentURL(iid)))
	}
	r.Found, r.Reason, r.MatchedBy, r.MatchCount = true, "", by, f.count
	r.UserSysID, r.UserName, r.UserDisplayName, r.UserActive = f.user.SysID, f.user.UserName, f.user.Name, f.user.Active
	r.UserVIP = f.user.VIP
	r.UserURL = s.ServiceNow.UserURL(id)
	for _, uf := range s.Config.UserFields {
		// The display value: a company's or location's name rather than its sys_id, a
		// choice's label; what a flow plays or a script shows.
		r.UserFields = append(r.UserFields, UserField{Output: OutputName(uf), Value: f.record[string(uf)].Label()})
	}
	r.setIncidents(list)
	if f.count > 1 {
		observe.MetricsFrom(ctx).Count("LookupSeveralUsers", 1, observe.D("MatchedBy", by))
	}
	return side.finish(r), nil
}

// found is what one round trip established.
type found struct {
	found              bool
	user               servicenow.User
	record             servicenow.Record // the chosen user's row, for the extra fields
	count              int               // verified matching users
	incidents          []servicenow.Incident
	incidentsTruncated bool
}

// candidate is a sys_user row with its last update, for choosing between several matches.
type candidate struct {
	servicenow.User
	UpdatedAt time.Time
	record    servicenow.Record
}

func (c *candidate) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.User); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &c.record); err != nil {
		return err
	}
	c.UpdatedAt, _ = servicenow.ParseTime(c.record[string(servicenow.FieldUpdatedOn)].Value)
	return nil
}

// recordOf returns the row of the user with sysID.
func recordOf(rows []candidate, sysID string) servicenow.Record {
	for _, c := range rows {
		if c.SysID == sysID {
			return c.record
		}
	}
	return nil
}

// identify runs a user query and an incident query at the same time: one round trip. keep
// verifies a candidate exactly; onUser runs as soon as the caller is chosen, while the incident
// query may still be in flight.
func (s *Service) identify(ctx context.Context, users, incidents *servicenow.EncodedQuery, keep func(servicenow.User) bool, onUser func(servicenow.User)) (found, error) {
	var f found
	err := s.guarded(ctx, func(ctx context.Context) error {
		// One failing query ends the other: the answer is "unavailable" either way.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		var userErr, incErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			var rows []candidate
			// Display values as well as values: the extra fields are shown as the instance
			// shows them (a company's name, not its sys_id); matching reads the values.
			opt := servicenow.QueryOptions{Fields: append(userFields[:len(userFields):len(userFields)], s.Config.UserFields...), Limit: userScan, Display: servicenow.DisplayAll}
			if userErr = s.query(ctx, servicenow.TableUser, users, opt, &rows); userErr != nil {
				cancel()
				return
			}
			if len(rows) == userScan {
				observe.MetricsFrom(ctx).Count("LookupCandidatesTruncated", 1)
			}
			f.user, f.count = choose(rows, keep)
			f.found = f.count > 0
			f.record = recordOf(rows, f.user.SysID)
			if f.found && onUser != nil {
				onUser(f.user)
			}
		}()
		go func() {
			defer wg.Done()
			if incErr = s.query(ctx, servicenow.TableIncident, incidents, servicenow.QueryOptions{Fields: incidentFields, Limit: incidentScan, Display: servicenow.DisplayAll}, &f.incidents); incErr != nil {
				cancel()
			}
			f.incidentsTruncated = len(f.incidents) == incidentScan
		}()
		wg.Wait()
		return firstCause(userErr, incErr)
	})
	return f, err
}

// choose returns the best verified candidate and how many verified: active users first, then
// the most recently updated record, then the lowest sys_id (so the answer is stable).
func choose(rows []candidate, keep func(servicenow.User) bool) (servicenow.User, int) {
	var ok []candidate
	for _, c := range rows {
		if keep(c.User) {
			ok = append(ok, c)
		}
	}
	if len(ok) == 0 {
		return servicenow.User{}, 0
	}
	sort.SliceStable(ok, func(i, j int) bool {
		a, b := ok[i], ok[j]
		if a.Active != b.Active {
			return a.Active
		}
		if !a.UpdatedAt.Equal(b.UpdatedAt) {
			return a.UpdatedAt.After(b.UpdatedAt)
		}
		return a.SysID < b.SysID
	})
	return ok[0].User, len(ok)
}

// firstCause prefers a real failure over the cancellation it caused in the other query.
func firstCause(errs ...error) error {
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			canceled = err
		default:
			return err
		}
	}
	return canceled
}

// guarded runs fn through the breaker.
func (s *Service) guarded(ctx context.Context, fn func(context.Context) error) error {
	if s.Guard == nil {
		return fn(ctx)
	}
	return s.Guard.Do(ctx, fn)
}

// query is one Table API read with a quick retry inside the budget.
func (s *Service) query(ctx context.Context, table servicenow.Table, q *servicenow.EncodedQuery, opt servicenow.QueryOptions, out any) error {
	_, err := retry.Do(ctx, queryRetry, func(ctx context.Context, _ int) error {
		return s.ServiceNow.Query(ctx, table, q, opt, out)
	})
	return err
}

// write is one Table API write with a quick retry inside the budget (setting a field to a
// value is safe to repeat).
func (s *Service) write(ctx context.Context, fn func(context.Context) error) error {
	_, err := retry.Do(ctx, queryRetry, func(ctx context.Context, _ int) error { return fn(ctx) })
	return err
}

// The queries. Every value is a servicenow.Digits or a servicenow.Token, so nothing from the
// caller but digits and a pattern-checked ID can reach sysparm_query.

func byPhoneUsers(n Number) *servicenow.EncodedQuery {
	q := servicenow.NewQuery()
	for _, g := range n.Groups {
		q.Where(servicenow.Like(servicenow.FieldPhone, g), servicenow.Like(servicenow.FieldMobilePhone, g))
	}
	return q
}

func byPhoneIncidents(n Number) *servicenow.EncodedQuery {
	q := servicenow.NewQuery()
	for _, g := range n.Groups {
		q.Where(servicenow.Like(servicenow.FieldCallerPhone, g), servicenow.Like(servicenow.FieldCallerMobilePhone, g))
	}
	return q.Where(servicenow.OpenStates()).OrderByDesc(servicenow.FieldUpdatedOn)
}

func byEmployeeUsers(emp servicenow.Token) *servicenow.EncodedQuery {
	return servicenow.NewQuery().Where(servicenow.Eq(servicenow.FieldEmployeeNumber, emp))
}

func byEmployeeIncidents(emp servicenow.Token) *servicenow.EncodedQuery {
	return servicenow.NewQuery().Where(servicenow.Eq(fieldCallerEmployeeNumber, emp)).Where(servicenow.OpenStates()).OrderByDesc(servicenow.FieldUpdatedOn)
}

// reasonFor names why ServiceNow could not be used.
func reasonFor(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, breaker.ErrOpen):
		return ReasonBreakerOpen
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	}
	switch connectors.KindOf(err) {
	case connectors.KindRateLimited:
		return ReasonRateLimited
	case connectors.KindUnauthorized, connectors.KindForbidden:
		return ReasonUnauthorized
	case connectors.KindRejected, connectors.KindNotFound, connectors.KindConflict, connectors.KindBadResponse:
		return ReasonRejected
	case connectors.KindConfig:
		return ReasonConfiguration
	default:
		return ReasonUnavailable
	}
}
