// Package store holds the DynamoDB conventions shared by every function: how the client is
// built (every call bounded by the caller's budget, bounded.go) and how the two tables are keyed.
//
// The state table is a single table keyed by pk (partition) and sk (sort), with a TTL attribute
// expires_at. Each kind of item owns a pk prefix:
//
//	BREAKER#<dependency>           STATE              circuit breaker state (pkg/breaker)
//	CATASTROPHE#<target>           STATE              outage mode flag and master incident
//	CALLER#<servicenow sys_id>     WAITING            caller -> waiting Genesys conversation
//	CONTACT#<messagebird contact>  LINK               MessageBird contact -> JSM request
//	REQUEST#<jsm issue key>        LINK               JSM request -> MessageBird contact
//	OUTBOX                         <due>#<key>        escalations waiting for the redrive
//	OUTBOX#ID                      <key>              the queued item of an escalation (one at most)
//	OUTBOX#FAILED                  <failed>#<key>     escalations a person must look at
//	MASTERS                        <target>#<master>  master tickets with outage links; note lease
//	MASTER#<target>#<master>       <linked>#<key>     calls linked to a master, not yet noted
//	                                                  (<master> is outage:<id> for an automatic outage)
//	OUTAGE#<target>#<outage id>    MASTER             an automatic outage: why, and its master ticket
//	                                                  (created, or pending while the target is down)
//	OUTAGECOUNT#<target>#<topic>   <minute>           escalations about a topic per minute (detection)
//	REPLAY#<scheme>#<id>           REPLAY             webhook and signature replay guards
//	HEALTH                         RUN                integration-health's last run and its lease
//	HEALTH                         CHECK#<s>#<c>#<t>  the last result of one health check
//	RATELIMIT#<system>             SEQ#... / SLOT#... shared rate limit per system (pkg/ratelimit)
//
// The idempotency table follows Powertools for AWS Lambda: id, expiration, status,
// in_progress_expiration, data, validation.
package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names of the state table.
const (
	PK        = "pk"
	SK        = "sk"
	ExpiresAt = "expires_at" // TTL, unix seconds; readers must also check it (TTL deletion lags)
)

// LoadAWS loads the AWS configuration without touching the network. Endpoints follow the SDK's
// standard variables (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SECRETS_MANAGER), which is how
// tests and the local stack point the real SDK at local servers.
func LoadAWS(ctx context.Context) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		// A buildable client, so that AWS_CA_BUNDLE (common on operators' machines behind a
		// TLS-inspecting proxy) can still be applied to it; a plain *http.Client makes the
		// SDK refuse to load.
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(5*time.Second)),
		// The SDK's own retries stay on (they handle throttling and a dropped connection), but
		// few and quick: callers are waiting, and every DynamoDB call is bounded as a whole
		// (Bounds), retries included.
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 2
				o.MaxBackoff = 100 * time.Millisecond
			})
		}),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

// NewDynamoDB builds the DynamoDB client every package of a function shares; each of its calls
// is bounded by b (see bounded.go).
func NewDynamoDB(cfg aws.Config, b Bounds) *dynamodb.Client {
	bd := newBound(b)
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, bd.register)
	})
}

// TTL returns the expires_at value for an item that should live for d.
func TTL(now time.Time, d time.Duration) int64 { return now.Add(d).Unix() }

// Attribute values. The builders make them; the readers return the zero value when an
// attribute is absent or of another type, which is what every caller wants of optional fields.

// S is a string attribute.
func S(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// N is a number attribute.
func N[T ~int | ~int64](n T) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(int64(n), 10)}
}

// B is a boolean attribute.
func B(b bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: b} }

// Millis is a time as a number of Unix milliseconds.
func Millis(t time.Time) types.AttributeValue { return N(t.UnixMilli()) }

// String reads a string attribute.
func String(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// Int reads a whole-number attribute.
func Int(item map[string]types.AttributeValue, name string) int64 {
	n, _ := IntOK(item, name)
	return n
}

// IntOK reads a whole-number attribute; ok is false when it is absent or not a whole number.
func IntOK(item map[string]types.AttributeValue, name string) (n int64, ok bool) {
	v, isN := item[name].(*types.AttributeValueMemberN)
	if !isN {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v.Value), 10, 64)
	return n, err == nil
}

// Bool reads a boolean attribute.
func Bool(item map[string]types.AttributeValue, name string) bool {
	v, ok := item[name].(*types.AttributeValueMemberBOOL)
	return ok && v.Value
}

// Time reads a Unix-milliseconds attribute as a UTC time; zero when absent.
func Time(item map[string]types.AttributeValue, name string) time.Time {
	if ms := Int(item, name); ms != 0 {
		return time.UnixMilli(ms).UTC()
	}
	return time.Time{}
}
