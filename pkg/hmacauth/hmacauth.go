// Package hmacauth verifies cxbridge's own request signature, which callers without a signing
// scheme of their own (the ServiceNow business rule) send besides the API key:
//
//	X-Cxbridge-Timestamp: <unix seconds>
//	X-Cxbridge-Signature: <lowercase hex HMAC-SHA256(key, timestamp + "." + raw body)>
//
// A request is accepted when the timestamp is within Window of the receiver's clock (either
// direction, for clock skew), the signature matches one of the configured keys (the current one,
// or the previous one during a rotation), and the signature has not been seen before. The
// replay guard is a conditional write to the state table, so it holds across every concurrent
// Lambda environment; it is consulted only after the signature verified, so a forged request
// never writes anything.
package hmacauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/store"
)

// Header names.
const (
	HeaderTimestamp = "X-Cxbridge-Timestamp"
	HeaderSignature = "X-Cxbridge-Signature"
)

// DefaultWindow is how far a timestamp may be from the receiver's clock.
const DefaultWindow = 5 * time.Minute

// ErrRejected is matched (errors.Is) by every verification failure; the error is a *Rejection.
var ErrRejected = errors.New("request signature rejected")

// Rejection says why a request was refused. It must be answered with 401 and no side effect.
type Rejection struct {
	Field  string // the header at fault
	Reason string
}

func (r *Rejection) Error() string { return r.Field + ": " + r.Reason }

// Is makes errors.Is(err, ErrRejected) true.
func (r *Rejection) Is(target error) bool { return target == ErrRejected }

// Sign returns the signature of body sent at timestamp (unix seconds, as sent in the header).
func Sign(key []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Verifier checks signed requests.
type Verifier struct {
	// Keys returns the accepted signing keys, current first. An error means the keys could not
	// be read (Secrets Manager down, secret malformed): not the caller's fault, so not a
	// Rejection.
	Keys func(ctx context.Context) ([][]byte, error)
	// Window bounds the timestamp's distance from Now; 0 means DefaultWindow.
	Window time.Duration
	// Replay, when set, refuses a signature seen before.
	Replay *ReplayGuard
	Now    func() time.Time
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) window() time.Duration {
	if v.Window > 0 {
		return v.Window
	}
	return DefaultWindow
}

// Verify checks the timestamp and signature headers of a request with the given raw body and
// claims the signature against replays. It returns nil, a *Rejection (answer 401), or another
// error (the keys or the replay guard could not be read: answer 5xx and let the sender retry).
func (v *Verifier) Verify(ctx context.Context, timestamp, signature string, body []byte) error {
	signed, err := v.Check(ctx, timestamp, signature, body)
	if err != nil {
		return err
	}
	return signed.Claim(ctx)
}

// Signed is a request whose signature checked out but is not yet claimed against replays.
type Signed struct {
	v        *Verifier
	sig      []byte
	now, end time.Time
}

// Check is Verify without the replay claim, for a caller that must first see whether the body
// is usable: a request refused for its content must leave nothing behind. Call Claim before
// acting on the request.
func (v *Verifier) Check(ctx context.Context, timestamp, signature string, body []byte) (*Signed, error) {
	timestamp, signature = strings.TrimSpace(timestamp), strings.TrimSpace(signature)
	if timestamp == "" {
		return nil, &Rejection{HeaderTimestamp, "missing"}
	}
	if signature == "" {
		return nil, &Rejection{HeaderSignature, "missing"}
	}
	secs, err := parseUnix(timestamp)
	if err != nil {
		return nil, &Rejection{HeaderTimestamp, "not unix seconds"}
	}
	now := v.now()
	sent := time.Unix(secs, 0)
	if d := now.Sub(sent); d > v.window() || d < -v.window() {
		return nil, &Rejection{HeaderTimestamp, fmt.Sprintf("outside the %s window", v.window())}
	}
	got, err := hex.DecodeString(signature)
	if err != nil || len(got) != sha256.Size {
		return nil, &Rejection{HeaderSignature, "not a hex HMAC-SHA256"}
	}
	keys, err := v.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("hmacauth: signing keys: %w", err)
	}
	matched := false
	for _, k := range keys {
		if len(k) == 0 {
			continue
		}
		want, _ := hex.DecodeString(Sign(k, timestamp, body))
		if hmac.Equal(got, want) {
			matched = true
			break
		}
	}
	if !matched {
		return nil, &Rejection{HeaderSignature, "does not match"}
	}
	// The marker lives as long as the timestamp is acceptable, plus skew: after that the
	// window check alone refuses the request.
	return &Signed{v: v, sig: got, now: now, end: sent.Add(v.window()).Add(time.Minute)}, nil
}

// Claim records the signature as used; a signature claimed before is a *Rejection (replay).
func (s *Signed) Claim(ctx context.Context) error {
	if s.v.Replay == nil {
		return nil
	}
	return s.v.Replay.Claim(ctx, hex.EncodeToString(s.sig), s.now, s.end)
}

// parseUnix accepts 1 to 12 ASCII digits.
func parseUnix(s string) (int64, error) {
	if len(s) == 0 || len(s) > 12 {
		return 0, errors.New("length")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a digit")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// DB is the part of *dynamodb.Client the replay guard uses.
type DB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// ReplayGuard remembers signatures in the state table (pk REPLAY#<scheme>#<signature>,
// sk REPLAY, expires_at).
type ReplayGuard struct {
	DB     DB
	Table  string
	Scheme string // e.g. "servicenow"
}

// ReplayKey is the state-table key of a signature's marker.
func (g *ReplayGuard) ReplayKey(signature string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		store.PK: store.S("REPLAY#" + g.Scheme + "#" + strings.ToLower(signature)),
		store.SK: store.S("REPLAY"),
	}
}

// Claim records signature as seen until until. It returns a *Rejection when the signature was
// seen before (and its marker has not expired), or the store's error.
func (g *ReplayGuard) Claim(ctx context.Context, signature string, now, until time.Time) error {
	item := g.ReplayKey(signature)
	item[store.ExpiresAt] = store.N(until.Unix())
	item["seen_at"] = store.S(now.UTC().Format(time.RFC3339Nano))
	_, err := g.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(g.Table),
		Item:      item,
		// An expired marker that DynamoDB has not deleted yet does not count.
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR expires_at < :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": store.N(now.Unix())},
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return &Rejection{HeaderSignature, "already used (replay)"}
	case err != nil:
		return fmt.Errorf("hmacauth: replay guard: %w", err)
	}
	return nil
}
