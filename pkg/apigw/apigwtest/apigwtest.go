// Package apigwtest sends a request to an apigw handler the way the deployed REST API does: as
// a payload-1.0 proxy event through aws-lambda-go's own handler, so a test exercises the same
// decoding and encoding as the function in Lambda.
package apigwtest

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/cxbridge/cxbridge/pkg/apigw"
)

// JSON are the headers of a plain JSON request.
var JSON = map[string]string{"Content-Type": "application/json"}

// Post sends body as POST path to h and returns the proxy response.
func Post(ctx context.Context, h apigw.HandlerFunc, path string, headers map[string]string, body string) (events.APIGatewayProxyResponse, error) {
	ev := events.APIGatewayProxyRequest{
		Resource: path, Path: path, HTTPMethod: "POST", Headers: headers, Body: body,
		RequestContext: events.APIGatewayProxyRequestContext{Stage: "prod", ResourcePath: path, HTTPMethod: "POST"},
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return events.APIGatewayProxyResponse{}, err
	}
	out, err := lambda.NewHandler(apigw.Lambda(apigw.Limits{}, h)).Invoke(ctx, payload)
	if err != nil {
		return events.APIGatewayProxyResponse{}, fmt.Errorf("invoke: %w", err)
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return events.APIGatewayProxyResponse{}, fmt.Errorf("not a proxy response: %s", out)
	}
	return resp, nil
}
