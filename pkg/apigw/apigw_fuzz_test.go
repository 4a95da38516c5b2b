package apigw_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/cxbridge/cxbridge/pkg/apigw"
)

// fuzzInput has the field types the Genesys-facing functions decode.
type fuzzInput struct {
	Name  apigw.Text `json:"name"`
	Count apigw.Int  `json:"count"`
	Flag  bool       `json:"flag"`
	Tags  []string   `json:"tags"`
}

// FuzzLambda sends any event, of any of the three shapes, through the adapter every function
// uses, with a handler that decodes strictly. Whatever arrives, the answer is a 200 or a 4xx
// whose body names a field, in the event's own shape: never a 5xx, never another error.
func FuzzLambda(f *testing.F) {
	rest, _ := json.Marshal(events.APIGatewayProxyRequest{
		Resource: "/x", Path: "/local/x", HTTPMethod: "POST",
		Headers:        map[string]string{"Content-Type": "application/json", "X-Api-Key": "k"},
		Body:           `{"name":"a","count":"12","flag":true,"tags":["x"]}`,
		RequestContext: events.APIGatewayProxyRequestContext{Stage: "local", ResourcePath: "/x"},
	})
	b64, _ := json.Marshal(events.APIGatewayProxyRequest{
		Resource: "/x", HTTPMethod: "POST", Headers: map[string]string{"content-type": "application/json"},
		Body: "eyJuYW1lIjoxfQ==", IsBase64Encoded: true, RequestContext: events.APIGatewayProxyRequestContext{Stage: "local"},
	})
	http, _ := json.Marshal(events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "POST /x", RawPath: "/x", RawQueryString: "a=1&a=2",
		Headers:        map[string]string{"content-type": "application/vnd.api+json; charset=utf-8"},
		Body:           `{"count":1e3,"name":12.5}`,
		RequestContext: events.APIGatewayV2HTTPRequestContext{Stage: "$default", HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "post", Path: "/x"}},
	})
	for _, seed := range []string{
		string(rest), string(b64), string(http),
		`{"name":"direct","count":3}`, `{"name":{"nested":[1,2,3]}}`, `{"Name":"x"}`, `{"name":"a"}{}`,
		`{"count":"12abc"}`, `{"count":1.5}`, `{"tags":"x"}`, `[1,2]`, `"x"`, ``, `null`, "{\"name\":\"\xff\"}",
		`{"name":"a","name":"b"}`, `{"httpMethod":"POST","requestContext":{},"body":"{\"name\":1}","headers":{"CONTENT-TYPE":"text/plain"}}`,
	} {
		f.Add([]byte(seed))
	}
	h := apigw.Lambda(apigw.Limits{MaxBody: 4 << 10}, func(ctx context.Context, req *apigw.Request) apigw.Response {
		var in fuzzInput
		if err := apigw.DecodeJSON(req.Body, &in, true); err != nil {
			return err.Response()
		}
		return apigw.OK(map[string]string{"status": "ok"})
	})
	f.Fuzz(func(t *testing.T, event []byte) {
		out, err := h(context.Background(), event)
		var status int
		var body string
		switch r := out.(type) {
		case events.APIGatewayProxyResponse:
			status, body = r.StatusCode, r.Body
		case events.APIGatewayV2HTTPResponse:
			status, body = r.StatusCode, r.Body
		case json.RawMessage:
			status, body = 200, string(r)
		case nil:
			var de *apigw.DirectError
			if !errors.As(err, &de) {
				t.Fatalf("not a rejection: %v", err)
			}
			status, body = de.Status, de.Body
		default:
			t.Fatalf("answer of type %T", out)
		}
		if err != nil && out != nil {
			t.Fatalf("an answer and an error: %v", err)
		}
		if status == 200 {
			return
		}
		if status < 400 || status > 499 {
			t.Fatalf("status %d: %s", status, body)
		}
		var rej struct {
			Status string `json:"status"`
			Error  struct{ Code, Message, Field string }
		}
		if json.Unmarshal([]byte(body), &rej) != nil || rej.Status != "rejected" || rej.Error.Field == "" || rej.Error.Code == "" || rej.Error.Message == "" {
			t.Fatalf("a %d must name the field: %s", status, body)
		}
	})
}
