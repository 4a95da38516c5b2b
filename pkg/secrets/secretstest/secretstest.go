// Package secretstest is a wire-level fake of AWS Secrets Manager for tests and the local stack.
//
// It speaks the JSON 1.1 protocol the SDK uses (POST /, X-Amz-Target:
// secretsmanager.GetSecretValue or secretsmanager.DescribeSecret) and answers missing secrets
// with the same ResourceNotFoundException the service sends, so the real SDK client runs
// unchanged against it.
package secretstest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
)

// Server serves secrets from memory.
type Server struct {
	srv *httptest.Server

	mu      sync.Mutex
	secrets map[string]string
	calls   map[string]int
	failing bool
	latency time.Duration
}

// New starts a fake on a free 127.0.0.1 port. Stop it with Close.
func New(secrets map[string]string) *Server {
	s := &Server{secrets: map[string]string{}, calls: map[string]int{}}
	for k, v := range secrets {
		s.secrets[k] = v
	}
	s.srv = fakehttp.Start("secretstest", http.HandlerFunc(s.serve))
	return s
}

// LoadFile reads a JSON object of secret id -> secret value, where a value may be a JSON
// object (stored as its JSON text) or a string.
func LoadFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for id, v := range raw {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[id] = s
		} else {
			out[id] = string(v)
		}
	}
	return out, nil
}

// URL is the endpoint to put in AWS_ENDPOINT_URL_SECRETS_MANAGER.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Put sets or rotates a secret.
func (s *Server) Put(id, value string) {
	s.mu.Lock()
	s.secrets[id] = value
	s.mu.Unlock()
}

// SetFailing makes every call answer 500 InternalServiceError (or stop doing so).
func (s *Server) SetFailing(v bool) {
	s.mu.Lock()
	s.failing = v
	s.mu.Unlock()
}

// SetLatency makes every call take at least d (a slow Secrets Manager), or stop doing so.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// Calls returns how many times an operation ("GetSecretValue", "DescribeSecret") was called.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "secretsmanager.")
	var in struct {
		SecretID string `json:"SecretId"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&in) != nil {
		writeErr(w, http.StatusBadRequest, "SerializationException", "could not read the request")
		return
	}
	s.mu.Lock()
	s.calls[op]++
	value, ok := s.secrets[in.SecretID]
	failing, latency := s.failing, s.latency
	s.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	if failing {
		writeErr(w, http.StatusInternalServerError, "InternalServiceError", "service unavailable")
		return
	}
	if !ok {
		writeErr(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	arn := "arn:aws:secretsmanager:us-east-1:000000000000:secret:" + in.SecretID + "-AbCdEf"
	switch op {
	case "GetSecretValue":
		write(w, map[string]any{
			"ARN": arn, "Name": in.SecretID, "SecretString": value,
			"VersionId": "00000000-0000-0000-0000-000000000001", "VersionStages": []string{"AWSCURRENT"},
			"CreatedDate": float64(time.Now().Unix()),
		})
	case "DescribeSecret":
		write(w, map[string]any{
			"ARN": arn, "Name": in.SecretID,
			"VersionIdsToStages": map[string][]string{"00000000-0000-0000-0000-000000000001": {"AWSCURRENT"}},
		})
	default:
		writeErr(w, http.StatusBadRequest, "UnknownOperationException", "operation "+op+" is not supported by this fake")
	}
}

func write(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", typ)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "Message": msg})
}

// Client is the real AWS SDK Secrets Manager client pointed at the fake, with static local
// credentials: what a function builds from AWS_ENDPOINT_URL_SECRETS_MANAGER, for in-process tests.
func (s *Server) Client() *secretsmanager.Client {
	return secretsmanager.New(secretsmanager.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
	})
}
