// Package secrets reads JSON secrets from AWS Secrets Manager and keeps them in memory.
//
// Secrets are fetched on first use, never at cold start, cached per execution environment for a
// TTL, and never written back or logged. Concurrent first reads share one GetSecretValue call.
// When a refresh fails the previous value is kept for a grace period, so a Secrets Manager blip
// does not take every integration down with it.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/sync/singleflight"
)

// API is the part of the Secrets Manager client the cache uses.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Cache is a TTL cache of secret strings keyed by secret id.
type Cache struct {
	api   API
	ttl   time.Duration
	grace time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]entry
	flight  singleflight.Group
}

type entry struct {
	value   string
	fetched time.Time
}

// Option changes a Cache.
type Option func(*Cache)

// WithTTL sets how long a value is served before it is fetched again (default 5 minutes, the
// same as the AWS Parameters and Secrets extension).
func WithTTL(d time.Duration) Option { return func(c *Cache) { c.ttl = d } }

// WithGrace sets how long past its TTL a value is still served when a refresh fails (default 1 h).
func WithGrace(d time.Duration) Option { return func(c *Cache) { c.grace = d } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(c *Cache) { c.now = now } }

// New returns a cache over api.
func New(api API, opts ...Option) *Cache {
	c := &Cache{api: api, ttl: 5 * time.Minute, grace: time.Hour, now: time.Now, entries: map[string]entry{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NewFromConfig builds the Secrets Manager client from an AWS config. The endpoint follows
// AWS_ENDPOINT_URL_SECRETS_MANAGER when set, which is how tests and the local stack redirect it.
func NewFromConfig(cfg aws.Config, opts ...Option) *Cache {
	return New(secretsmanager.NewFromConfig(cfg), opts...)
}

// ErrNotConfigured is returned for an empty secret id.
var ErrNotConfigured = errors.New("secret id is not configured")

// String returns the secret's string value.
func (c *Cache) String(ctx context.Context, id string) (string, error) {
	if id == "" {
		return "", ErrNotConfigured
	}
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Sub(e.fetched) < c.ttl {
		return e.value, nil
	}
	v, err, _ := c.flight.Do(id, func() (any, error) { return c.fetch(ctx, id) })
	if err != nil {
		if ok && now.Sub(e.fetched) < c.ttl+c.grace {
			return e.value, nil
		}
		return "", err
	}
	return v.(string), nil
}

// JSON decodes the secret's JSON value into v. Decode errors never include the secret text.
func (c *Cache) JSON(ctx context.Context, id string, v any) error {
	s, err := c.String(ctx, id)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("secret %s is not valid JSON (at byte %d)", id, se.Offset)
		case errors.As(err, &te):
			return fmt.Errorf("secret %s: field %q has the wrong type", id, te.Field)
		default:
			return fmt.Errorf("secret %s cannot be decoded", id)
		}
	}
	return nil
}

// Invalidate forgets a secret so the next read fetches it again (after a 401 from the system it
// authenticates to, in case it was rotated).
func (c *Cache) Invalidate(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

func (c *Cache) fetch(ctx context.Context, id string) (string, error) {
	out, err := c.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", id, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("secret %s has no string value (binary secrets are not supported)", id)
	}
	c.mu.Lock()
	c.entries[id] = entry{value: *out.SecretString, fetched: c.now()}
	c.mu.Unlock()
	return *out.SecretString, nil
}
