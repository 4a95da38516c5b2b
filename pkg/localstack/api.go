package localstack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/cxbridge/cxbridge/pkg/runtimeapi"
	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

// LocalServiceNowAPIKey is the API key the local API expects from the ServiceNow business rule.
const LocalServiceNowAPIKey = "local-servicenow-api-key"

// Stage is the API Gateway stage name the local API pretends to serve.
const Stage = "local"

// maxPayload is API Gateway's 10 MB request limit; maxInvokePayload is Lambda's 6 MB limit
// for a synchronous invocation's event, which a body of more than about 6 MB exceeds.
const (
	maxPayload       = 10 << 20
	maxInvokePayload = 6 << 20
)

// IntegrationTimeout is API Gateway's limit on a REST API's Lambda integration.
const IntegrationTimeout = 29 * time.Second

// API serves the template's routes the way the deployed REST API does: it checks the API key
// on the routes that require one, turns each request into a REST API (payload 1.0) proxy event,
// invokes the function's real bootstrap and turns the proxy response back into HTTP.
//
// As behind API Gateway, an invocation once sent runs to its end even when the caller hangs up
// or the gateway stops waiting, and the caller sees what API Gateway answers: 504 after the
// integration timeout, 502 for a function error (a crash, a timeout, an answer that is not a
// proxy response), 500 when Lambda throttles the function.
func (s *Stack) API() http.Handler {
	routes := s.Template.Routes()
	keys := map[string]bool{LocalAPIKey: true, LocalServiceNowAPIKey: true}
	timeout := s.opts.IntegrationTimeout
	if timeout <= 0 {
		timeout = IntegrationTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := match(routes, r.Method, r.URL.Path)
		if !ok {
			// What API Gateway says for a path or method it does not know.
			writeGateway(w, http.StatusForbidden, "Missing Authentication Token")
			return
		}
		if route.ApiKeyRequired && !keys[r.Header.Get("x-api-key")] {
			writeGateway(w, http.StatusForbidden, "Forbidden")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
		if err != nil || len(body) > maxPayload {
			writeGateway(w, http.StatusRequestEntityTooLarge, "Request Too Long")
			return
		}
		fn, err := s.Function(r.Context(), DirOf(route.Function))
		if err != nil {
			writeGateway(w, http.StatusInternalServerError, "Internal server error: "+err.Error())
			return
		}
		event, _ := json.Marshal(proxyEvent(r, route, body))
		if len(event) > maxInvokePayload {
			// Lambda refuses the invocation (RequestTooLargeException) and API Gateway answers
			// this; the function never sees the request.
			writeGateway(w, http.StatusRequestEntityTooLarge, "Request Too Long")
			return
		}
		// The caller hanging up does not recall an invocation from Lambda; only the gateway's
		// own timeout ends the wait, and then only the wait.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), timeout)
		defer cancel()
		res, err := fn.Invoke(ctx, event)
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			writeGateway(w, http.StatusGatewayTimeout, "Endpoint request timed out")
		case errors.Is(err, runtimeapi.ErrThrottled):
			// A Lambda 429 is an integration failure to a proxy integration.
			writeGateway(w, http.StatusInternalServerError, "Internal server error")
		case err != nil || res.FunctionError != "":
			// API Gateway hides the function's error from the caller; the function's log has it.
			writeGateway(w, http.StatusBadGateway, "Internal server error")
		default:
			writeProxyResponse(w, res.Payload)
		}
	})
}

// match finds the route for a method and path; {param} segments match any segment.
func match(routes []samtemplate.Route, method, path string) (samtemplate.Route, bool) {
	for _, rt := range routes {
		if rt.Method != method && rt.Method != "ANY" {
			continue
		}
		if samePath(rt.Path, path) {
			return rt, true
		}
	}
	return samtemplate.Route{}, false
}

func samePath(pattern, path string) bool {
	ps, xs := strings.Split(strings.Trim(pattern, "/"), "/"), strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ps[i] != xs[i] && !(strings.HasPrefix(ps[i], "{") && strings.HasSuffix(ps[i], "}")) {
			return false
		}
	}
	return true
}

func proxyEvent(r *http.Request, rt samtemplate.Route, body []byte) events.APIGatewayProxyRequest {
	headers, multi := map[string]string{}, map[string][]string{}
	for k, vs := range r.Header {
		headers[k] = vs[len(vs)-1]
		multi[k] = vs
	}
	headers["Host"], multi["Host"] = r.Host, []string{r.Host}
	query, multiQuery := map[string]string{}, map[string][]string{}
	for k, vs := range r.URL.Query() {
		query[k] = vs[len(vs)-1]
		multiQuery[k] = vs
	}
	ev := events.APIGatewayProxyRequest{
		Resource: rt.Path, Path: r.URL.Path, HTTPMethod: r.Method,
		Headers: headers, MultiValueHeaders: multi,
		QueryStringParameters: query, MultiValueQueryStringParameters: multiQuery,
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID: "000000000000", ResourcePath: rt.Path, HTTPMethod: r.Method, Stage: Stage,
			RequestID: requestID(), DomainName: r.Host, APIID: "local",
			RequestTimeEpoch: time.Now().UnixMilli(),
			Identity:         events.APIGatewayRequestIdentity{SourceIP: strings.Split(r.RemoteAddr, ":")[0], APIKey: r.Header.Get("x-api-key"), UserAgent: r.UserAgent()},
		},
	}
	if utf8.Valid(body) {
		ev.Body = string(body)
	} else {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return ev
}

func writeProxyResponse(w http.ResponseWriter, payload []byte) {
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(payload, &resp); err != nil || resp.StatusCode == 0 {
		// A Lambda proxy integration must return the proxy shape; API Gateway answers 502.
		writeGateway(w, http.StatusBadGateway, "Internal server error")
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if dec, err := base64.StdEncoding.DecodeString(resp.Body); err == nil {
			body = dec
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

func writeGateway(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-ErrorType", http.StatusText(status))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message})
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Schedule is a function run on a timer (a SAM Schedule event).
type Schedule struct {
	Function string        // directory under functions/
	Every    time.Duration // from rate(N unit)
	Rule     string        // the schedule expression as written
}

// Schedules lists the template's Schedule events with rate() expressions.
func (s *Stack) Schedules() ([]Schedule, error) {
	var out []Schedule
	for _, f := range s.Template.Functions() {
		for _, ev := range f.Events {
			if ev.Type != "Schedule" {
				continue
			}
			expr, _ := samtemplate.Scalar(ev.Properties["Schedule"])
			every, err := parseRate(expr)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", f.LogicalID, ev.Name, err)
			}
			out = append(out, Schedule{Function: DirOf(f.LogicalID), Every: every, Rule: expr})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out, nil
}

func parseRate(expr string) (time.Duration, error) {
	var n int
	var unit string
	if _, err := fmt.Sscanf(expr, "rate(%d %s", &n, &unit); err != nil || n <= 0 {
		return 0, fmt.Errorf("schedule %q: only rate(N unit) runs locally", expr)
	}
	switch strings.TrimSuffix(strings.TrimSuffix(unit, ")"), "s") {
	case "minute":
		return time.Duration(n) * time.Minute, nil
	case "hour":
		return time.Duration(n) * time.Hour, nil
	case "day":
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return 0, fmt.Errorf("schedule %q: unknown unit", expr)
}

// ScheduledEvent is the EventBridge event a Schedule rule sends.
func ScheduledEvent(rule string, at time.Time) []byte {
	ev := events.EventBridgeEvent{
		Version: "0", ID: requestID(), DetailType: "Scheduled Event", Source: "aws.events",
		AccountID: "000000000000", Time: at.UTC(), Region: "us-east-1",
		Resources: []string{"arn:aws:events:us-east-1:000000000000:rule/" + rule},
		Detail:    json.RawMessage(`{}`),
	}
	b, _ := json.Marshal(ev)
	return b
}

// RunSchedules invokes each scheduled function on its rate (or every Options.ScheduleEvery)
// until ctx ends, like EventBridge. Failures are logged to the stack's log writer; a failed run
// is retried at the next tick.
func (s *Stack) RunSchedules(ctx context.Context) error {
	scheds, err := s.Schedules()
	if err != nil {
		return err
	}
	for _, sc := range scheds {
		if s.opts.ScheduleEvery > 0 {
			sc.Every = s.opts.ScheduleEvery
		}
		go func(sc Schedule) {
			t := time.NewTicker(sc.Every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					if err := s.RunOnce(ctx, sc.Function, now); err != nil && ctx.Err() == nil {
						fmt.Fprintf(s.logs, "%s | scheduled run failed: %v\n", sc.Function, err)
					}
				}
			}
		}(sc)
	}
	return nil
}

// RunOnce invokes a scheduled function now, as its schedule would.
func (s *Stack) RunOnce(ctx context.Context, function string, now time.Time) error {
	fn, err := s.Function(ctx, function)
	if err != nil {
		return err
	}
	res, err := fn.Invoke(ctx, ScheduledEvent(function, now))
	if err != nil {
		return err
	}
	if res.FunctionError != "" {
		return fmt.Errorf("%s failed: %s", function, res.Payload)
	}
	return nil
}

// DirOf maps a template logical id back to its functions/ directory: TelemetryTierFunction ->
// telemetry-tier (the inverse of LogicalID).
func DirOf(logicalID string) string {
	name := strings.TrimSuffix(logicalID, "Function")
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
