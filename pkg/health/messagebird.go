package health

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// checkMessageBird: GET /webhooks proves the access key, and that MessageBird will call
// messagebird-inbound: a webhook for MESSAGEBIRD_WEBHOOK_URL, enabled, with message.created,
// covering every channel id MESSAGEBIRD_CHANNEL_ROUTES routes.
func (c *Checker) checkMessageBird(ctx context.Context, rec *recorder) {
	var list struct {
		Items []struct {
			ID        string   `json:"id"`
			ChannelID string   `json:"channelId"`
			URL       string   `json:"url"`
			Events    []string `json:"events"`
			Status    string   `json:"status"`
		} `json:"items"`
	}
	call := "GET /webhooks?limit=100"
	p := rec.probe(CheckAuthentication, "", call)
	cctx, cancel := rec.ctx(ctx)
	resp, err := c.MessageBird.Do(cctx, connectors.Request{Op: "health: list webhooks", Method: http.MethodGet, Path: "/webhooks", Query: map[string][]string{"limit": {"100"}}}, &list)
	cancel()
	if err != nil {
		p.failed(err, fixes{unauthorized: "MessageBird refused the access key (401): put a live key in accessKey of the secret named by MessageBirdSecretId (the signing key is a different value)."})
		rec.skip(CheckWebhook, c.Config.MessageBird.WebhookURL, "authentication failed")
		return
	}
	p.ok(resp.Status, "the access key is accepted")

	want := c.Config.MessageBird.WebhookURL
	w := rec.probe(CheckWebhook, want, call)
	var channels []string
	found, enabled, events := false, false, false
	for _, h := range list.Items {
		if h.URL != want {
			continue
		}
		found = true
		if h.Status == "" || strings.EqualFold(h.Status, "enabled") {
			enabled = true
		}
		if slices.Contains(h.Events, "message.created") {
			events = true
		}
		channels = append(channels, h.ChannelID)
	}
	var missing []string
	for _, ch := range c.Config.MessageBird.Channels {
		if !slices.Contains(channels, ch) && !slices.Contains(channels, "") {
			missing = append(missing, ch)
		}
	}
	switch {
	case !found:
		w.done(Failed, resp.Status, fmt.Sprintf("no webhook is registered for %s: MessageBird sends cxbridge nothing, and customers' messages go unanswered", want),
			"Register the webhook (README, MessageBird and Jira webhooks) with MessageBirdWebhookUrl exactly as the URL.")
	case !enabled || !events:
		w.done(Failed, resp.Status, "the webhook for this URL is disabled or does not subscribe to message.created",
			"Re-register the webhook with events message.created, message.updated and conversation.updated.")
	case len(missing) > 0:
		w.done(Failed, resp.Status, fmt.Sprintf("channels routed by MessageBirdChannelRoutes have no webhook: %s", strings.Join(missing, ", ")),
			"Register the webhook for each of these channel ids too.")
	default:
		w.ok(resp.Status, "registered, enabled, with message.created")
	}
}
