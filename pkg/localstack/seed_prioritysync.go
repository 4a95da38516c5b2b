package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/hmacauth"
	"github.com/cxbridge/cxbridge/pkg/prioritysync"
)

// LocalServiceNowSigningKey is the business rule's signing key in the local world, served as
// servicenowSigningKey in cxbridge/inbound.
const LocalServiceNowSigningKey = "local-servicenow-signing-key"

// Genesys conversations the priority-sync events use.
const (
	// Abel waits in the L1 queue at priority 0; servicenow-lookup's match-by-ani event links it.
	ConversationAbelWaiting = "5a0f1f2e-4b1a-4c7e-9d3b-0a1b2c3d4e01"
	// A VIP call already waits at priority 5000, above the configured 1000.
	ConversationVIPWaiting = "5a0f1f2e-4b1a-4c7e-9d3b-0a1b2c3d4e02"
	// Beth's call was answered by an agent: no longer in queue.
	ConversationBethAnswered = "5a0f1f2e-4b1a-4c7e-9d3b-0a1b2c3d4e03"
)

func init() {
	seed(seedPrioritySync)
	localEventDefaults["SERVICENOW_SIGNING_KEY"] = LocalServiceNowSigningKey
	prepareWith("priority-sync", signNow(false))
	prepareWith("priority-sync/replay.json", signNow(true))
	prepareWith("priority-sync/bad-signature.json", refreshTimestamp)
	prepareWith("priority-sync/stale-timestamp.json", func(_ context.Context, _ *Stack, _ func(string) string, e []byte) ([]byte, error) { return e, nil })
}

func seedPrioritySync(ctx context.Context, s *Stack) error {
	if err := s.Secrets.AddJSONFields("cxbridge/inbound", map[string]string{"servicenowSigningKey": LocalServiceNowSigningKey}); err != nil {
		return err
	}
	if g := s.Genesys(); g != nil {
		g.AddWaitingConversation(ConversationAbelWaiting, "", QueueL1, 0)
		g.AddWaitingConversation(ConversationVIPWaiting, "", QueueL1, 5000)
		g.AddWaitingConversation(ConversationBethAnswered, "", QueueL1, 0)
		g.Answer(ConversationBethAnswered)
	}
	// What servicenow-lookup records when these callers ring.
	links := &callerlink.Store{DB: s.DynamoDB.Client(), Table: s.Tables.State}
	for caller, conv := range map[string]string{CallerAbel: ConversationAbelWaiting, CallerBeth: ConversationBethAnswered} {
		if _, err := links.Put(ctx, callerlink.Link{CallerSysID: caller, ConversationID: conv}); err != nil {
			return err
		}
	}
	return nil
}

// signNow sets the timestamp to now and signs the body with the local key, as the business
// rule does when it sends. With seen, the signature is also recorded as already received, so
// the event is a replay.
func signNow(seen bool) preparer {
	return func(ctx context.Context, s *Stack, vars func(string) string, event []byte) ([]byte, error) {
		if seen && s == nil {
			return nil, errors.New("a replay needs the local stack, which records the first delivery")
		}
		return rewrite(event, func(h map[string]any, body string) error {
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			sig := hmacauth.Sign([]byte(vars("SERVICENOW_SIGNING_KEY")), ts, []byte(body))
			setHeader(h, hmacauth.HeaderTimestamp, ts)
			setHeader(h, hmacauth.HeaderSignature, sig)
			if !seen {
				return nil
			}
			g := &hmacauth.ReplayGuard{DB: s.DynamoDB.Client(), Table: s.Tables.State, Scheme: prioritysync.ReplayScheme}
			return g.Claim(ctx, sig, time.Now(), time.Now().Add(hmacauth.DefaultWindow+time.Minute))
		})
	}
}

// refreshTimestamp moves the timestamp to now and leaves the signature as it is: a request
// whose only fault is its signature.
func refreshTimestamp(_ context.Context, _ *Stack, _ func(string) string, event []byte) ([]byte, error) {
	return rewrite(event, func(h map[string]any, _ string) error {
		setHeader(h, hmacauth.HeaderTimestamp, strconv.FormatInt(time.Now().Unix(), 10))
		return nil
	})
}

// rewrite edits the headers of an API Gateway event.
func rewrite(event []byte, edit func(headers map[string]any, body string) error) ([]byte, error) {
	var ev map[string]any
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, err
	}
	h, ok := ev["headers"].(map[string]any)
	if !ok {
		return nil, errors.New("localstack: a signed event needs API Gateway headers")
	}
	body, _ := ev["body"].(string)
	if err := edit(h, body); err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

func setHeader(h map[string]any, name, value string) {
	for k := range h {
		if strings.EqualFold(k, name) {
			delete(h, k)
		}
	}
	h[name] = value
}
