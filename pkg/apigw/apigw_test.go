package apigw_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/cxbridge/cxbridge/pkg/apigw"
)

const tierBody = `{"customerId":"C-1001","conversationId":"8f1c2a4e-0000-4000-8000-000000000001","ani":"tel:+15551234567"}`

// restEvent is what API Gateway REST API (SAM Type: Api, payload 1.0) sends for
// POST https://abc123.execute-api.eu-west-1.amazonaws.com/Prod/telemetry/tier?src=genesys&tag=a&tag=b
func restEvent(body string, base64Body bool, headers map[string]string) []byte {
	ev := events.APIGatewayProxyRequest{
		Resource:   "/telemetry/tier",
		Path:       "/telemetry/tier",
		HTTPMethod: "POST",
		Headers:    headers,
		MultiValueHeaders: func() map[string][]string {
			m := map[string][]string{}
			for k, v := range headers {
				m[k] = []string{v}
			}
			return m
		}(),
		QueryStringParameters:           map[string]string{"src": "genesys", "tag": "b"},
		MultiValueQueryStringParameters: map[string][]string{"src": {"genesys"}, "tag": {"a", "b"}},
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID:    "123456789012",
			ResourceID:   "x1y2z3",
			Stage:        "Prod",
			RequestID:    "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
			ResourcePath: "/telemetry/tier",
			HTTPMethod:   "POST",
			APIID:        "abc123",
			DomainName:   "abc123.execute-api.eu-west-1.amazonaws.com",
			Identity:     events.APIGatewayRequestIdentity{SourceIP: "52.1.2.3", APIKey: "genesys-key"},
		},
		Body:            body,
		IsBase64Encoded: base64Body,
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

// httpEvent is what an HTTP API (payload 2.0) sends for the same call on stage "prod".
func httpEvent(body string, base64Body bool, headers map[string]string) []byte {
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       "POST /telemetry/tier",
		RawPath:        "/prod/telemetry/tier",
		RawQueryString: "tag=b&src=genesys&tag=a",
		Headers:        headers,
		QueryStringParameters: map[string]string{
			"src": "genesys", "tag": "b,a",
		},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:   "POST /telemetry/tier",
			AccountID:  "123456789012",
			Stage:      "prod",
			RequestID:  "JKJaXmPLvHcESHA=",
			APIID:      "abc123",
			DomainName: "abc123.execute-api.eu-west-1.amazonaws.com",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: "POST", Path: "/prod/telemetry/tier", Protocol: "HTTP/1.1", SourceIP: "52.1.2.3", UserAgent: "Genesys",
			},
		},
		Body:            body,
		IsBase64Encoded: base64Body,
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return b
}

var jsonHeaders = map[string]string{"Content-Type": "application/json", "X-API-Key": "genesys-key", "Host": "api.cxbridge.example"}

func TestDecodeShapes(t *testing.T) {
	tests := []struct {
		name  string
		event []byte
		want  apigw.Request
	}{
		{"rest", restEvent(tierBody, false, jsonHeaders), apigw.Request{
			Shape: apigw.REST, Method: "POST", Path: "/telemetry/tier", RawPath: "/telemetry/tier", Host: "api.cxbridge.example", Stage: "Prod",
			Query: url.Values{"src": {"genesys"}, "tag": {"a", "b"}}, RawQuery: "src=genesys&tag=a&tag=b", Body: []byte(tierBody),
		}},
		{"http", httpEvent(tierBody, false, map[string]string{"content-type": "application/json", "x-api-key": "genesys-key"}), apigw.Request{
			Shape: apigw.HTTP, Method: "POST", Path: "/telemetry/tier", RawPath: "/prod/telemetry/tier", Host: "abc123.execute-api.eu-west-1.amazonaws.com", Stage: "prod",
			Query: url.Values{"src": {"genesys"}, "tag": {"b", "a"}}, RawQuery: "tag=b&src=genesys&tag=a", Body: []byte(tierBody),
		}},
		{"direct", []byte("\n  " + tierBody + "\n"), apigw.Request{
			Shape: apigw.Direct, Method: "POST", Query: url.Values{}, Body: []byte(tierBody),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, bad := apigw.Decode(tt.event, apigw.Limits{})
			if bad != nil {
				t.Fatalf("Decode = %v", bad)
			}
			headers := req.Headers
			req.Headers = nil
			if !reflect.DeepEqual(*req, tt.want) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", *req, tt.want)
			}
			if tt.want.Shape == apigw.Direct {
				if len(headers) != 0 {
					t.Errorf("direct invocation has headers %v", headers)
				}
				return
			}
			req.Headers = headers
			if req.Header("X-Api-Key") != "genesys-key" || req.Header("CONTENT-TYPE") != "application/json" {
				t.Errorf("headers %v must be readable by any case", headers)
			}
		})
	}
}

func TestShapeString(t *testing.T) {
	for s, want := range map[apigw.Shape]string{apigw.Direct: "direct", apigw.REST: "rest", apigw.HTTP: "http"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}

// HTTP API $default routes have no path in the route key: the raw path without the stage is used.
func TestHTTPDefaultRoute(t *testing.T) {
	ev := map[string]any{
		"version": "2.0", "routeKey": "$default", "rawPath": "/prod/servicenow/lookup", "rawQueryString": "",
		"headers":        map[string]string{"content-type": "application/json"},
		"requestContext": map[string]any{"stage": "prod", "http": map[string]string{"method": "post", "path": "/prod/servicenow/lookup"}},
		"body":           `{}`, "isBase64Encoded": false,
	}
	b, _ := json.Marshal(ev)
	req, bad := apigw.Decode(b, apigw.Limits{})
	if bad != nil || req.Shape != apigw.HTTP || req.Path != "/servicenow/lookup" || req.Method != "POST" {
		t.Errorf("Decode = %+v, %v; want HTTP POST /servicenow/lookup", req, bad)
	}
}

// A Genesys request template may well have inputs called "body", "path" or "headers"; without an
// API Gateway wrapper around them the event is still a direct invocation.
func TestDirectEventWithGatewayLikeNames(t *testing.T) {
	for _, ev := range []string{
		`{"body":"caller says the app crashes","path":"/checkout","customerId":"C-1"}`,
		`{"headers":{"count":3},"version":2}`,
		`{"httpMethod":"POST","customerId":"C-1"}`,
	} {
		req, bad := apigw.Decode([]byte(ev), apigw.Limits{})
		if bad != nil || req.Shape != apigw.Direct || string(req.Body) != ev {
			t.Errorf("Decode(%s) = %+v, %v; want a direct invocation carrying the event as body", ev, req, bad)
		}
	}
}

func TestBase64Bodies(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString([]byte(tierBody))
	for name, ev := range map[string][]byte{
		"rest": restEvent(enc, true, jsonHeaders),
		"http": httpEvent(enc, true, map[string]string{"content-type": "application/json"}),
	} {
		req, bad := apigw.Decode(ev, apigw.Limits{})
		if bad != nil || string(req.Body) != tierBody {
			t.Errorf("%s: Decode = %q, %v; want the decoded body", name, req.Body, bad)
		}
		broken := restEvent("not base64!!", true, jsonHeaders)
		if name == "http" {
			broken = httpEvent("not base64!!", true, map[string]string{"content-type": "application/json"})
		}
		_, bad = apigw.Decode(broken, apigw.Limits{})
		if bad == nil || bad.Status != http.StatusBadRequest || bad.Code != "invalid_body" || bad.Field != "body" {
			t.Errorf("%s: Decode(bad base64) = %+v; want 400 invalid_body", name, bad)
		}
	}
}

func TestBodySizeLimit(t *testing.T) {
	lim := apigw.Limits{MaxBody: 100}
	fits := `{"text":"` + strings.Repeat("a", 100-len(`{"text":""}`)) + `"}`
	over := `{"text":"` + strings.Repeat("a", 101-len(`{"text":""}`)) + `"}`
	tests := []struct {
		name  string
		event []byte
		want  int // 0 = accepted
	}{
		{"rest fits", restEvent(fits, false, jsonHeaders), 0},
		{"rest over", restEvent(over, false, jsonHeaders), 413},
		{"rest base64 fits", restEvent(base64.StdEncoding.EncodeToString([]byte(fits)), true, jsonHeaders), 0}, // the decoded size counts
		{"rest base64 over", restEvent(base64.StdEncoding.EncodeToString([]byte(over)), true, jsonHeaders), 413},
		{"http over", httpEvent(over, false, map[string]string{"content-type": "application/json"}), 413},
		{"direct fits", []byte(fits), 0},
		{"direct over", []byte(over), 413},
	}
	for _, tt := range tests {
		_, bad := apigw.Decode(tt.event, lim)
		switch {
		case tt.want == 0 && bad != nil:
			t.Errorf("%s: Decode = %v; want accepted", tt.name, bad)
		case tt.want != 0 && (bad == nil || bad.Status != tt.want || bad.Code != "payload_too_large" || !strings.Contains(bad.Message, "100 bytes")):
			t.Errorf("%s: Decode = %+v; want 413 payload_too_large naming the limit", tt.name, bad)
		}
	}
	// the default limit is 64 KiB
	_, bad := apigw.Decode([]byte(`{"text":"`+strings.Repeat("a", apigw.DefaultMaxBody)+`"}`), apigw.Limits{})
	if bad == nil || bad.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("Decode(>64 KiB) = %v; want 413", bad)
	}
}

func TestContentType(t *testing.T) {
	tests := []struct {
		contentType string
		ok          bool
	}{
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"application/json;charset=UTF-8", true},
		{"Application/JSON", true},
		{"application/vnd.genesys+json", true},
		{"application/problem+json; charset=utf-8", true},
		{"", false},
		{"text/plain", false},
		{"application/x-www-form-urlencoded", false},
		{"application/jsonx", false},
		{"application/json; charset", false}, // malformed parameter
	}
	for _, tt := range tests {
		for shape, ev := range map[string][]byte{
			"rest": restEvent(`{"a":1}`, false, map[string]string{"Content-Type": tt.contentType}),
			"http": httpEvent(`{"a":1}`, false, map[string]string{"content-type": tt.contentType}),
		} {
			_, bad := apigw.Decode(ev, apigw.Limits{})
			if tt.ok && bad != nil {
				t.Errorf("%s Content-Type %q: Decode = %v; want accepted", shape, tt.contentType, bad)
			}
			if !tt.ok && (bad == nil || bad.Status != http.StatusUnsupportedMediaType || bad.Field != "Content-Type") {
				t.Errorf("%s Content-Type %q: Decode = %+v; want 415 naming Content-Type", shape, tt.contentType, bad)
			}
		}
	}
	// a request without a body (e.g. a GET health check) needs no Content-Type
	if _, bad := apigw.Decode(restEvent("", false, map[string]string{}), apigw.Limits{}); bad != nil {
		t.Errorf("empty body without Content-Type: Decode = %v", bad)
	}
	// a REST API event may carry the header only in multiValueHeaders
	ev := map[string]any{"httpMethod": "POST", "resource": "/x", "path": "/x", "requestContext": map[string]string{"stage": "Prod"},
		"multiValueHeaders": map[string][]string{"Content-Type": {"application/json"}}, "body": `{}`}
	b, _ := json.Marshal(ev)
	if _, bad := apigw.Decode(b, apigw.Limits{}); bad != nil {
		t.Errorf("multiValueHeaders only: Decode = %v", bad)
	}
}

func TestDecodeRejectsNonObjects(t *testing.T) {
	for _, ev := range []string{``, `   `, `[{"a":1}]`, `"text"`, `42`, `null`} {
		req, bad := apigw.Decode([]byte(ev), apigw.Limits{})
		if bad == nil || bad.Status != http.StatusBadRequest || bad.Code != "invalid_json" {
			t.Errorf("Decode(%q) = %+v; want 400 invalid_json", ev, bad)
		}
		if req == nil || req.Shape != apigw.Direct {
			t.Errorf("Decode(%q) request = %+v; want a Direct request to answer with", ev, req)
		}
	}
}

type tierInput struct {
	CustomerID     apigw.Text `json:"customerId"`
	ConversationID apigw.Text `json:"conversationId"`
	ANI            apigw.Text `json:"ani"`
	Priority       apigw.Int  `json:"priority"`
	Caller         struct {
		VIP bool `json:"vip"`
	} `json:"caller"`
	Count int `json:"count"`
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		strict bool
		code   string // "" = success
		field  string
		msg    string // fragment of the message
	}{
		{"ok", tierBody, true, "", "", ""},
		{"unknown field lenient", `{"customerId":"C-1","conversation_id":"x"}`, false, "", "", ""},
		{"unknown field strict", `{"customerId":"C-1","conversation_id":"x"}`, true, "unknown_field", "conversation_id", "conversation_id is not an input"},
		{"case variant is rejected", `{"customerId":"C-1","CONVERSATIONID":"x"}`, true, "unknown_field", "CONVERSATIONID", "names are case-sensitive"},
		{"case variant passes lenient", `{"customerID":"C-1"}`, false, "", "", ""},
		{"type error", `{"count":"three"}`, true, "invalid_field", "count", "count must be a whole number, not a JSON string"},
		{"nested type error", `{"caller":{"vip":"yes"}}`, true, "invalid_field", "caller.vip", "caller.vip must be true or false"},
		{"Int type error", `{"priority":"high"}`, true, "invalid_field", "priority", `priority must be a whole number, not a JSON string "high"`},
		{"Int fraction", `{"priority":2.5}`, true, "invalid_field", "priority", "not a JSON number 2.5"},
		{"Text object", `{"ani":{"e164":"+15551234567"}}`, true, "invalid_field", "ani", "ani must be a string, not a JSON object"},
		{"Text array", `{"ani":["+15551234567"]}`, true, "invalid_field", "ani", "not a JSON array"},
		{"syntax", `{"customerId":"C-1",}`, true, "invalid_json", "body", "not valid JSON (at byte"},
		{"truncated", `{"customerId":"C-1"`, true, "invalid_json", "body", "not valid JSON"},
		{"empty", ``, true, "invalid_json", "body", "empty"},
		{"array", `[1,2]`, true, "invalid_json", "body", "must be a JSON object"},
		{"trailing object", `{"customerId":"C-1"}{"customerId":"C-2"}`, true, "invalid_json", "body", "data after the JSON object"},
		{"trailing brace", `{"customerId":"C-1"}}`, true, "invalid_json", "body", "data after the JSON object"},
		{"trailing space", `{"customerId":"C-1"}` + "\n\t ", true, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in tierInput
			bad := apigw.DecodeJSON([]byte(tt.body), &in, tt.strict)
			if tt.code == "" {
				if bad != nil {
					t.Fatalf("DecodeJSON = %v; want success", bad)
				}
				return
			}
			if bad == nil {
				t.Fatalf("DecodeJSON succeeded; want %s", tt.code)
			}
			if bad.Status != http.StatusBadRequest || bad.Code != tt.code || bad.Field != tt.field || !strings.Contains(bad.Message, tt.msg) {
				t.Errorf("DecodeJSON = %+v; want 400 %s field %q message containing %q", bad, tt.code, tt.field, tt.msg)
			}
		})
	}
}

// FieldError lets a custom input type name the field it rejects.
type phone string

func (p *phone) UnmarshalJSON(b []byte) error {
	return &apigw.FieldError{Field: "ani", Problem: "ani must be an E.164 number"}
}

func TestDecodeJSONFieldError(t *testing.T) {
	var in struct {
		ANI phone `json:"ani"`
	}
	bad := apigw.DecodeJSON([]byte(`{"ani":"555"}`), &in, true)
	if bad == nil || bad.Field != "ani" || bad.Code != "invalid_field" || bad.Message != "ani must be an E.164 number" {
		t.Errorf("DecodeJSON = %+v", bad)
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		json string
		want apigw.Text
	}{
		{`"  C-1001 "`, "C-1001"},
		{`12`, "12"},
		{`-3`, "-3"},
		{`1.5`, "1.5"},
		{`15551234567`, "15551234567"},
		{`true`, "true"},
		{`false`, "false"},
		{`null`, ""},
		{`""`, ""},
		{`"caf\u00e9"`, "café"},
	}
	for _, tt := range tests {
		var v struct {
			X apigw.Text `json:"x"`
		}
		v.X = "previous"
		if bad := apigw.DecodeJSON([]byte(`{"x":`+tt.json+`}`), &v, true); bad != nil || v.X != tt.want {
			t.Errorf("Text(%s) = %q, %v; want %q", tt.json, v.X, bad, tt.want)
		}
	}
}

func TestInt(t *testing.T) {
	tests := []struct {
		json string
		want apigw.Int
		ok   bool
	}{
		{`12`, apigw.Int{Value: 12, Set: true}, true},
		{`"12"`, apigw.Int{Value: 12, Set: true}, true},
		{`" 7 "`, apigw.Int{Value: 7, Set: true}, true},
		{`-4`, apigw.Int{Value: -4, Set: true}, true},
		{`0`, apigw.Int{Value: 0, Set: true}, true},
		{`12.0`, apigw.Int{Value: 12, Set: true}, true},
		{`1e3`, apigw.Int{Value: 1000, Set: true}, true},
		{`9007199254740993`, apigw.Int{Value: 9007199254740993, Set: true}, true}, // beyond float64 precision
		{`"9223372036854775807"`, apigw.Int{Value: 9223372036854775807, Set: true}, true},
		{`null`, apigw.Int{}, true},
		{`""`, apigw.Int{}, true},
		{`"  "`, apigw.Int{}, true},
		{`12.5`, apigw.Int{}, false},
		{`"abc"`, apigw.Int{}, false},
		{`"0x10"`, apigw.Int{}, false},
		{`"Inf"`, apigw.Int{}, false},
		{`"NaN"`, apigw.Int{}, false},
		{`"1_000"`, apigw.Int{}, false},
		{`1e30`, apigw.Int{}, false},
		{`true`, apigw.Int{}, false},
		{`{}`, apigw.Int{}, false},
	}
	for _, tt := range tests {
		var v struct {
			P apigw.Int `json:"priority"`
		}
		bad := apigw.DecodeJSON([]byte(`{"priority":`+tt.json+`}`), &v, true)
		if tt.ok && (bad != nil || v.P != tt.want) {
			t.Errorf("Int(%s) = %+v, %v; want %+v", tt.json, v.P, bad, tt.want)
		}
		if !tt.ok && (bad == nil || bad.Field != "priority") {
			t.Errorf("Int(%s) = %+v, %v; want an error naming priority", tt.json, v.P, bad)
		}
	}
	// an unset Int writes null, a set one its number: what a Genesys output contract reads
	out, _ := json.Marshal(struct {
		A, B apigw.Int
	}{apigw.Int{}, apigw.Int{Value: 5, Set: true}})
	if string(out) != `{"A":null,"B":5}` {
		t.Errorf("Marshal = %s", out)
	}
}

func TestErrorResponseShape(t *testing.T) {
	resp := apigw.Missing("customerId").Response()
	if resp.Status != http.StatusBadRequest {
		t.Errorf("Status = %d", resp.Status)
	}
	b, _ := json.Marshal(resp.Body)
	if want := `{"status":"rejected","error":{"code":"missing_field","message":"customerId is required","field":"customerId"}}`; string(b) != want {
		t.Errorf("body = %s; want %s", b, want)
	}
	u := apigw.Unauthorized("x-api-key", "missing or wrong API key")
	if u.Status != http.StatusUnauthorized || u.Error() != "unauthorized (x-api-key): missing or wrong API key" {
		t.Errorf("Unauthorized = %+v, %q", u, u.Error())
	}
	b, _ = json.Marshal((&apigw.Error{Status: 400, Code: "invalid_json", Message: "m"}).Response().Body)
	if strings.Contains(string(b), "field") {
		t.Errorf("an error without a field must omit it: %s", b)
	}
}

func TestEncode(t *testing.T) {
	ok := apigw.Response{Body: map[string]string{"status": "ok", "tier": "L2"}, Headers: map[string]string{"Cache-Control": "no-store"}}
	wantHeaders := map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"}
	const okBody = `{"status":"ok","tier":"L2"}`

	out, err := apigw.Encode(apigw.REST, ok)
	if rest, is := out.(events.APIGatewayProxyResponse); err != nil || !is || rest.StatusCode != 200 || rest.Body != okBody || !reflect.DeepEqual(rest.Headers, wantHeaders) {
		t.Errorf("Encode(REST) = %#v, %v", out, err)
	}
	out, err = apigw.Encode(apigw.HTTP, ok)
	if h, is := out.(events.APIGatewayV2HTTPResponse); err != nil || !is || h.StatusCode != 200 || h.Body != okBody || !reflect.DeepEqual(h.Headers, wantHeaders) {
		t.Errorf("Encode(HTTP) = %#v, %v", out, err)
	}
	out, err = apigw.Encode(apigw.Direct, ok)
	if raw, is := out.(json.RawMessage); err != nil || !is || string(raw) != okBody {
		t.Errorf("Encode(Direct) = %#v, %v; want the raw JSON object", out, err)
	}

	rejected := apigw.Invalid("ani", "invalid_field", "ani must be a phone number").Response()
	out, err = apigw.Encode(apigw.REST, rejected)
	if rest := out.(events.APIGatewayProxyResponse); err != nil || rest.StatusCode != 400 || !strings.Contains(rest.Body, `"field":"ani"`) {
		t.Errorf("Encode(REST, 400) = %#v, %v", out, err)
	}
	out, err = apigw.Encode(apigw.Direct, rejected)
	var de *apigw.DirectError
	if out != nil || !errors.As(err, &de) || de.Status != 400 {
		t.Fatalf("Encode(Direct, 400) = %#v, %v; want a *DirectError", out, err)
	}
	var body apigw.Rejection
	if json.Unmarshal([]byte(err.Error()), &body) != nil || body.Status != "rejected" || body.Error.Field != "ani" || body.Error.Code != "invalid_field" {
		t.Errorf("DirectError message = %q; want the rejection body", err.Error())
	}

	// an unencodable body is a function error, not a silent empty answer
	if _, err := apigw.Encode(apigw.REST, apigw.OK(map[string]any{"f": func() {}})); err == nil {
		t.Error("Encode(unencodable) succeeded")
	}
}

// The adapter end to end, as the Lambda runtime calls it.
func TestLambdaAdapter(t *testing.T) {
	var seen []*apigw.Request
	h := func(ctx context.Context, req *apigw.Request) apigw.Response {
		seen = append(seen, req)
		if lc, ok := lambdacontext.FromContext(ctx); !ok || lc.AwsRequestID != "req-1" {
			t.Errorf("handler context lost the Lambda context")
		}
		var in tierInput
		if bad := apigw.DecodeJSON(req.Body, &in, true); bad != nil {
			return bad.Response()
		}
		return apigw.OK(map[string]string{"status": "ok", "customerId": string(in.CustomerID)})
	}
	handler := lambda.NewHandler(apigw.Lambda(apigw.Limits{MaxBody: 1024}, h))
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})

	t.Run("rest", func(t *testing.T) {
		seen = nil
		out, err := handler.Invoke(ctx, restEvent(tierBody, false, jsonHeaders))
		var resp events.APIGatewayProxyResponse
		if err != nil || json.Unmarshal(out, &resp) != nil {
			t.Fatalf("Invoke = %s, %v", out, err)
		}
		if resp.StatusCode != 200 || resp.Body != `{"customerId":"C-1001","status":"ok"}` || resp.Headers["Content-Type"] != "application/json" {
			t.Errorf("response = %+v", resp)
		}
		if len(seen) != 1 || seen[0].Shape != apigw.REST || seen[0].Path != "/telemetry/tier" {
			t.Errorf("handler saw %+v", seen)
		}
	})
	t.Run("rest rejected before the handler", func(t *testing.T) {
		seen = nil
		out, err := handler.Invoke(ctx, restEvent(tierBody, false, map[string]string{"Content-Type": "text/plain"}))
		var resp events.APIGatewayProxyResponse
		if err != nil || json.Unmarshal(out, &resp) != nil {
			t.Fatalf("Invoke = %s, %v", out, err)
		}
		if resp.StatusCode != 415 || !strings.Contains(resp.Body, `"status":"rejected"`) || len(seen) != 0 {
			t.Errorf("response = %+v, handler called %d times; want 415 without calling it", resp, len(seen))
		}
	})
	t.Run("http", func(t *testing.T) {
		out, err := handler.Invoke(ctx, httpEvent(`{"customerId":"C-2","extra":1}`, false, map[string]string{"content-type": "application/json"}))
		var resp events.APIGatewayV2HTTPResponse
		if err != nil || json.Unmarshal(out, &resp) != nil {
			t.Fatalf("Invoke = %s, %v", out, err)
		}
		if resp.StatusCode != 400 || !strings.Contains(resp.Body, `"field":"extra"`) {
			t.Errorf("response = %+v; want 400 naming the unknown input", resp)
		}
	})
	t.Run("direct", func(t *testing.T) {
		out, err := handler.Invoke(ctx, []byte(tierBody))
		if err != nil {
			t.Fatalf("Invoke = %v", err)
		}
		// a Genesys Lambda data action reads the answer itself, not an API Gateway envelope
		if string(out) != `{"customerId":"C-1001","status":"ok"}` {
			t.Errorf("Invoke = %s; want the bare JSON object", out)
		}
	})
	t.Run("direct rejected", func(t *testing.T) {
		out, err := handler.Invoke(ctx, []byte(`{"customerId":"C-1","conversation_id":"x"}`))
		var de *apigw.DirectError
		if out != nil || !errors.As(err, &de) || de.Status != 400 {
			t.Fatalf("Invoke = %s, %v; want a function error", out, err)
		}
		var body apigw.Rejection
		if json.Unmarshal([]byte(err.Error()), &body) != nil || body.Error.Field != "conversation_id" || body.Error.Code != "unknown_field" {
			t.Errorf("error message = %q; want the rejection naming conversation_id", err)
		}
	})
	t.Run("direct too large", func(t *testing.T) {
		_, err := handler.Invoke(ctx, []byte(`{"customerId":"`+strings.Repeat("x", 2000)+`"}`))
		var de *apigw.DirectError
		if !errors.As(err, &de) || de.Status != 413 {
			t.Errorf("Invoke = %v; want a 413 DirectError", err)
		}
	})
}

// Input sent twice, or not UTF-8, is a template bug: the 400 names the input.
func TestDecodeJSONNamesDuplicateAndNonUTF8Inputs(t *testing.T) {
	type in struct {
		Ani  apigw.Text `json:"ani"`
		Name apigw.Text `json:"name"`
	}
	for body, want := range map[string]struct{ field, code string }{
		`{"ani":"1","name":"x","ani":"2"}`:     {"ani", "duplicate_field"},
		"{\"ani\":\"\xff\xfe\"}":               {"ani", "invalid_utf8"},
		"{\"name\":\"ok\",\"ani\":[\"\xc3\"]}": {"ani", "invalid_utf8"},
		"{\"\xff\":1}":                         {"body", "invalid_utf8"},
		`{"":1,"":2}`:                          {"body", "duplicate_field"},
	} {
		var v in
		err := apigw.DecodeJSON([]byte(body), &v, true)
		if err == nil || err.Field != want.field || err.Code != want.code || err.Status != 400 {
			t.Errorf("DecodeJSON(%q) = %+v; want 400 %s naming %s", body, err, want.code, want.field)
		}
	}
	// without strict decoding a repeated input is left to encoding/json; bad UTF-8 is not
	var v in
	if err := apigw.DecodeJSON([]byte(`{"ani":"1","ani":"2"}`), &v, false); err != nil || v.Ani != "2" {
		t.Errorf("lenient duplicate: %+v %v", err, v)
	}
	if err := apigw.DecodeJSON([]byte("{\"ani\":\"\xff\"}"), &v, false); err == nil || err.Field != "ani" {
		t.Errorf("lenient bad UTF-8: %+v", err)
	}
}
