package escalation

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/observe"
)

// JiraAPI is the part of the Jira client the target uses.
type JiraAPI interface {
	CreateRequest(ctx context.Context, in jira.NewRequest) (*jira.CustomerRequest, error)
	ResolveCustomer(ctx context.Context, serviceDeskID, email, displayName string) (string, error)
	SearchIssues(ctx context.Context, s jira.Search) (*jira.SearchResult, error)
	AddComment(ctx context.Context, issueIDOrKey, body string, public bool) (*jira.Comment, error)
	GetRequest(ctx context.Context, issueIDOrKey string) (*jira.CustomerRequest, error)
	ListComments(ctx context.Context, issueIDOrKey string, f jira.CommentFilter) ([]jira.Comment, error)
}

// JiraTarget raises escalations as JSM customer requests.
//
// Every request carries the marker "cxb-<escalation id>" in JIRA_KEY_FIELD (a label by
// default; then also the label "cxbridge", which marks every request cxbridge raised). A create
// whose outcome is unknown (connectors.InDoubt: a timeout or reset after the request was sent,
// any 5xx, an unreadable 201) may have made the request, so it is never repeated blind: the
// attempt ends with a *DeferError and the escalation is queued as "verifying". JQL search is
// the only way to find the request again and it is eventually consistent, so the next attempt
// searches for the marker only once SearchLag has passed since the doubt began, and creates
// only when the search finds nothing then. A Retry-After on the failed create pushes that moment
// further out, never earlier.
//
// A repeat caller (repeat.go) joins the customer's open request instead: same reporter, same
// project, not done, raised by cxbridge, created within the window. The call becomes an
// internal comment naming the escalation id; the comment list is a consistent read, so a
// comment whose answer was lost is looked for there before anything is written again.
type JiraTarget struct {
	API    JiraAPI
	Config JiraConfig
	Repeat RepeatCallers
	Now    func() time.Time
}

// Name is "jira".
func (t *JiraTarget) Name() string { return Jira }

// Marker is what a request carries to be found again.
func Marker(id string) string { return "cxb-" + id }

// RequestLabel is the label every request cxbridge raises carries (with JIRA_KEY_FIELD labels),
// how a repeat caller's open request is told from requests raised by people or other tools.
const RequestLabel = "cxbridge"

func (t *JiraTarget) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// project applies seed 002's project-key rules and returns the key and why it was chosen.
func (t *JiraTarget) project(e *Escalation) (string, string) {
	c := t.Config
	if c.AlwaysUseDefault {
		return c.DefaultProject, "always the default project"
	}
	if e.Version != "" {
		if e.Product != "" {
			if k, ok := c.VersionProjects[strings.ToLower(e.Product+":"+e.Version)]; ok {
				return k, "version mapping"
			}
		}
		if k, ok := c.VersionProjects[strings.ToLower(e.Version)]; ok {
			return k, "version mapping"
		}
	}
	if e.Product != "" {
		if k, ok := c.ProductProjects[strings.ToLower(e.Product)]; ok {
			return k, "product mapping"
		}
		// Rule 4: the product's name is the project key.
		if k := strings.ToUpper(strings.TrimSpace(e.Product)); projectKeyRe.MatchString(k) {
			if _, ok := c.Projects[k]; ok {
				return k, "product name"
			}
		}
		return c.DefaultProject, "default project (product " + e.Product + " is not mapped)"
	}
	return c.DefaultProject, "default project"
}

// Deliver raises the request, or adds a repeat caller's call to their open request. since, when
// not zero, is the deadline of an earlier attempt that may have written: then the request (and
// the comment) is looked for first.
func (t *JiraTarget) Deliver(ctx context.Context, e *Escalation, since time.Time) (Ticket, error) {
	marker := Marker(e.ID)
	if !since.IsZero() {
		found, err := t.find(ctx, marker)
		if err != nil {
			return Ticket{}, err
		}
		if found != nil {
			return Ticket{Key: found.Key, URL: t.browse(found.Key), Recovered: true}, nil
		}
	}
	key, why := t.project(e)
	p := t.Config.Projects[key]
	slog.DebugContext(ctx, "jira project chosen", "project", key, "rule", why)

	var (
		onBehalf, note string
		resolved       bool
		open           []jira.Issue
	)
	if t.repeats(e) {
		var err error
		onBehalf, note, err = t.reporter(ctx, e, p.ServiceDeskID)
		if err != nil {
			return Ticket{}, err
		}
		resolved = true
		if open, err = t.openRequests(ctx, key, onBehalf); err != nil {
			return Ticket{}, err
		}
		if len(open) > 0 && !since.IsZero() {
			if tk, ok, err := t.joined(ctx, e, open); err != nil || ok {
				return tk, err
			}
		}
	}
	if !since.IsZero() {
		if until := since.Add(t.Config.SearchLag); t.now().Before(until) {
			return Ticket{}, &DeferError{Until: until, Since: since, Reason: "an earlier attempt may have created the request; search may not show it yet"}
		}
	}
	if len(open) > 0 {
		return t.join(ctx, e, open[0])
	}
	if !resolved {
		var err error
		if onBehalf, note, err = t.reporter(ctx, e, p.ServiceDeskID); err != nil {
			return Ticket{}, err
		}
	}
	cr, err := t.API.CreateRequest(ctx, t.request(e, p, marker, onBehalf, note))
	if err != nil && onBehalf != "" && customerRefused(err) {
		// Jira refused the customer (an unknown or inaccessible account): a 400 or 404 proves
		// nothing was created, so the request is raised once more, by the integration account,
		// naming the customer in its description, rather than failing the escalation.
		slog.WarnContext(ctx, "jira refused the customer account; raising as the integration account", "error", err)
		onBehalf, note = "", fmt.Sprintf("Jira refused the customer account %s (%s).%s", onBehalfOf(e, onBehalf), connectorMessage(err), customerNamed(e))
		cr, err = t.API.CreateRequest(ctx, t.request(e, p, marker, "", note))
	}
	if err != nil {
		if connectors.InDoubt(err) {
			// Retrying now could make a second request; look for this one once search
			// has caught up instead (and not before the server's Retry-After).
			now := t.now()
			until := now.Add(t.Config.SearchLag)
			if d, ok := retryAfter(err); ok && now.Add(d).After(until) {
				until = now.Add(d)
			}
			return Ticket{}, &DeferError{Until: until, Since: now, Reason: "the create request's outcome is unknown", Err: err}
		}
		return Ticket{}, err
	}
	url := cr.Links.Agent
	if url == "" || t.Config.BrowseURL != t.Config.BaseURL {
		url = t.browse(cr.IssueKey) // the gateway's links do not open in a browser
	}
	tk := Ticket{Key: cr.IssueKey, URL: url}
	if onBehalf == "" {
		tk.Note = "raised as the integration account: " + note
	}
	return tk, nil
}

// repeats reports whether the escalation may join its customer's open request: its trigger
// joins repeat callers and the customer can be known (an account id, or an e-mail address to
// find it by).
func (t *JiraTarget) repeats(e *Escalation) bool {
	return t.Repeat.Applies(e.Trigger) && (e.CustomerAccountID != "" || e.CustomerEmail != "")
}

// openRequestsLimit bounds the open requests of one customer looked at (a note in doubt is
// looked for on each of them).
const openRequestsLimit = 5

// openRequests returns the customer's open requests in project that cxbridge raised within the
// repeat window, newest first. accountID "" (the customer could not be found) returns none:
// without a customer nothing is joined. A search Jira refuses (a 4xx: the key field cannot be
// searched, say) is logged and counted, and a new request is raised; a failing Jira is an error.
//
// JQL search lags behind creation by seconds: a request raised a moment ago may be missing,
// which yields a second request for the caller, never a wrong join.
func (t *JiraTarget) openRequests(ctx context.Context, project, accountID string) ([]jira.Issue, error) {
	if accountID == "" {
		return nil, nil
	}
	raised := "labels = " + jira.Quote(RequestLabel)
	if t.Config.KeyField != "labels" {
		raised = t.keyFieldJQL() + " is not EMPTY"
	}
	// A relative date ("-24h") does not depend on the integration user's time zone, as an
	// absolute one would.
	jql := fmt.Sprintf("project = %s AND reporter = %s AND %s AND statusCategory != Done AND created >= -%dh ORDER BY created DESC",
		jira.Quote(project), jira.Quote(accountID), raised, int(t.Repeat.Window/time.Hour))
	fields := []string{"labels", "status", "reporter", "created"}
	if t.Config.KeyField != "labels" {
		fields = append(fields, t.Config.KeyField)
	}
	res, err := t.API.SearchIssues(ctx, jira.Search{JQL: jql, Fields: fields, MaxResults: openRequestsLimit})
	if err != nil {
		if connectors.IsOutage(err) {
			return nil, err
		}
		observe.MetricsFrom(ctx).Count("RepeatCallerLookupFailed", 1, observe.D("Target", Jira))
		slog.WarnContext(ctx, "jira refused the search for the caller's open requests; raising a new request", "error", err)
		return nil, nil
	}
	var open []jira.Issue
	for _, is := range res.Issues {
		// What the search asked for, checked again on what it returned: a request of another
		// customer, or one cxbridge did not raise, is never joined.
		_, category := is.Status()
		if is.AccountID("reporter") == accountID && category != "done" && t.raisedByCxbridge(is) {
			open = append(open, is)
		}
	}
	return open, nil
}

// keyFieldJQL names JIRA_KEY_FIELD in JQL (cf[10051]).
func (t *JiraTarget) keyFieldJQL() string {
	return "cf[" + strings.TrimPrefix(t.Config.KeyField, "customfield_") + "]"
}

// raisedByCxbridge reports whether a request carries cxbridge's marker.
func (t *JiraTarget) raisedByCxbridge(is jira.Issue) bool {
	if t.Config.KeyField == "labels" {
		return slices.Contains(is.Labels(), RequestLabel)
	}
	return strings.HasPrefix(is.String(t.Config.KeyField), Marker(""))
}

// joined looks for the escalation's comment on the customer's open requests: an earlier attempt
// may have added it and lost the answer. A request carrying the escalation's own marker was
// created by an earlier attempt.
func (t *JiraTarget) joined(ctx context.Context, e *Escalation, open []jira.Issue) (Ticket, bool, error) {
	for _, is := range open {
		if t.carries(is, Marker(e.ID)) {
			return Ticket{Key: is.Key, URL: t.browse(is.Key), Recovered: true}, true, nil
		}
		cs, err := t.API.ListComments(ctx, is.Key, jira.InternalComments)
		if err != nil {
			return Ticket{}, false, err
		}
		for i := len(cs) - 1; i >= 0; i-- { // the newest are the likeliest
			if strings.Contains(cs[i].Body, repeatMarker(e.ID)) {
				return Ticket{Key: is.Key, URL: t.browse(is.Key), Updated: true, Repeat: true, Recovered: true}, true, nil
			}
		}
	}
	return Ticket{}, false, nil
}

// carries reports whether a request carries marker in the key field.
func (t *JiraTarget) carries(is jira.Issue, marker string) bool {
	if t.Config.KeyField == "labels" {
		return slices.Contains(is.Labels(), marker)
	}
	return is.String(t.Config.KeyField) == marker
}

// repeatMarker is what a repeat caller's comment is found by: its escalation id, as the note
// names it.
func repeatMarker(id string) string { return "escalation id " + id }

// join adds the call to the customer's open request as an internal comment: call details
// (agent, queue, transcript summary, recording link) are for agents, and a public comment would
// also be mailed to the customer.
func (t *JiraTarget) join(ctx context.Context, e *Escalation, is jira.Issue) (Ticket, error) {
	if t.carries(is, Marker(e.ID)) {
		return Ticket{Key: is.Key, URL: t.browse(is.Key), Recovered: true}, nil
	}
	if _, err := t.API.AddComment(ctx, is.Key, e.repeatNote(), false); err != nil {
		if connectors.InDoubt(err) {
			// The comment list is a consistent read: the next attempt looks there first.
			return Ticket{}, &DoubtError{Since: t.now(), Err: err}
		}
		return Ticket{}, err
	}
	return Ticket{Key: is.Key, URL: t.browse(is.Key), Updated: true, Repeat: true}, nil
}

// request builds the create-request body; without onBehalf, the description says why (note).
func (t *JiraTarget) request(e *Escalation, p JiraProject, marker, onBehalf, note string) jira.NewRequest {
	details := e.details()
	if onBehalf == "" {
		details += "\n\nRaised by the integration account: " + note
	}
	fields := map[string]any{}
	vars := e.vars(e.summary(), details)
	for id, tpl := range t.Config.Fields {
		if v, ok := render(tpl, vars); ok {
			fields[id] = v
		}
	}
	if s, ok := fields["summary"].(string); ok {
		fields["summary"] = truncate(strings.ReplaceAll(s, "\n", " "), 250) // a one-line field of at most 255
	}
	if t.Config.KeyField == "labels" {
		labels, _ := fields["labels"].([]any)
		if !slices.Contains(labels, any(RequestLabel)) {
			labels = append(labels, RequestLabel)
		}
		fields["labels"] = append(labels, marker)
	} else {
		fields[t.Config.KeyField] = marker
	}
	return jira.NewRequest{ServiceDeskID: p.ServiceDeskID, RequestTypeID: p.RequestTypeID, Fields: fields, RaiseOnBehalfOf: onBehalf}
}

// customerRefused reports a create that Jira refused with a 400 or 404: for a request raised on
// behalf of a customer, the account is the usual cause (JSM answers 400 for an accountId it
// does not know, or one the integration account may not raise for).
func customerRefused(err error) bool {
	k := connectors.KindOf(err)
	return k == connectors.KindRejected || k == connectors.KindNotFound
}

// onBehalfOf names the account a refused request was raised for.
func onBehalfOf(e *Escalation, accountID string) string {
	if e.CustomerAccountID == "" && e.CustomerEmail != "" {
		return accountID + " (found for " + e.CustomerEmail + ")"
	}
	return accountID
}

// customerNamed says who the customer is, for a request the integration account raises.
func customerNamed(e *Escalation) string {
	var who []string
	if e.CustomerName != "" {
		who = append(who, e.CustomerName)
	}
	if e.CustomerEmail != "" {
		who = append(who, e.CustomerEmail)
	}
	if e.CustomerPhone != "" {
		who = append(who, e.CustomerPhone)
	}
	if len(who) == 0 {
		return ""
	}
	return " The customer is " + strings.Join(who, ", ") + "."
}

// reporter returns the accountId to raise the request for, or "" and why there is none.
// customerAccountId wins; else the customer is found or created by e-mail. When that is
// refused (no permission to create customers, an account the integration cannot see) the
// request is raised as the integration account, which the description says; when Jira is
// failing (5xx, 429, timeouts) the error is returned, so the attempt is retried rather than
// raised for nobody.
func (t *JiraTarget) reporter(ctx context.Context, e *Escalation, deskID string) (string, string, error) {
	if e.CustomerAccountID != "" {
		return e.CustomerAccountID, "", nil
	}
	if e.CustomerEmail == "" {
		return "", "no customer e-mail address or account id was given.", nil
	}
	id, err := t.API.ResolveCustomer(ctx, deskID, e.CustomerEmail, e.CustomerName)
	if err != nil {
		if connectors.IsOutage(err) {
			return "", "", err
		}
		slog.WarnContext(ctx, "jira customer could not be resolved; raising as the integration account", "error", err)
		return "", fmt.Sprintf("the customer account for the given e-mail address could not be found or created (%s).%s", connectors.KindOf(err), customerNamed(e)), nil
	}
	return id, "", nil
}

// find searches for the request carrying marker; nil when there is none.
func (t *JiraTarget) find(ctx context.Context, marker string) (*jira.Issue, error) {
	var jql string
	if t.Config.KeyField == "labels" {
		jql = "labels = " + jira.Quote(marker)
	} else {
		jql = t.keyFieldJQL() + " ~ " + jira.Quote(marker)
	}
	res, err := t.API.SearchIssues(ctx, jira.Search{JQL: jql + " ORDER BY created ASC", Fields: []string{t.Config.KeyField}, MaxResults: 10})
	if err != nil {
		return nil, err
	}
	for i, is := range res.Issues {
		// A text search (~) matches words, not the whole value: keep exact matches only.
		if t.Config.KeyField == "labels" || is.String(t.Config.KeyField) == marker {
			return &res.Issues[i], nil
		}
	}
	return nil, nil
}

func (t *JiraTarget) browse(key string) string { return t.Config.BrowseURL + "/browse/" + key }

// Note adds an internal comment (agents only) to the master request.
func (t *JiraTarget) Note(ctx context.Context, m Master, text string) error {
	_, err := t.API.AddComment(ctx, m.Key, text, false)
	return err
}

// NoteLanded reads the master request's internal comments (JSM's comment list, a consistent
// read) for the note's marker.
func (t *JiraTarget) NoteLanded(ctx context.Context, m Master, token string) (bool, error) {
	cs, err := t.API.ListComments(ctx, m.Key, jira.InternalComments)
	if err != nil {
		return false, err
	}
	for i := len(cs) - 1; i >= 0; i-- { // the newest are the likeliest
		if strings.Contains(cs[i].Body, NoteMarker(token)) {
			return true, nil
		}
	}
	return false, nil
}

// ResolveMaster checks that the master request exists.
func (t *JiraTarget) ResolveMaster(ctx context.Context, m Master) (Master, error) {
	if _, err := t.API.GetRequest(ctx, m.Key); err != nil {
		return m, err
	}
	return m, nil
}

// MasterURL links the master request.
func (t *JiraTarget) MasterURL(m Master) string { return t.browse(m.Key) }

// NoteLimit is the longest note: Jira comments hold 32,767 characters.
func (t *JiraTarget) NoteLimit() int { return 30000 }

// Find looks for what an earlier delivery of the escalation left, as search shows it now (it
// lags behind creation by seconds): a request carrying its marker, or, for a repeat caller, its
// comment on the customer's open request. create-escalation asks before delivering when the
// idempotency store cannot tell whether the escalation was delivered before.
func (t *JiraTarget) Find(ctx context.Context, e *Escalation) (Ticket, bool, error) {
	found, err := t.find(ctx, Marker(e.ID))
	if err != nil {
		return Ticket{}, false, err
	}
	if found != nil {
		return Ticket{Key: found.Key, URL: t.browse(found.Key), Recovered: true}, true, nil
	}
	if !t.repeats(e) {
		return Ticket{}, false, nil
	}
	key, _ := t.project(e)
	accountID, _, err := t.reporter(ctx, e, t.Config.Projects[key].ServiceDeskID)
	if err != nil {
		return Ticket{}, false, err
	}
	open, err := t.openRequests(ctx, key, accountID)
	if err != nil || len(open) == 0 {
		return Ticket{}, false, err
	}
	return t.joined(ctx, e, open)
}
