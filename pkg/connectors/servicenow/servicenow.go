// Package servicenow is a client for the parts of the ServiceNow Table API cxbridge uses: the
// screen-pop lookup (sys_user by phone or employee number, the caller's recent open incidents)
// and escalations (create an incident carrying an idempotency key in correlation_id, find it
// again after a crash, append work notes).
//
// Contract (reference/api-contracts.md section 2; ServiceNow docs c_TableAPI.md):
//
//   - Reads use GET /api/now/v2/table/{table}: version 2 answers a query with no rows with 200
//     and an empty array, where version 1 answers 404. A 404 "No Record found" on a list query
//     is still read as an empty result, in case an instance or proxy only serves v1.
//   - Every read sends sysparm_exclude_reference_link=true (reference fields arrive as plain
//     sys_ids unless QueryOptions.ReferenceLinks asks for {link,value} objects; the record types
//     read both), sysparm_no_count=true and sysparm_suppress_pagination_header=true.
//   - Queries are built only with EncodedQuery (query.go): invalid parts of an encoded query are
//     silently ignored by ServiceNow, so no caller-controlled text ever reaches sysparm_query.
//   - Date-time actual values are UTC "yyyy-MM-dd HH:mm:ss" whatever the instance time zone;
//     display values are in the API user's zone and are never parsed (ParseTime).
//   - Writes: POST -> 201 {"result":{...}}, PATCH /{sys_id} -> 200. Unknown fields are ignored
//     by the instance; priority is computed from impact and urgency and never sent. Journal
//     fields (work_notes, comments) append; reading them back returns "".
//   - Errors: {"error":{"message","detail"},"status":"failure"}. 429 carries Retry-After
//     (seconds), X-RateLimit-Limit, X-RateLimit-Reset (a UNIX time) and X-RateLimit-Rule; there
//     is no X-RateLimit-Remaining. The wait surfaces as (*connectors.Error).RetryAfter.
//
// Credentials (SERVICENOW_SECRET_ID, read lazily on the first call, never at cold start):
//
//	{"username":"...","password":"..."}                          HTTP Basic
//	{"clientId":"...","clientSecret":"..."}                      OAuth client_credentials at {base}/oauth_token.do
//	{"clientId":"...","clientSecret":"...","username":"...","password":"..."}   OAuth password grant
//
// The client_credentials grant is off by default on an instance: an admin must create the
// system property glide.oauth.inbound.client.credential.grant_type.enabled=true and set an
// OAuth Application User on the OAuth entity; the token then acts as that user. Tokens are cached
// per execution environment, refreshed a minute before expiry, fetched once for concurrent
// callers, and dropped and fetched again once after a 401.
package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// System is the name used in errors, logs and breaker keys.
const System = "servicenow"

// DefaultLimit is sysparm_limit when QueryOptions.Limit is 0 (the API's own default is 10000).
const DefaultLimit = 100

// DisplayMode is sysparm_display_value.
type DisplayMode string

const (
	// DisplayFalse returns actual values (sys_ids, choice codes, UTC times). The default.
	DisplayFalse DisplayMode = "false"
	// DisplayTrue returns display values only (labels, names, times in the user's zone). The
	// typed records (User, Incident) refuse it.
	DisplayTrue DisplayMode = "true"
	// DisplayAll returns {"display_value","value"} for every field: choice labels and UTC
	// times in one call. The lookup uses it for incident state labels.
	DisplayAll DisplayMode = "all"
)

// QueryOptions shape a read.
type QueryOptions struct {
	Fields  []Field     // sysparm_fields; empty returns every field
	Limit   int         // sysparm_limit; 0 means DefaultLimit
	Offset  int         // sysparm_offset
	Display DisplayMode // sysparm_display_value; "" means DisplayFalse
	// ReferenceLinks asks for reference fields as {"link","value"} objects instead of plain
	// values (sysparm_exclude_reference_link=false).
	ReferenceLinks bool
}

// WriteOptions shape the record a write returns.
type WriteOptions struct {
	Fields  []Field
	Display DisplayMode
}

// Option changes a Client.
type Option func(*Client)

// WithAPIVersion sets the Table API version in the path ("v2" by default; "v1" or "" for the
// unversioned /api/now/table path).
func WithAPIVersion(v string) Option {
	return func(c *Client) {
		if v == "" || v == "v1" {
			c.tablePath = "/api/now/table/"
		} else {
			c.tablePath = "/api/now/" + v + "/table/"
		}
	}
}

// Client calls one ServiceNow instance.
type Client struct {
	api       connectors.Client
	auth      *auth
	base      string
	tablePath string
}

// New returns a client for baseURL (e.g. https://acme.service-now.com, SERVICENOW_BASE_URL).
// Credentials are read from secretID through secrets on first use; no network happens here.
func New(baseURL string, secrets connectors.SecretReader, secretID string, hc *http.Client, opts ...Option) *Client {
	base := strings.TrimRight(baseURL, "/")
	a := &auth{secrets: secrets, secretID: secretID, tokenURL: base + "/oauth_token.do", hc: hc}
	c := &Client{
		auth:      a,
		base:      base,
		tablePath: "/api/now/v2/table/",
		api: connectors.Client{
			System:     System,
			BaseURL:    base,
			HTTP:       hc,
			Creds:      a,
			ParseError: ParseError,
		},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL is the instance URL without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// TokenFetches counts OAuth token exchanges (0 with Basic credentials); for tests.
func (c *Client) TokenFetches() int { return c.auth.fetches() }

// ParseError reads {"error":{"message":"...","detail":"..."},"status":"failure"} into a
// message "message: detail" (there is no error code).
func ParseError(body []byte) (string, string) {
	var e struct {
		Error struct {
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	msg := e.Error.Message
	if d := scalar(e.Error.Detail); d != "" && d != msg {
		if msg != "" {
			msg += ": "
		}
		msg += d
	}
	return "", connectors.Truncate(msg, 200)
}

func rejected(op string, err error) error {
	return &connectors.Error{System: System, Op: op, Kind: connectors.KindRejected, Err: err}
}

func readParams(opt QueryOptions) (url.Values, error) {
	p := url.Values{}
	switch opt.Display {
	case "", DisplayFalse:
		p.Set("sysparm_display_value", "false")
	case DisplayTrue, DisplayAll:
		p.Set("sysparm_display_value", string(opt.Display))
	default:
		return nil, invalid("", "unknown display mode")
	}
	if len(opt.Fields) > 0 {
		f, err := encodeFields(opt.Fields)
		if err != nil {
			return nil, err
		}
		p.Set("sysparm_fields", f)
	}
	p.Set("sysparm_exclude_reference_link", strconv.FormatBool(!opt.ReferenceLinks))
	return p, nil
}

// typed records decode actual values; display values would be mistaken for them (a name for a
// sys_id, a local time for UTC).
func checkDisplay(mode DisplayMode, out any) error {
	if mode != DisplayTrue || out == nil {
		return nil
	}
	switch out.(type) {
	case *User, *[]User, *Incident, *[]Incident:
		return invalid("", "User and Incident need display mode false or all, not true")
	}
	return nil
}

// Query reads up to opt.Limit records of table matching q into out (a pointer to a slice of
// User, Incident, Record or any JSON-decodable type). No rows is an empty slice and no error.
func (c *Client) Query(ctx context.Context, table Table, q *EncodedQuery, opt QueryOptions, out any) error {
	op := "query " + string(table)
	if err := table.check(); err != nil {
		return rejected(op, err)
	}
	if err := checkDisplay(opt.Display, out); err != nil {
		return rejected(op, err)
	}
	enc, err := q.Encode()
	if err != nil {
		return rejected(op, err)
	}
	p, err := readParams(opt)
	if err != nil {
		return rejected(op, err)
	}
	p.Set("sysparm_query", enc)
	limit := opt.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	p.Set("sysparm_limit", strconv.Itoa(limit))
	if opt.Offset > 0 {
		p.Set("sysparm_offset", strconv.Itoa(opt.Offset))
	}
	p.Set("sysparm_no_count", "true")
	p.Set("sysparm_suppress_pagination_header", "true")

	var env struct {
		Result json.RawMessage `json:"result"`
	}
	_, err = c.api.Do(ctx, connectors.Request{Op: op, Method: http.MethodGet, Path: c.tablePath + string(table), Query: p}, &env)
	var ce *connectors.Error
	if errors.As(err, &ce) && ce.Kind == connectors.KindNotFound && strings.HasPrefix(strings.ToLower(ce.Message), "no record found") {
		// Table API v1 answers a query without rows with 404 (docs: "Version 1 returns error
		// code 404 with no results").
		env.Result, err = json.RawMessage("[]"), nil
	}
	if err != nil {
		return err
	}
	if len(env.Result) == 0 || string(env.Result) == "null" {
		env.Result = json.RawMessage("[]")
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return &connectors.Error{System: System, Op: op, Status: http.StatusOK, Kind: connectors.KindBadResponse, Err: err}
	}
	return nil
}

// Get reads one record by sys_id into out. A missing record is a connectors.KindNotFound error.
func (c *Client) Get(ctx context.Context, table Table, id SysID, opt QueryOptions, out any) error {
	op := "get " + string(table)
	if err := table.check(); err != nil {
		return rejected(op, err)
	}
	if id.IsZero() {
		return rejected(op, invalid("", "empty sys_id"))
	}
	if err := checkDisplay(opt.Display, out); err != nil {
		return rejected(op, err)
	}
	p, err := readParams(opt)
	if err != nil {
		return rejected(op, err)
	}
	return c.single(ctx, connectors.Request{Op: op, Method: http.MethodGet, Path: c.tablePath + string(table) + "/" + id.String(), Query: p}, out)
}

// Create inserts a record (POST, 201) built from fields (a map or a struct that marshals to a
// JSON object of field names) and decodes the created record into out, when out is not nil.
// With out == nil the instance is asked not to send the record back (X-no-response-body).
func (c *Client) Create(ctx context.Context, table Table, fields any, opt WriteOptions, out any) error {
	return c.write(ctx, http.MethodPost, "create "+string(table), table, SysID{}, fields, opt, out)
}

// Update changes a record (PATCH /{sys_id}, 200). Fields absent from fields are left alone;
// journal fields append.
func (c *Client) Update(ctx context.Context, table Table, id SysID, fields any, opt WriteOptions, out any) error {
	if id.IsZero() {
		return rejected("update "+string(table), invalid("", "empty sys_id"))
	}
	return c.write(ctx, http.MethodPatch, "update "+string(table), table, id, fields, opt, out)
}

func (c *Client) write(ctx context.Context, method, op string, table Table, id SysID, fields any, opt WriteOptions, out any) error {
	if err := table.check(); err != nil {
		return rejected(op, err)
	}
	if err := checkDisplay(opt.Display, out); err != nil {
		return rejected(op, err)
	}
	p, err := readParams(QueryOptions{Fields: opt.Fields, Display: opt.Display})
	if err != nil {
		return rejected(op, err)
	}
	if method == http.MethodPatch {
		// Not a documented PATCH parameter; the record types read {link,value} anyway.
		p.Del("sysparm_exclude_reference_link")
	}
	path := c.tablePath + string(table)
	if !id.IsZero() {
		path += "/" + id.String()
	}
	req := connectors.Request{Op: op, Method: method, Path: path, Query: p, Body: fields}
	if fields == nil {
		req.Body = map[string]string{}
	}
	if out == nil {
		req.Header = http.Header{"X-No-Response-Body": {"true"}}
	}
	return c.single(ctx, req, out)
}

func (c *Client) single(ctx context.Context, req connectors.Request, out any) error {
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if _, err := c.api.Do(ctx, req, &env); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if len(env.Result) == 0 || env.Result[0] != '{' {
		return &connectors.Error{System: System, Op: req.Op, Kind: connectors.KindBadResponse, Err: errors.New(`answer has no "result" object`)}
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return &connectors.Error{System: System, Op: req.Op, Kind: connectors.KindBadResponse, Err: err}
	}
	return nil
}

// CreateIncident inserts an incident and returns it as the instance stored it (number,
// computed priority, state label). Look for an existing one first with IncidentByCorrelationID
// when the request may be a retry.
func (c *Client) CreateIncident(ctx context.Context, n NewIncident) (Incident, error) {
	body, err := n.body()
	if err != nil {
		return Incident{}, rejected("create incident", err)
	}
	var in Incident
	err = c.Create(ctx, TableIncident, body, WriteOptions{Fields: IncidentFields, Display: DisplayAll}, &in)
	return in, err
}

// IncidentByCorrelationID finds the oldest incident whose correlation_id is key (the
// idempotency key an escalation stored when it created the incident). found is false when none
// exists.
func (c *Client) IncidentByCorrelationID(ctx context.Context, key Token) (in Incident, found bool, err error) {
	q := NewQuery().Where(Eq(FieldCorrelationID, key)).OrderBy(FieldCreatedOn)
	var rows []Incident
	if err := c.Query(ctx, TableIncident, q, QueryOptions{Fields: IncidentFields, Limit: 1, Display: DisplayAll}, &rows); err != nil {
		return Incident{}, false, err
	}
	if len(rows) == 0 {
		return Incident{}, false, nil
	}
	return rows[0], true, nil
}

// AppendJournal appends text to a journal field, FieldWorkNotes (internal) or FieldComments
// (visible to the caller), of a record. Journal fields are write-to-append: this never
// overwrites earlier entries. Text must already be masked.
func (c *Client) AppendJournal(ctx context.Context, table Table, id SysID, field Field, text string) error {
	if field != FieldWorkNotes && field != FieldComments {
		return rejected("append "+string(field), invalid(string(field), "not a journal field"))
	}
	if strings.TrimSpace(text) == "" {
		return rejected("append "+string(field), invalid(string(field), "empty journal entry"))
	}
	return c.Update(ctx, table, id, map[string]string{string(field): text}, WriteOptions{}, nil)
}

// JournalHas reports whether a journal field (FieldWorkNotes or FieldComments) of a record has
// an entry containing marker. It reads sys_journal_field, a consistent read, so it is how a
// caller whose append's answer was lost finds out whether the entry landed before appending it
// again. The integration user needs read access to sys_journal_field: without it the instance
// shows no rows, and an append in doubt would be repeated.
func (c *Client) JournalHas(ctx context.Context, table Table, id SysID, field Field, marker Token) (bool, error) {
	_, found, err := c.JournalFind(ctx, table, field, marker, id)
	return found, err
}

// JournalFind is JournalHas over several records in one read: the record among ids whose
// journal field has an entry containing marker, if any (the first found when several do). It
// verifies an append whose answer was lost when the record it went to may have been one of a
// few (a repeat caller's open incidents).
func (c *Client) JournalFind(ctx context.Context, table Table, field Field, marker Token, ids ...SysID) (SysID, bool, error) {
	op := "query " + string(TableJournal)
	if field != FieldWorkNotes && field != FieldComments {
		return SysID{}, false, rejected(op, invalid(string(field), "not a journal field"))
	}
	if len(ids) == 0 {
		return SysID{}, false, rejected(op, invalid(string(FieldJournalRecord), "no record"))
	}
	tableName, err := ParseKey(string(table))
	if err != nil {
		return SysID{}, false, rejected(op, err)
	}
	record := Eq(FieldJournalRecord, ids[0])
	if len(ids) > 1 {
		vs := make([]Value, len(ids))
		for i, id := range ids {
			vs[i] = id
		}
		record = In(FieldJournalRecord, vs...)
	}
	q := NewQuery().
		Where(record).
		Where(Eq(FieldJournalTable, tableName)).
		Where(Eq(FieldJournalElement, MustKey(string(field)))).
		Where(Like(FieldJournalValue, marker))
	var rows []Record
	if err := c.Query(ctx, TableJournal, q, QueryOptions{Fields: []Field{FieldSysID, FieldJournalRecord}, Limit: 1}, &rows); err != nil {
		return SysID{}, false, err
	}
	if len(rows) == 0 {
		return SysID{}, false, nil
	}
	// Only a record that was asked about counts: an instance that dropped a condition it could
	// not parse would answer with entries of other records.
	for _, id := range ids {
		if rows[0][string(FieldJournalRecord)].Value == id.String() {
			return id, true, nil
		}
	}
	return SysID{}, false, nil
}

// AppendWorkNote appends an internal work note to an incident (the outage mode's batched note
// on the master incident, or a repeat call about an incident that already exists).
func (c *Client) AppendWorkNote(ctx context.Context, incident SysID, note string) error {
	return c.AppendJournal(ctx, TableIncident, incident, FieldWorkNotes, note)
}

// SetUserMobilePhone writes phone (as the caller dialled from, e.g. E.164 "+14155550100") to
// a user's mobile_phone, so the next call from it matches on the first lookup. The number must
// read as a phone number (PhoneDigits) and is sent as given.
func (c *Client) SetUserMobilePhone(ctx context.Context, user SysID, phone string) error {
	if _, err := PhoneDigits(phone); err != nil {
		return rejected("update sys_user", err)
	}
	return c.Update(ctx, TableUser, user, map[string]string{string(FieldMobilePhone): strings.TrimSpace(phone)}, WriteOptions{}, nil)
}

// RecordURL is a deep link that opens a record in the classic UI inside the navigation frame:
// {base}/nav_to.do?uri={table}.do?sys_id={sys_id} (ServiceNow docs "Examples of navigating by
// URL"; the inner "?" and "=" are legal in a query string and a sys_id needs no escaping).
func (c *Client) RecordURL(table Table, id SysID) string {
	if table.check() != nil || id.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s/nav_to.do?uri=%s.do?sys_id=%s", c.base, table, id)
}

// IncidentURL is RecordURL for an incident.
func (c *Client) IncidentURL(id SysID) string { return c.RecordURL(TableIncident, id) }

// UserURL is RecordURL for a sys_user record.
func (c *Client) UserURL(id SysID) string { return c.RecordURL(TableUser, id) }
