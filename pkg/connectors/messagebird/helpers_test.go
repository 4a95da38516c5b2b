package messagebird_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

const (
	testAccessKey  = "test_gshuPaZoeEG6ovbc8M79w0QyM"
	testSigningKey = "signing-key-not-the-api-key"
	secretID       = "cxbridge/messagebird"
)

// secretStore is a connectors.SecretReader that caches like pkg/secrets: values are read from
// the "source" once and kept until Invalidate.
type secretStore struct {
	mu            sync.Mutex
	source        map[string]any
	cache         map[string][]byte
	loads         int
	invalidations int
}

func newSecrets(c messagebird.Credentials) *secretStore {
	return &secretStore{source: map[string]any{secretID: c}, cache: map[string][]byte{}}
}

func (s *secretStore) JSON(_ context.Context, id string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.cache[id]
	if !ok {
		src, ok := s.source[id]
		if !ok {
			return fmt.Errorf("secret %s not found", id)
		}
		b, _ = json.Marshal(src)
		s.cache[id] = b
		s.loads++
	}
	return json.Unmarshal(b, v)
}

func (s *secretStore) Invalidate(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, id)
	s.invalidations++
}

func (s *secretStore) set(c messagebird.Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.source[secretID] = c
}

type env struct {
	fake    *messagebirdtest.Server
	client  *messagebird.Client
	secrets *secretStore
}

func setup(t *testing.T, opts ...messagebird.Option) env {
	t.Helper()
	fake := messagebirdtest.New(testAccessKey, testSigningKey)
	t.Cleanup(fake.Close)
	sec := newSecrets(messagebird.Credentials{AccessKey: testAccessKey, SigningKey: testSigningKey})
	return env{fake: fake, secrets: sec, client: messagebird.New(fake.URL(), sec, secretID, nil, opts...)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// receiver is the bridge's webhook route in miniature: it verifies with the configured public
// URL (not its own), remembers jti values, and answers 401 / 200 / 200 "duplicate".
type receiver struct {
	srv       *httptest.Server
	publicURL string
	key       string

	mu      sync.Mutex
	results []verifyResult
	seen    map[string]bool
}

type verifyResult struct {
	claims    messagebird.Claims
	err       error
	body      []byte
	duplicate bool
}

func newReceiver(t *testing.T, publicURL, key string) *receiver {
	rc := &receiver{publicURL: publicURL, key: key, seen: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		claims, err := messagebird.VerifyJWT(rc.key, r.Header.Get(messagebird.SignatureHeader), rc.publicURL, body, time.Now())
		rc.mu.Lock()
		res := verifyResult{claims: claims, err: err, body: body}
		if err == nil {
			res.duplicate = rc.seen[claims.JTI]
			rc.seen[claims.JTI] = true
		}
		rc.results = append(rc.results, res)
		rc.mu.Unlock()
		switch {
		case err != nil:
			http.Error(w, "invalid signature", http.StatusUnauthorized)
		case res.duplicate:
			_, _ = io.WriteString(w, "duplicate")
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) last(t *testing.T) verifyResult {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.results) == 0 {
		t.Fatal("receiver got nothing")
	}
	return rc.results[len(rc.results)-1]
}
