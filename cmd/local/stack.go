package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

// startStack starts the local stack with the overrides in paramsFile (none when empty),
// telling progress what a slow first start is doing.
func startStack(ctx context.Context, logs, progress io.Writer, paramsFile string) (*localstack.Stack, error) {
	o, err := loadOverrides(paramsFile)
	if err != nil {
		return nil, err
	}
	if !o.Empty() {
		fmt.Fprintf(progress, "  overrides from %s: %s\n", paramsFile, o)
	}
	return localstack.Start(ctx, localstack.Options{Logs: logs, Progress: progress, Overrides: o})
}

// loadOverrides reads a parameter overrides file against the repository's template.
func loadOverrides(path string) (localstack.Overrides, error) {
	if path == "" {
		return localstack.Overrides{}, nil
	}
	root, err := dynamotest.RepoRoot()
	if err != nil {
		return localstack.Overrides{}, err
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		return localstack.Overrides{}, err
	}
	return localstack.LoadOverrides(path, tpl)
}
