package localstack

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// seeders prepare what spans systems once every fake has started: a Genesys conversation and
// the state-table item that points to it, or a field of a secret several functions share. Each
// function's seed file adds its own in init.
var seeders []func(ctx context.Context, s *Stack) error

func seeder(f func(ctx context.Context, s *Stack) error) { seeders = append(seeders, f) }

func (s *Stack) seed(ctx context.Context) error {
	for _, f := range seeders {
		if err := f(ctx, s); err != nil {
			return fmt.Errorf("localstack: seed: %w", err)
		}
	}
	return nil
}

// Preparer rewrites an event just before it is sent.
type preparer func(ctx context.Context, s *Stack, event []byte) ([]byte, error)

// preparers are keyed by "<function>/<file>" or "<function>/*" (every event of a function
// without its own entry).
var preparers = map[string]preparer{}

// PrepareEvent makes an event under events/ ready to send now. Most events are sent as they
// are; a signed one (priority-sync) carries a timestamp that must be within minutes of now, so
// it is signed again with the local key at the current time, exactly as its sender would sign
// it at send time. eventPath is the file's path; its last two elements (function directory and
// file name) select what is done.
func (s *Stack) PrepareEvent(ctx context.Context, eventPath string, event []byte) ([]byte, error) {
	p := filepath.ToSlash(eventPath)
	dir, file := path.Split(p)
	fn := path.Base(strings.TrimSuffix(dir, "/"))
	if f, ok := preparers[fn+"/"+file]; ok {
		return f(ctx, s, event)
	}
	if f, ok := preparers[fn+"/*"]; ok {
		return f(ctx, s, event)
	}
	return event, nil
}
