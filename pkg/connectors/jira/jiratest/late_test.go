package jiratest_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

func TestAnswerLateTakesEffectButHoldsTheAnswer(t *testing.T) {
	s := jiratest.New(jiratest.Config{Email: "bot@example.com", APIToken: "tok"})
	defer s.Close()
	s.AnswerLate("/rest/servicedeskapi/request", time.Minute, 1)
	body := []byte(`{"serviceDeskId":"1","requestTypeId":"10","requestFieldValues":{"summary":"lost answer"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/rest/servicedeskapi/request", bytes.NewReader(body))
	req.SetBasicAuth("bot@example.com", "tok")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered with %d; the answer must be held back", resp.StatusCode)
	}
	if n := s.RequestCount(); n != 1 {
		t.Fatalf("%d requests: the create must have taken effect", n)
	}
	// only once: the next request is answered at once
	code, _, _ := call(t, s, http.MethodPost, "/rest/servicedeskapi/request", map[string]any{
		"serviceDeskId": "1", "requestTypeId": "10", "requestFieldValues": map[string]any{"summary": "second"}})
	if code != http.StatusCreated || s.RequestCount() != 2 {
		t.Fatalf("second create: %d", code)
	}
}
