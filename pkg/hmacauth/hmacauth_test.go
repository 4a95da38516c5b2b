package hmacauth_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/hmacauth"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

// The signature any implementation must produce, computed independently with
//
//	printf '1795341600.{"incidentSysId":"x"}' | openssl dgst -sha256 -hmac 'k3y'
func TestSignMatchesOpenSSL(t *testing.T) {
	got := hmacauth.Sign([]byte("k3y"), "1795341600", []byte(`{"incidentSysId":"x"}`))
	if want := "a4de6bf181468a3ce366c8fe772598ad30469d7d6a88456cf5c6ba8d2b17f52e"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func verifier(now time.Time, keys ...string) *hmacauth.Verifier {
	return &hmacauth.Verifier{
		Keys: func(context.Context) ([][]byte, error) {
			var out [][]byte
			for _, k := range keys {
				out = append(out, []byte(k))
			}
			return out, nil
		},
		Now: func() time.Time { return now },
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1795341600, 0)
	body := []byte(`{"incidentSysId":"x","priority":"1"}`)
	ts := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	sign := func(key, ts string, b []byte) string { return hmacauth.Sign([]byte(key), ts, b) }
	cases := []struct {
		name      string
		ts, sig   string
		body      []byte
		keys      []string
		wantField string // "" = accepted
	}{
		{"valid", ts(0), sign("current", ts(0), body), body, []string{"current"}, ""},
		{"uppercase hex", ts(0), upper(sign("current", ts(0), body)), body, []string{"current"}, ""},
		{"previous key during rotation", ts(0), sign("previous", ts(0), body), body, []string{"current", "previous"}, ""},
		{"4m59s old", ts(-299 * time.Second), sign("current", ts(-299*time.Second), body), body, []string{"current"}, ""},
		{"clock skew: 4 minutes ahead", ts(4 * time.Minute), sign("current", ts(4*time.Minute), body), body, []string{"current"}, ""},
		{"5m01s old", ts(-301 * time.Second), sign("current", ts(-301*time.Second), body), body, []string{"current"}, hmacauth.HeaderTimestamp},
		{"6 minutes ahead", ts(6 * time.Minute), sign("current", ts(6*time.Minute), body), body, []string{"current"}, hmacauth.HeaderTimestamp},
		{"missing timestamp", "", sign("current", ts(0), body), body, []string{"current"}, hmacauth.HeaderTimestamp},
		{"milliseconds, not seconds", ts(0) + "000", sign("current", ts(0)+"000", body), body, []string{"current"}, hmacauth.HeaderTimestamp},
		{"timestamp with junk", ts(0) + "; x", sign("current", ts(0), body), body, []string{"current"}, hmacauth.HeaderTimestamp},
		{"missing signature", ts(0), "", body, []string{"current"}, hmacauth.HeaderSignature},
		{"wrong key", ts(0), sign("guess", ts(0), body), body, []string{"current"}, hmacauth.HeaderSignature},
		{"body changed", ts(0), sign("current", ts(0), body), []byte(`{"incidentSysId":"x","priority":"2"}`), []string{"current"}, hmacauth.HeaderSignature},
		{"timestamp changed", ts(-10 * time.Second), sign("current", ts(0), body), body, []string{"current"}, hmacauth.HeaderSignature},
		{"not hex", ts(0), "sha256=" + sign("current", ts(0), body), body, []string{"current"}, hmacauth.HeaderSignature},
		{"truncated", ts(0), sign("current", ts(0), body)[:40], body, []string{"current"}, hmacauth.HeaderSignature},
		{"no key configured", ts(0), sign("", ts(0), body), body, []string{""}, hmacauth.HeaderSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := verifier(now, c.keys...).Verify(context.Background(), c.ts, c.sig, c.body)
			if c.wantField == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var r *hmacauth.Rejection
			if !errors.As(err, &r) || !errors.Is(err, hmacauth.ErrRejected) || r.Field != c.wantField {
				t.Fatalf("got %v; want a rejection naming %s", err, c.wantField)
			}
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestUnreadableKeysAreNotARejection(t *testing.T) {
	v := &hmacauth.Verifier{Keys: func(context.Context) ([][]byte, error) { return nil, errors.New("secrets manager down") }}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	err := v.Verify(context.Background(), ts, hmacauth.Sign([]byte("k"), ts, nil), nil)
	if err == nil || errors.Is(err, hmacauth.ErrRejected) {
		t.Fatalf("got %v; a failure on our side must not look like bad credentials", err)
	}
}

// countingDB counts replay-guard writes.
type countingDB struct {
	hmacauth.DB
	puts atomic.Int32
}

func (c *countingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.puts.Add(1)
	return c.DB.PutItem(ctx, in, o...)
}

func TestReplayIsRefusedAcrossEnvironments(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	db := &countingDB{DB: local.Client()}
	body := []byte(`{"incidentSysId":"x"}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sig := hmacauth.Sign([]byte("k"), ts, body)

	// Ten environments receive the same delivery at once: exactly one accepts it.
	var accepted, replays atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := verifier(time.Now(), "k")
			v.Replay = &hmacauth.ReplayGuard{DB: db, Table: tables.State, Scheme: "servicenow"}
			err := v.Verify(context.Background(), ts, sig, body)
			var r *hmacauth.Rejection
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.As(err, &r) && r.Field == hmacauth.HeaderSignature:
				replays.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != 1 || replays.Load() != 9 {
		t.Fatalf("accepted %d, refused as replay %d; want 1 and 9", accepted.Load(), replays.Load())
	}

	// A forged request never reaches the replay guard: rejections have no side effect.
	before := db.puts.Load()
	v := verifier(time.Now(), "k")
	v.Replay = &hmacauth.ReplayGuard{DB: db, Table: tables.State, Scheme: "servicenow"}
	if err := v.Verify(context.Background(), ts, hmacauth.Sign([]byte("forged"), ts, body), body); !errors.Is(err, hmacauth.ErrRejected) {
		t.Fatal(err)
	}
	stale := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	if err := v.Verify(context.Background(), stale, hmacauth.Sign([]byte("k"), stale, body), body); !errors.Is(err, hmacauth.ErrRejected) {
		t.Fatal(err)
	}
	if db.puts.Load() != before {
		t.Fatal("a rejected request wrote to the state table")
	}
}

func TestExpiredMarkerDoesNotBlock(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	g := &hmacauth.ReplayGuard{DB: local.Client(), Table: tables.State, Scheme: "servicenow"}
	sig := hmacauth.Sign([]byte("k"), "1", nil)
	now := time.Now()
	if err := g.Claim(context.Background(), sig, now.Add(-time.Hour), now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := g.Claim(context.Background(), sig, now, now.Add(time.Minute)); err != nil {
		t.Fatalf("a marker past its expiry (not yet deleted by TTL) must not count: %v", err)
	}
	if err := g.Claim(context.Background(), sig, now, now.Add(time.Minute)); !errors.Is(err, hmacauth.ErrRejected) {
		t.Fatalf("a live marker must count: %v", err)
	}
}

func TestStoreFailureIsNotARejection(t *testing.T) {
	g := &hmacauth.ReplayGuard{DB: dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1")}), Table: "t", Scheme: "servicenow"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := g.Claim(ctx, "ab", time.Now(), time.Now().Add(time.Minute))
	if err == nil || errors.Is(err, hmacauth.ErrRejected) {
		t.Fatalf("got %v; an unreachable store is our failure, not a replay", err)
	}
}
