package ratelimit_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// BenchmarkCall measures what the limit adds to one outbound call, side by side in one run:
// a call to a loopback upstream answering at once, without a limit and through one (limit high
// enough that every call is admitted, so each pays the two DynamoDB writes), and one DynamoDB
// GetItem for scale. Against DynamoDB Local, which is slower than DynamoDB in a region.
//
//	go test -run '^$' -bench Call -benchtime 300x ./pkg/ratelimit/
func BenchmarkCall(b *testing.B) {
	local, tables := dynamotest.ForTest(b)
	srv, _ := upstream(b)
	limited := ratelimit.New(local.Client(), tables.State, ratelimit.Settings{System: "servicenow", Limit: ratelimit.MaxLimit, StoreTimeout: 10 * time.Second})
	call := func(b *testing.B, hc *http.Client) {
		client := &connectors.Client{System: "servicenow", BaseURL: srv.URL, HTTP: hc}
		for b.Loop() {
			if _, err := client.Do(context.Background(), connectors.Request{Op: "get", Method: http.MethodGet, Path: "/"}, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("unlimited", func(b *testing.B) { call(b, connectors.DefaultHTTPClient) })
	b.Run("limited", func(b *testing.B) { call(b, limited.Client(nil)) })
	b.Run("admit-only", func(b *testing.B) {
		for b.Loop() {
			if err := limited.Admit(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dynamodb-getitem", func(b *testing.B) {
		key := map[string]types.AttributeValue{store.PK: store.S("RATELIMIT#servicenow"), store.SK: store.S("none")}
		for b.Loop() {
			if _, err := local.Client().GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tables.State), Key: key}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
