package main

import (
	"context"
	"os"

	"github.com/cxbridge/cxbridge/pkg/localstack"
)

func startStack(ctx context.Context) (*localstack.Stack, error) {
	return localstack.Start(ctx, localstack.Options{Logs: os.Stderr})
}
