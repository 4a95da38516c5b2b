//go:build unix

package dynamotest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// TestPauseStallsAndResumeRecovers: a paused instance takes the connection but never answers,
// so a call ends only at its deadline; after Resume the same client works again.
func TestPauseStallsAndResumeRecovers(t *testing.T) {
	t.Setenv(EndpointEnv, "")
	l, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	if err := l.Pause(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	noRetry := func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }
	if _, err := l.Client().ListTables(ctx, &dynamodb.ListTablesInput{}, noRetry); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call to the paused instance: %v, want the caller's deadline", err)
	}
	if err := l.Resume(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.Client().ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("after Resume: %v", err)
	}
	if err := (&Local{endpoint: l.endpoint}).Pause(); err == nil {
		t.Error("pausing a reused instance succeeded")
	}
}
