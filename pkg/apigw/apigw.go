// Package apigw turns the three event shapes a cxbridge function receives into one Request, and
// one Response back into the shape the caller expects:
//
//   - API Gateway REST API proxy events (payload 1.0), which SAM's `Type: Api` produces;
//   - API Gateway HTTP API proxy events (payload 2.0);
//   - direct invocation, where the event is the JSON a Genesys "AWS Lambda" data action rendered
//     from its request template (reference/api-contracts.md section 3.6), with no wrapper at all.
//
// Bad input never reaches a handler: oversize bodies, non-JSON content and malformed JSON become
// a 4xx with a body that names the field, {"status":"rejected","error":{"code","message","field"}}.
package apigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Shape is the kind of event a request arrived as.
type Shape int

const (
	Direct Shape = iota // direct Lambda invocation (Genesys AWS Lambda data action)
	REST                // API Gateway REST API, payload 1.0
	HTTP                // API Gateway HTTP API, payload 2.0
)

func (s Shape) String() string {
	switch s {
	case REST:
		return "rest"
	case HTTP:
		return "http"
	default:
		return "direct"
	}
}

// Request is the part of an event a handler needs.
type Request struct {
	Shape    Shape
	Method   string            // upper case; "POST" for direct invocations
	Path     string            // the route as defined in the template, e.g. /telemetry/tier
	RawPath  string            // the path as the client sent it, stage and base path included
	Host     string            // Host header, when present
	Stage    string            // API Gateway stage
	Headers  map[string]string // lower-case names
	Query    url.Values
	RawQuery string // exact for HTTP APIs; rebuilt (sorted) for REST APIs
	Body     []byte
}

// Header returns a header value by case-insensitive name.
func (r *Request) Header(name string) string { return r.Headers[strings.ToLower(name)] }

// Response is what a handler answers.
type Response struct {
	Status  int
	Body    any
	Headers map[string]string
}

// OK is a 200 response with body.
func OK(body any) Response { return Response{Status: http.StatusOK, Body: body} }

// Error is a rejected request.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Field, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Response renders the error in the documented body shape.
func (e *Error) Response() Response {
	return Response{Status: e.Status, Body: Rejection{Status: "rejected", Error: e}}
}

// Rejection is the body of every 4xx answer.
type Rejection struct {
	Status string `json:"status"`
	Error  *Error `json:"error"`
}

// Invalid is a 400 for one field.
func Invalid(field, code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Missing is a 400 for a required field that is absent or blank.
func Missing(field string) *Error {
	return Invalid(field, "missing_field", "%s is required", field)
}

// Unauthorized is a 401; it deliberately says little.
func Unauthorized(field, message string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Field: field, Message: message}
}

// Limits bound what Decode accepts.
type Limits struct {
	MaxBody int // bytes; default 64 KiB
}

// DefaultMaxBody fits any Genesys data action request with room to spare.
const DefaultMaxBody = 64 << 10

type probe struct {
	Version         string              `json:"version"`
	RouteKey        string              `json:"routeKey"`
	RawPath         string              `json:"rawPath"`
	RawQueryString  string              `json:"rawQueryString"`
	HTTPMethod      string              `json:"httpMethod"`
	Resource        string              `json:"resource"`
	Path            string              `json:"path"`
	Headers         map[string]string   `json:"headers"`
	QueryParams     map[string]string   `json:"queryStringParameters"`
	MultiQuery      map[string][]string `json:"multiValueQueryStringParameters"`
	RequestContext  json.RawMessage     `json:"requestContext"`
	Body            *string             `json:"body"`
	IsBase64Encoded bool                `json:"isBase64Encoded"`
}

type restContext struct {
	Stage        string `json:"stage"`
	ResourcePath string `json:"resourcePath"`
	DomainName   string `json:"domainName"`
}

type httpContext struct {
	Stage      string `json:"stage"`
	DomainName string `json:"domainName"`
	HTTP       struct {
		Method string `json:"method"`
		Path   string `json:"path"`
	} `json:"http"`
}

// Decode reads an event of any of the three shapes.
func Decode(event []byte, lim Limits) (*Request, *Error) {
	if lim.MaxBody <= 0 {
		lim.MaxBody = DefaultMaxBody
	}
	trimmed := bytes.TrimSpace(event)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &Request{Shape: Direct}, Invalid("body", "invalid_json", "the request must be a JSON object")
	}
	var p probe
	if err := json.Unmarshal(trimmed, &p); err != nil {
		// Not one of the API Gateway shapes (their fields have fixed types); treat it as a direct
		// invocation and let the handler's decoder name the offending field.
		p = probe{}
	}
	switch {
	case p.Version == "2.0" && p.RequestContext != nil && (p.RouteKey != "" || p.RawPath != ""):
		var rc httpContext
		_ = json.Unmarshal(p.RequestContext, &rc)
		req := &Request{Shape: HTTP, Method: strings.ToUpper(rc.HTTP.Method), RawPath: p.RawPath, Stage: rc.Stage, RawQuery: p.RawQueryString, Host: rc.DomainName}
		req.Path = routePath(p.RouteKey, p.RawPath, rc.Stage)
		req.Headers = lowerHeaders(p.Headers, nil)
		req.Query, _ = url.ParseQuery(p.RawQueryString)
		return finish(req, p, lim)
	case p.HTTPMethod != "" && p.RequestContext != nil:
		var rc restContext
		_ = json.Unmarshal(p.RequestContext, &rc)
		var multi struct {
			Headers map[string][]string `json:"multiValueHeaders"`
		}
		_ = json.Unmarshal(trimmed, &multi)
		req := &Request{Shape: REST, Method: strings.ToUpper(p.HTTPMethod), Stage: rc.Stage, Path: p.Resource, Host: rc.DomainName}
		if req.Path == "" {
			req.Path = rc.ResourcePath
		}
		req.RawPath = p.Path
		req.Headers = lowerHeaders(p.Headers, multi.Headers)
		req.Query = url.Values{}
		for k, v := range p.QueryParams {
			req.Query.Set(k, v)
		}
		for k, vs := range p.MultiQuery {
			req.Query[k] = vs
		}
		req.RawQuery = req.Query.Encode()
		if h := req.Headers["host"]; h != "" {
			req.Host = h
		}
		return finish(req, p, lim)
	default:
		if len(trimmed) > lim.MaxBody {
			return &Request{Shape: Direct}, tooLarge(lim)
		}
		return &Request{Shape: Direct, Method: http.MethodPost, Headers: map[string]string{}, Query: url.Values{}, Body: trimmed}, nil
	}
}

// routePath takes "POST /telemetry/tier" to "/telemetry/tier"; for $default routes it falls back
// to the raw path without the stage prefix.
func routePath(routeKey, rawPath, stage string) string {
	if _, path, ok := strings.Cut(routeKey, " "); ok && !strings.Contains(path, "{") {
		return path
	}
	if stage != "" && stage != "$default" {
		rawPath = strings.TrimPrefix(rawPath, "/"+stage)
	}
	return rawPath
}

func lowerHeaders(single map[string]string, multi map[string][]string) map[string]string {
	out := make(map[string]string, len(single))
	for k, vs := range multi {
		if len(vs) > 0 {
			out[strings.ToLower(k)] = vs[0]
		}
	}
	for k, v := range single {
		out[strings.ToLower(k)] = v
	}
	return out
}

func finish(req *Request, p probe, lim Limits) (*Request, *Error) {
	if p.Body != nil {
		body := []byte(*p.Body)
		if p.IsBase64Encoded {
			dec, err := base64.StdEncoding.DecodeString(*p.Body)
			if err != nil {
				return req, Invalid("body", "invalid_body", "the body is marked base64 but is not valid base64")
			}
			body = dec
		}
		req.Body = body
	}
	if len(req.Body) > lim.MaxBody {
		return req, tooLarge(lim)
	}
	if len(bytes.TrimSpace(req.Body)) > 0 {
		if err := checkJSONContentType(req.Headers["content-type"]); err != nil {
			return req, err
		}
	}
	return req, nil
}

func tooLarge(lim Limits) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "payload_too_large", Field: "body", Message: fmt.Sprintf("the body is larger than %d bytes", lim.MaxBody)}
}

func checkJSONContentType(ct string) *Error {
	if ct == "" {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Field: "Content-Type", Message: "send Content-Type: application/json"}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Field: "Content-Type", Message: fmt.Sprintf("Content-Type is %q; send application/json", ct)}
	}
	return nil
}

// DecodeJSON decodes a JSON object body into v. Strict decoding rejects unknown fields, which
// catches a misspelt data action input ("conversation_id", "conversationID") before it silently
// does nothing. Names must match exactly: encoding/json alone matches them case-insensitively,
// and a Genesys input contract is case-sensitive.
func DecodeJSON(body []byte, v any, strict bool) *Error {
	switch t := bytes.TrimSpace(body); {
	case len(t) == 0:
		return Invalid("body", "invalid_json", "the body is empty; send a JSON object")
	case bytes.Equal(t, []byte("null")): // encoding/json would decode it as "no fields at all"
		return Invalid("body", "invalid_json", "the body must be a JSON object, not null")
	}
	if err := wellFormedKeys(body, strict); err != nil {
		return err
	}
	if strict {
		if err := exactFieldNames(body, v); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Anything after the object, even a stray "}" (which Decoder.More does not report), means
	// the template rendered something other than the one object we expect.
	if _, err := dec.Token(); err != io.EOF {
		return Invalid("body", "invalid_json", "the body has data after the JSON object")
	}
	return nil
}

// wellFormedKeys names the first top-level input whose value is not valid UTF-8 (encoding/json
// would quietly turn it into U+FFFD, and JSON text must be UTF-8) and, when strict, the first
// input sent twice (encoding/json keeps the last silently; a rendered template that repeats an
// input is a bug to fix, not a value to guess). Bodies that are not objects are left to the
// decoder.
func wellFormedKeys(body []byte, strict bool) *Error {
	if utf8.Valid(body) && !strict {
		return nil
	}
	name := func(k string) string {
		if k == "" || !utf8.ValidString(k) {
			return "body"
		}
		return k
	}
	var bad *Error
	seen := map[string]bool{}
	eachInput(body, func(key string, value json.RawMessage) bool {
		switch {
		case !utf8.ValidString(key) || !utf8.Valid(value):
			bad = Invalid(name(key), "invalid_utf8", "%s is not valid UTF-8", name(key))
		case strict && seen[key]:
			bad = Invalid(name(key), "duplicate_field", "%s is sent more than once; check the data action's request template", name(key))
		}
		seen[key] = true
		return bad == nil
	})
	if bad == nil && !utf8.Valid(body) {
		bad = Invalid("body", "invalid_utf8", "the body is not valid UTF-8")
	}
	return bad
}

// eachInput calls fn with each top-level key and raw value of a JSON object body, in order,
// while fn returns true. It stops quietly where the body stops being a JSON object: the
// decoder reports that, naming the problem.
func eachInput(body []byte, fn func(key string, value json.RawMessage) bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		key, _ := tok.(string)
		var value json.RawMessage
		if dec.Decode(&value) != nil || !fn(key, value) {
			return
		}
	}
}

// exactFieldNames rejects top-level keys of body that are not, letter for letter, a JSON field
// name of the struct v points to. Bodies that are not objects are left to the decoder.
func exactFieldNames(body []byte, v any) *Error {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(body, &keys) // not an object: the decoder reports it, naming the problem
	if keys == nil {
		return nil
	}
	names := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names[name] = true
	}
	unknown := make([]string, 0, len(keys))
	for k := range keys {
		if !names[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	if unknown[0] == "" { // sorts first; an error must still name a field
		return Invalid("body", "unknown_field", "the body has an input with an empty name; check the data action's request template")
	}
	return Invalid(unknown[0], "unknown_field", "%s is not an input of this action (names are case-sensitive); check the data action's request template", unknown[0])
}

func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		return Invalid(fe.Field, "invalid_field", "%s", fe.Problem)
	case errors.As(err, &te):
		if te.Field == "" {
			return Invalid("body", "invalid_json", "the body must be a JSON object")
		}
		return Invalid(te.Field, "invalid_field", "%s must be %s, not a JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return Invalid("body", "invalid_json", "the body is not valid JSON (at byte %d)", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if field == "" {
			return Invalid("body", "unknown_field", "the body has an input with an empty name; check the data action's request template")
		}
		return Invalid(field, "unknown_field", "%s is not an input of this action; check the data action's request template", field)
	default:
		return Invalid("body", "invalid_json", "the body is not valid JSON: %v", err)
	}
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int64", "int32", "int16", "int8", "uint", "uint64", "uint32", "uint16", "uint8":
		return "a whole number"
	case "float64", "float32":
		return "a number"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	default:
		return "an object"
	}
}

// FieldError is returned by custom unmarshalers to name the field that failed.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Text is a string input that also accepts a JSON number or boolean, because Genesys renders an
// unquoted ${input.x} for numeric inputs and a direct invocation may send numbers.
type Text string

// UnmarshalJSON accepts "x", 12, 1.5, true and null.
func (t *Text) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*t = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*t = Text(strings.TrimSpace(s))
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9') || b[0] == 't' || b[0] == 'f'):
		*t = Text(b)
	case len(b) > 0 && b[0] == '[':
		return &json.UnmarshalTypeError{Value: "array", Type: textType}
	default:
		return &json.UnmarshalTypeError{Value: "object", Type: textType}
	}
	return nil
}

var (
	textType = reflect.TypeOf("")
	intType  = reflect.TypeOf(int64(0))
)

// Int is an integer input that also accepts a numeric string; "" and null mean unset.
type Int struct {
	Value int64
	Set   bool
}

// UnmarshalJSON accepts 12, "12", "" and null.
func (n *Int) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	s := string(b)
	if s == "null" {
		*n = Int{}
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			*n = Int{}
			return nil
		}
	}
	bad := &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: intType}
	if !bytes.HasPrefix(b, []byte(`"`)) {
		switch b[0] {
		case '{':
			bad.Value = "object"
		case '[':
			bad.Value = "array"
		case 't', 'f':
			bad.Value = "bool"
		default:
			bad.Value = "number " + s // as encoding/json says it
		}
	}
	if !json.Valid([]byte(s)) || strings.ContainsAny(s, `"tfn[{`) {
		return bad // only JSON number syntax: no hex, "Inf", "1_000", booleans or objects
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = Int{Value: i, Set: true} // exact, even beyond 2^53
		return nil
	}
	// 12.0 and 1e3 are whole numbers too
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != math.Trunc(v) || v < -(1<<63) || v >= 1<<63 {
		return bad
	}
	*n = Int{Value: int64(v), Set: true}
	return nil
}

// MarshalJSON writes the number, or null when unset.
func (n Int) MarshalJSON() ([]byte, error) {
	if !n.Set {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, n.Value, 10), nil
}

// HandlerFunc answers one decoded request.
type HandlerFunc func(ctx context.Context, req *Request) Response

// Lambda adapts h to a Lambda handler that accepts any of the three event shapes.
func Lambda(lim Limits, h HandlerFunc) func(ctx context.Context, event json.RawMessage) (any, error) {
	return func(ctx context.Context, event json.RawMessage) (any, error) {
		req, bad := Decode(event, lim)
		var resp Response
		if bad != nil {
			resp = bad.Response()
		} else {
			resp = h(ctx, req)
		}
		return Encode(req.Shape, resp)
	}
}

// Encode renders resp in the given shape. A direct invocation has no HTTP status, so a 4xx is
// returned as a function error: the Genesys data action then takes its failure path, exactly as
// it does for a 4xx from API Gateway, and the error message carries the rejection body.
func Encode(shape Shape, resp Response) (any, error) {
	if resp.Status == 0 {
		resp.Status = http.StatusOK
	}
	body, err := json.Marshal(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	headers := map[string]string{"Content-Type": "application/json"}
	for k, v := range resp.Headers {
		headers[k] = v
	}
	switch shape {
	case REST:
		return events.APIGatewayProxyResponse{StatusCode: resp.Status, Headers: headers, Body: string(body)}, nil
	case HTTP:
		return events.APIGatewayV2HTTPResponse{StatusCode: resp.Status, Headers: headers, Body: string(body)}, nil
	default:
		if resp.Status >= 400 {
			return nil, &DirectError{Status: resp.Status, Body: string(body)}
		}
		return json.RawMessage(body), nil
	}
}

// DirectError is the function error a direct invocation gets instead of a 4xx.
type DirectError struct {
	Status int
	Body   string
}

func (e *DirectError) Error() string { return e.Body }
