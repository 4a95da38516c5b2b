//go:build !unix

package dynamotest

// lockFile does not lock where flock is unavailable: run `npm ci` in pkg/dynamotest once
// before running tests in parallel there.
func lockFile(string) (func(), error) { return func() {}, nil }
