// Package secrets reads JSON secrets from AWS Secrets Manager and keeps them in memory.
//
// Secrets are fetched on first use, never at cold start, cached per execution environment for a
// TTL, and never written back or logged. Concurrent first reads share one GetSecretValue call.
// When a refresh fails the previous value is kept for a grace period, so a Secrets Manager blip
// does not take every integration down with it; meanwhile a refresh is retried at most every 30 s
// (or TTL, if shorter), so calls during the outage do not each wait for Secrets Manager.
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
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
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
	// retryAt, after a failed refresh, is when the next refresh may be tried; until then the
	// stale value is served without asking Secrets Manager again.
	retryAt time.Time
}

// refreshRetry spaces refresh attempts while Secrets Manager is failing, so that not every call
// of an outage waits out the SDK's retries before getting the stale value.
const refreshRetry = 30 * time.Second

// fetchTimeout bounds one shared fetch, which no single caller's context may cancel.
const fetchTimeout = 10 * time.Second

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

// ErrNotFound is returned (wrapped, with the id) when Secrets Manager has no such secret.
var ErrNotFound = errors.New("secret not found")

// String returns the secret's string value.
func (c *Cache) String(ctx context.Context, id string) (string, error) {
	if id == "" {
		return "", ErrNotConfigured
	}
	if v, ok := c.cached(id, false); ok {
		return v, nil
	}
	// DoChan, with a fetch no caller can cancel: one caller giving up must not fail the others
	// who share the fetch.
	ch := c.flight.DoChan(id, func() (any, error) {
		// a caller that missed the cache just before the previous fetch stored its value
		if v, ok := c.cached(id, false); ok {
			return v, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		v, err := c.fetch(fctx, id)
		if err != nil {
			c.mu.Lock()
			if e, ok := c.entries[id]; ok {
				e.retryAt = c.now().Add(min(c.ttl, refreshRetry))
				c.entries[id] = e
			}
			c.mu.Unlock()
		}
		return v, err
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			if v, ok := c.cached(id, true); ok {
				return v, nil
			}
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

// cached returns the value while it is fresh, or while a failed refresh is backing off; with
// stale, also for the grace period after the TTL.
func (c *Cache) cached(id string, stale bool) (string, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return "", false
	}
	age := now.Sub(e.fetched)
	inGrace := age < c.ttl+c.grace
	if age < c.ttl || (inGrace && (stale || now.Before(e.retryAt))) {
		return e.value, true
	}
	return "", false
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
		var nf *types.ResourceNotFoundException
		if errors.As(err, &nf) {
			return "", fmt.Errorf("read secret %s: %w: %w", id, ErrNotFound, err)
		}
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
