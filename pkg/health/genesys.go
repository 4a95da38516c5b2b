package health

import (
	"context"
	"fmt"
	"net/http"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// probeConversation is a conversation id that does not exist. Genesys answers a call about it
// with 404 when the OAuth client holds the endpoint's permission and with 403 when it does not;
// that permissions are checked before existence is UNCONFIRMED (no primary source), so a 404 is
// reported as "allowed" with that caveat in its detail. Nothing is changed either way.
const probeConversation = "00000000-0000-4000-8000-00000000c4b1"

// checkGenesys: the token exchange and GET /api/v2/tokens/me (whose organization the client
// belongs to), the queue observation query the tier cascade makes (TIER_CASCADE only), and the
// three conversation calls priority-sync and the link-back make, aimed at a conversation that
// does not exist.
func (c *Checker) checkGenesys(ctx context.Context, rec *recorder) {
	var me struct {
		Organization struct {
			Name string `json:"name"`
		} `json:"organization"`
		OAuthClient struct {
			Name string `json:"name"`
		} `json:"OAuthClient"`
	}
	p := rec.probe(CheckAuthentication, "", "POST /oauth/token (login host), GET /api/v2/tokens/me")
	resp, err := c.genesys(ctx, rec, http.MethodGet, "/api/v2/tokens/me", nil, &me)
	if err != nil {
		p.failed(err, fixes{unauthorized: "Genesys refused the OAuth client (401 or invalid_client): check clientId/clientSecret in the secret named by GenesysSecretId, that the client uses the Client Credentials grant, and that GenesysLoginBaseUrl is your region's login host."})
		return
	}
	p.ok(resp.Status, fmt.Sprintf("token for organization %q (OAuth client %q)", me.Organization.Name, me.OAuthClient.Name))

	if c.Config.Genesys.Cascade && len(c.Config.Genesys.Queues) > 0 {
		var preds []map[string]string
		for _, q := range c.Config.Genesys.Queues {
			preds = append(preds, map[string]string{"type": "dimension", "dimension": "queueId", "operator": "matches", "value": q})
		}
		body := map[string]any{"filter": map[string]any{"type": "or", "predicates": preds}, "metrics": []string{"oOnQueueUsers"}}
		p := rec.probe(CheckQueueObservations, "tier queues", "POST /api/v2/analytics/queues/observations/query")
		resp, err := c.genesys(ctx, rec, http.MethodPost, "/api/v2/analytics/queues/observations/query", body, nil)
		if err != nil {
			p.failed(err, fixes{forbidden: "The OAuth client's role lacks Analytics > Queue Observation > View (analytics:queueObservation:view, name UNCONFIRMED) in the tier queues' divisions: the cascade does nothing until it has it.",
				rejected: "Genesys refused the observation query: check TierL1QueueId..TierL3QueueId."})
		} else {
			p.ok(resp.Status, fmt.Sprintf("observes the %d tier queues", len(c.Config.Genesys.Queues)))
		}
	}

	for _, probe := range []struct {
		check, method, path, perm, who string
		body                           any
	}{
		{CheckConversations, http.MethodGet, "/api/v2/conversations/" + probeConversation, "Conversation > Communication > View (conversation:communication:view)", "priority-sync", nil},
		{CheckRoutingPriority, http.MethodPatch, "/api/v2/routing/conversations/" + probeConversation, "Routing > Conversation > Manage (routing:conversation:manage)", "priority-sync", map[string]int{"priority": 0}},
		{CheckParticipantAttributes, http.MethodPatch, "/api/v2/conversations/" + probeConversation + "/participants/" + probeConversation + "/attributes", "Conversation > Participant Attributes > Edit", "the escalation link-back", map[string]any{"attributes": map[string]string{}}},
	} {
		p := rec.probe(probe.check, "", probe.method+" "+probe.path)
		_, err := c.genesys(ctx, rec, probe.method, probe.path, probe.body, nil)
		status, kind := statusOf(err)
		switch {
		case err == nil || kind == connectors.KindNotFound:
			p.ok(status, "allowed: 404 for a made-up conversation, not 403 (that Genesys checks permissions before existence is UNCONFIRMED)")
		default:
			p.failed(err, fixes{forbidden: fmt.Sprintf("The OAuth client's role lacks %s (permission name UNCONFIRMED): %s fails until it has it.", probe.perm, probe.who)})
		}
	}
}

func (c *Checker) genesys(ctx context.Context, rec *recorder, method, path string, body, out any) (*connectors.Response, error) {
	cctx, cancel := rec.ctx(ctx)
	defer cancel()
	return c.Genesys.Do(cctx, connectors.Request{Op: "health: " + method + " " + path, Method: method, Path: path, Body: body}, out)
}
