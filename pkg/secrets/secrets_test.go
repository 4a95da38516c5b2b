package secrets_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

const (
	jiraID   = "cxbridge/jira"
	jiraJSON = `{"email":"svc@acme.example","apiToken":"ATATT3xFfGF0-super-secret-token"}`
)

// fake starts the wire-level Secrets Manager fake and returns a real SDK client for it. The
// SDK's own retries are off so that the fake's call counts are the cache's calls.
func fake(t *testing.T, secretsByID map[string]string) (*secretstest.Server, *secretsmanager.Client) {
	t.Helper()
	sm := secretstest.New(secretsByID)
	t.Cleanup(sm.Close)
	client := secretsmanager.New(secretsmanager.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(sm.URL()),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
		RetryMaxAttempts: 1,
	})
	return sm, client
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type jiraSecret struct {
	Email    string `json:"email"`
	APIToken string `json:"apiToken"`
}

func TestManyReadsOneCall(t *testing.T) {
	sm, client := fake(t, map[string]string{jiraID: jiraJSON, "cxbridge/inbound": "hmac-key"})
	c := secrets.New(client)
	ctx := context.Background()
	for range 10 {
		var s jiraSecret
		if err := c.JSON(ctx, jiraID, &s); err != nil || s.Email != "svc@acme.example" || s.APIToken != "ATATT3xFfGF0-super-secret-token" {
			t.Fatalf("JSON = %+v, %v", s, err)
		}
		if v, err := c.String(ctx, "cxbridge/inbound"); err != nil || v != "hmac-key" {
			t.Fatalf("String = %q, %v", v, err)
		}
	}
	if n := sm.Calls("GetSecretValue"); n != 2 {
		t.Errorf("GetSecretValue called %d times for 20 reads of 2 secrets; want 2", n)
	}
}

func TestConcurrentFirstReadsShareOneCall(t *testing.T) {
	sm, client := fake(t, map[string]string{jiraID: jiraJSON})
	sm.SetLatency(100 * time.Millisecond) // everyone arrives while the first call is in flight
	c := secrets.New(client)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			v, err := c.String(context.Background(), jiraID)
			if err == nil && v != jiraJSON {
				err = errors.New("wrong value " + v)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := sm.Calls("GetSecretValue"); n != 1 {
		t.Errorf("GetSecretValue called %d times; want 1", n)
	}
}

// A caller that gives up must not fail the others waiting on the same fetch.
func TestCancelledReaderDoesNotFailOthers(t *testing.T) {
	sm, client := fake(t, map[string]string{jiraID: jiraJSON})
	sm.SetLatency(200 * time.Millisecond)
	c := secrets.New(client)

	impatient, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	impatientErr := make(chan error, 1)
	go func() { _, err := c.String(impatient, jiraID); impatientErr <- err }()
	time.Sleep(5 * time.Millisecond)
	v, err := c.String(context.Background(), jiraID)
	if err != nil || v != jiraJSON {
		t.Errorf("patient reader got %q, %v; want the value", v, err)
	}
	if err := <-impatientErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("impatient reader got %v; want its own deadline", err)
	}
	if n := sm.Calls("GetSecretValue"); n != 1 {
		t.Errorf("GetSecretValue called %d times; want 1", n)
	}
}

func TestTTLExpiryRefetches(t *testing.T) {
	sm, client := fake(t, map[string]string{jiraID: `{"apiToken":"v1"}`})
	clk := newClock()
	c := secrets.New(client, secrets.WithClock(clk.Now), secrets.WithTTL(5*time.Minute))
	ctx := context.Background()
	read := func() string {
		var s jiraSecret
		if err := c.JSON(ctx, jiraID, &s); err != nil {
			t.Fatal(err)
		}
		return s.APIToken
	}
	if got := read(); got != "v1" {
		t.Fatalf("read = %q", got)
	}
	sm.Put(jiraID, `{"apiToken":"v2"}`) // rotated
	clk.Add(5*time.Minute - time.Second)
	if got := read(); got != "v1" || sm.Calls("GetSecretValue") != 1 {
		t.Errorf("before the TTL: read = %q after %d calls; want the cached v1", got, sm.Calls("GetSecretValue"))
	}
	clk.Add(2 * time.Second)
	if got := read(); got != "v2" || sm.Calls("GetSecretValue") != 2 {
		t.Errorf("after the TTL: read = %q after %d calls; want the rotated v2", got, sm.Calls("GetSecretValue"))
	}
}

func TestDefaultTTLIsFiveMinutes(t *testing.T) {
	sm, client := fake(t, map[string]string{jiraID: jiraJSON})
	clk := newClock()
	c := secrets.New(client, secrets.WithClock(clk.Now))
	_, _ = c.String(context.Background(), jiraID)
	clk.Add(4 * time.Minute)
	_, _ = c.String(context.Background(), jiraID)
	clk.Add(2 * time.Minute)
	_, _ = c.String(context.Background(), jiraID)
	if n := sm.Calls("GetSecretValue"); n != 2 {
		t.Errorf("GetSecretValue called %d times over 6 minutes; want 2", n)
	}
}

// A Secrets Manager outage: the last value keeps integrations running for the grace period,
// without every call waiting for Secrets Manager, and then the failure shows.
func TestStaleValueDuringOutage(t *testing.T) {
	sm, client := fake(t, map[string]string{jiraID: jiraJSON})
	clk := newClock()
	c := secrets.New(client, secrets.WithClock(clk.Now), secrets.WithTTL(time.Minute), secrets.WithGrace(10*time.Minute))
	ctx := context.Background()
	if _, err := c.String(ctx, jiraID); err != nil {
		t.Fatal(err)
	}
	sm.SetFailing(true)
	calls := func() int { return sm.Calls("GetSecretValue") }

	clk.Add(2 * time.Minute) // past the TTL: a refresh is tried, fails, the stale value is served
	if v, err := c.String(ctx, jiraID); err != nil || v != jiraJSON || calls() != 2 {
		t.Fatalf("refresh failed: String = %q, %v after %d calls; want the stale value after 2", v, err, calls())
	}
	clk.Add(10 * time.Second) // soon after: the stale value, without asking again
	if v, err := c.String(ctx, jiraID); err != nil || v != jiraJSON || calls() != 2 {
		t.Errorf("10 s later: String = %q, %v after %d calls; want the stale value, still 2 calls", v, err, calls())
	}
	clk.Add(time.Minute) // later: tried again
	if v, err := c.String(ctx, jiraID); err != nil || v != jiraJSON || calls() != 3 {
		t.Errorf("a minute later: String = %q, %v after %d calls; want another attempt (3) and the stale value", v, err, calls())
	}
	clk.Add(10 * time.Minute) // beyond TTL + grace
	v, err := c.String(ctx, jiraID)
	if err == nil || v != "" {
		t.Fatalf("after the grace period: String = %q, %v; want the error", v, err)
	}
	if !strings.Contains(err.Error(), jiraID) || !strings.Contains(err.Error(), "InternalServiceError") {
		t.Errorf("error %q should name the secret and the cause", err)
	}
	sm.SetFailing(false)
	if v, err := c.String(ctx, jiraID); err != nil || v != jiraJSON {
		t.Errorf("after recovery: String = %q, %v", v, err)
	}
}

func TestNoStaleValueOnFirstRead(t *testing.T) {
	sm, client := fake(t, map[string]string{jiraID: jiraJSON})
	sm.SetFailing(true)
	if _, err := secrets.New(client).String(context.Background(), jiraID); err == nil {
		t.Error("String succeeded with Secrets Manager failing and nothing cached")
	}
}

func TestMissingSecret(t *testing.T) {
	_, client := fake(t, map[string]string{})
	_, err := secrets.New(client).String(context.Background(), "cxbridge/servicenow")
	if err == nil {
		t.Fatal("String succeeded for a missing secret")
	}
	if !strings.Contains(err.Error(), "cxbridge/servicenow") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("error %q should name the secret id and say it was not found", err)
	}
	var nf *types.ResourceNotFoundException
	if !errors.Is(err, secrets.ErrNotFound) || !errors.As(err, &nf) {
		t.Errorf("error %v: want errors.Is ErrNotFound and the SDK's ResourceNotFoundException", err)
	}
}

func TestEmptyIDIsNotConfigured(t *testing.T) {
	sm, client := fake(t, map[string]string{"": "x"})
	c := secrets.New(client)
	if _, err := c.String(context.Background(), ""); !errors.Is(err, secrets.ErrNotConfigured) {
		t.Errorf("String(\"\") = %v; want ErrNotConfigured", err)
	}
	var v map[string]string
	if err := c.JSON(context.Background(), "", &v); !errors.Is(err, secrets.ErrNotConfigured) {
		t.Errorf("JSON(\"\") = %v; want ErrNotConfigured", err)
	}
	if sm.Calls("GetSecretValue") != 0 {
		t.Error("Secrets Manager was called for an empty id")
	}
}

func TestJSONErrorsNeverShowTheSecret(t *testing.T) {
	tests := []struct {
		name, value, want string
		leaks             []string
	}{
		{"truncated", `{"email":"svc@acme.example","apiToken":"ATATT3x-leak`, "not valid JSON", []string{"ATATT3x", "svc@acme"}},
		{"not JSON", `ATATT3x-plain-token`, "not valid JSON", []string{"ATATT3x"}},
		{"wrong type", `{"email":"svc@acme.example","apiToken":981273645}`, `field "apiToken" has the wrong type`, []string{"981273645", "svc@acme"}},
		{"array", `["ATATT3x-in-array"]`, "wrong type", []string{"ATATT3x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, client := fake(t, map[string]string{jiraID: tt.value})
			var s jiraSecret
			err := secrets.New(client).JSON(context.Background(), jiraID, &s)
			if err == nil {
				t.Fatal("JSON succeeded")
			}
			if !strings.Contains(err.Error(), jiraID) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q should name the secret and say %q", err, tt.want)
			}
			for _, leak := range tt.leaks {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q shows secret text %q", err, leak)
				}
			}
		})
	}
}

func TestInvalidateRefetches(t *testing.T) {
	sm, client := fake(t, map[string]string{jiraID: `{"apiToken":"old"}`})
	c := secrets.New(client)
	ctx := context.Background()
	var s jiraSecret
	_ = c.JSON(ctx, jiraID, &s)
	sm.Put(jiraID, `{"apiToken":"rotated"}`)
	c.Invalidate(jiraID)
	if err := c.JSON(ctx, jiraID, &s); err != nil || s.APIToken != "rotated" || sm.Calls("GetSecretValue") != 2 {
		t.Errorf("after Invalidate: %+v, %v, %d calls; want the rotated value from a new call", s, err, sm.Calls("GetSecretValue"))
	}
	// a secret known to be bad (a 401 invalidated it) is not served as stale
	c.Invalidate(jiraID)
	sm.SetFailing(true)
	if err := c.JSON(ctx, jiraID, &s); err == nil {
		t.Error("an invalidated secret was served while Secrets Manager failed")
	}
	c.Invalidate("never-read") // harmless
}

// The production wiring: the endpoint comes from AWS_ENDPOINT_URL_SECRETS_MANAGER, nothing else
// changes.
func TestNewFromConfigFollowsEndpointVariable(t *testing.T) {
	sm := secretstest.New(map[string]string{jiraID: jiraJSON})
	t.Cleanup(sm.Close)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.URL(),
		"AWS_REGION":                       "eu-west-1",
		"AWS_ACCESS_KEY_ID":                "AKIDLOCAL",
		"AWS_SECRET_ACCESS_KEY":            "local-secret",
		"AWS_SESSION_TOKEN":                "",
		"AWS_PROFILE":                      "",
		"AWS_CONFIG_FILE":                  filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":      filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":        "true",
		"AWS_ENDPOINT_URL":                 "",
	} {
		t.Setenv(k, v)
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, err := secrets.NewFromConfig(cfg).String(context.Background(), jiraID)
	if err != nil || v != jiraJSON || sm.Calls("GetSecretValue") != 1 {
		t.Errorf("String = %q, %v (%d calls to the fake)", v, err, sm.Calls("GetSecretValue"))
	}
}

func TestFakeLoadFileAndDescribe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(path, []byte(`{"cxbridge/jira":{"email":"svc@acme.example"},"cxbridge/inbound":"hmac-key"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := secretstest.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded["cxbridge/jira"] != `{"email":"svc@acme.example"}` || loaded["cxbridge/inbound"] != "hmac-key" {
		t.Errorf("LoadFile = %v", loaded)
	}
	if _, err := secretstest.LoadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadFile(missing) succeeded")
	}
	sm, client := fake(t, loaded)
	out, err := client.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("cxbridge/jira")})
	if err != nil || aws.ToString(out.Name) != "cxbridge/jira" || len(out.VersionIdsToStages) != 1 || sm.Calls("DescribeSecret") != 1 {
		t.Errorf("DescribeSecret = %+v, %v", out, err)
	}
}
