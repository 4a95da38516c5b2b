package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
)

// The fields servicenow-lookup and the escalations read. ServiceNow leaves out a field the
// user may not read (field ACL) instead of refusing the query, so each must be in the answer.
var (
	userFields     = []string{"sys_id", "user_name", "name", "phone", "mobile_phone", "employee_number", "active", "sys_updated_on"}
	incidentFields = []string{"sys_id", "number", "short_description", "state", "priority", "opened_at", "sys_updated_on", "caller_id", "correlation_id"}
)

// checkServiceNow: one read of sys_user (credentials, then the read ACLs on the lookup's
// fields), one of incident (the screen pop's and the escalations' fields) and, only with
// HEALTH_SERVICENOW_WRITE_PROBE, an incident created and deleted again.
func (c *Checker) checkServiceNow(ctx context.Context, rec *recorder) {
	sn := c.ServiceNow
	users := sn.TablePath(servicenow.TableUser)
	q := url.Values{"sysparm_limit": {"1"}, "sysparm_fields": {strings.Join(userFields, ",")}, "sysparm_query": {"active=true"},
		"sysparm_exclude_reference_link": {"true"}}
	call := "GET " + users + "?" + q.Encode()
	auth := rec.probe(CheckAuthentication, "", call)
	read := rec.probe(CheckReadUsers, string(servicenow.TableUser), call)
	var rows []map[string]json.RawMessage
	resp, err := c.serviceNow(ctx, rec, http.MethodGet, "read sys_user", users, q, nil, &rows)
	switch kind := connectors.KindOf(err); {
	case err == nil, kind == connectors.KindForbidden:
		status := http.StatusOK
		if resp != nil {
			status = resp.Status
		} else if s, _ := statusOf(err); s != 0 {
			status = s
		}
		auth.ok(status, "the credentials are accepted")
	case kind == connectors.KindUnauthorized, kind == connectors.KindConfig:
		auth.failed(err, fixes{unauthorized: "ServiceNow refused the credentials (401): check the user (Web service access only, not locked out) or the OAuth client in the secret named by ServiceNowSecretId; client credentials need glide.oauth.inbound.client.credential.grant_type.enabled=true."})
		rec.skip(CheckReadUsers, string(servicenow.TableUser), "authentication failed")
		rec.skip(CheckReadIncidents, string(servicenow.TableIncident), "authentication failed")
		return
	default:
		auth.failed(err, fixes{})
		rec.skip(CheckReadUsers, string(servicenow.TableUser), "ServiceNow did not answer")
		rec.skip(CheckReadIncidents, string(servicenow.TableIncident), "ServiceNow did not answer")
		return
	}
	c.readTable(rec, read, resp, err, rows, userFields, "servicenow-lookup cannot find callers")

	incidents := sn.TablePath(servicenow.TableIncident)
	q = url.Values{"sysparm_limit": {"1"}, "sysparm_fields": {strings.Join(incidentFields, ",")}, "sysparm_query": {"ORDERBYDESCsys_updated_on"},
		"sysparm_exclude_reference_link": {"true"}}
	p := rec.probe(CheckReadIncidents, string(servicenow.TableIncident), "GET "+incidents+"?"+q.Encode())
	rows = nil
	resp, err = c.serviceNow(ctx, rec, http.MethodGet, "read incident", incidents, q, nil, &rows)
	c.readTable(rec, p, resp, err, rows, incidentFields, "the screen pop shows no incidents and escalations cannot find their own")

	if !c.Config.ServiceNow.WriteProbe {
		rec.skip(CheckWriteIncidents, string(servicenow.TableIncident), "write access is proven only by the opt-in probe (HealthServiceNowWriteProbe), which creates an incident and deletes it")
		return
	}
	c.writeProbe(ctx, rec, incidents)
}

// readTable judges a one-row read: refused, empty (a read ACL may hide every row) or missing
// fields (field ACLs).
func (c *Checker) readTable(rec *recorder, p *probe, resp *connectors.Response, err error, rows []map[string]json.RawMessage, fields []string, impact string) {
	table := p.target
	if err != nil {
		p.failed(err, fixes{forbidden: fmt.Sprintf("The integration user may not read %s (403): give its role read access to the table (e.g. itil, or a custom role with a read ACL on %s), then run cxbridge health again.", table, table)})
		return
	}
	if len(rows) == 0 {
		p.done(Warning, resp.Status, fmt.Sprintf("the integration user sees no %s record: the table may be empty, or a read ACL hides every row (then %s)", table, impact),
			fmt.Sprintf("Check the integration user's read access to %s (impersonate it in ServiceNow and open the list).", table))
		return
	}
	var missing []string
	for _, f := range fields {
		if _, ok := rows[0][f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		p.done(Failed, resp.Status, fmt.Sprintf("%s fields missing from the answer (field ACLs): %s; %s", table, strings.Join(missing, ", "), impact),
			fmt.Sprintf("Give the integration user's role read access to %s.%s.", table, strings.Join(missing, ", "+table+".")))
		return
	}
	p.ok(resp.Status, fmt.Sprintf("reads %s with every field cxbridge uses", table))
}

// writeProbe creates a clearly labelled incident and deletes it at once.
func (c *Checker) writeProbe(ctx context.Context, rec *recorder, incidents string) {
	p := rec.probe(CheckWriteIncidents, string(servicenow.TableIncident), "POST "+incidents+", then DELETE it")
	body := map[string]string{
		"short_description": "cxbridge integration-health write probe - deleted automatically",
		"description":       "Created by cxbridge's integration-health check to prove the integration user may create incidents; it deletes this record at once. If you see it, the deletion failed: delete it.",
		"correlation_id":    fmt.Sprintf("cxb.health.%d", c.now().Unix()),
	}
	var created struct {
		SysID  string `json:"sys_id"`
		Number string `json:"number"`
	}
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	resp, err := c.serviceNow(ctx, rec, http.MethodPost, "health write probe", incidents, url.Values{"sysparm_fields": {"sys_id,number"}}, body, &env)
	if err == nil {
		err = json.Unmarshal(env.Result, &created)
	}
	if err != nil {
		p.failed(err, fixes{forbidden: "The integration user may not create incidents (403): give its role create access to incident (e.g. itil); escalations to ServiceNow fail until then."})
		return
	}
	_, derr := c.serviceNow(ctx, rec, http.MethodDelete, "health write probe cleanup", incidents+"/"+created.SysID, nil, nil, nil)
	if derr != nil {
		p.done(Warning, resp.Status, fmt.Sprintf("created %s, but could not delete it (%s)", created.Number, describe(derr)),
			fmt.Sprintf("Delete %s by hand; give the integration user delete access to incident, or turn HealthServiceNowWriteProbe off.", created.Number))
		return
	}
	p.ok(resp.Status, fmt.Sprintf("created %s and deleted it", created.Number))
}

func (c *Checker) serviceNow(ctx context.Context, rec *recorder, method, op, path string, q url.Values, body, out any) (*connectors.Response, error) {
	cctx, cancel := rec.ctx(ctx)
	defer cancel()
	if method == http.MethodGet && out != nil {
		var env struct {
			Result json.RawMessage `json:"result"`
		}
		resp, err := c.ServiceNow.Do(cctx, connectors.Request{Op: "health: " + op, Method: method, Path: path, Query: q}, &env)
		if err != nil {
			return resp, err
		}
		if len(env.Result) > 0 {
			if err := json.Unmarshal(env.Result, out); err != nil {
				return resp, &connectors.Error{System: ServiceNow, Op: op, Status: resp.Status, Kind: connectors.KindBadResponse, Err: err}
			}
		}
		return resp, nil
	}
	return c.ServiceNow.Do(cctx, connectors.Request{Op: "health: " + op, Method: method, Path: path, Query: q, Body: body}, out)
}
