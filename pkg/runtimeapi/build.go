package runtimeapi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// BuildBootstrap compiles the Lambda function in pkgDir (relative to moduleRoot, or absolute)
// into outPath with the flags of the deployment build (-tags lambda.norpc -trimpath
// -ldflags="-s -w", CGO_ENABLED=0) but for the host's GOOS/GOARCH, so the emulator can run
// it; the Makefile builds linux/arm64 for deployment.
//
// Parallel tests may build the same function at once: each build writes into its own
// temporary directory beside outPath and renames the result into place, so a reader sees
// either no file or a complete one.
func BuildBootstrap(ctx context.Context, moduleRoot, pkgDir, outPath string) error {
	root, err := filepath.Abs(moduleRoot)
	if err != nil {
		return fmt.Errorf("runtimeapi: build: %w", err)
	}
	pkg := pkgDir
	if filepath.IsAbs(pkg) {
		if pkg, err = filepath.Rel(root, pkg); err != nil {
			return fmt.Errorf("runtimeapi: build: %w", err)
		}
	}
	pkg = filepath.ToSlash(filepath.Clean(pkg))
	if pkg == ".." || strings.HasPrefix(pkg, "../") {
		return fmt.Errorf("runtimeapi: build: package %s is outside %s", pkgDir, root)
	}
	pkg = "./" + pkg
	out, err := filepath.Abs(outPath)
	if err != nil {
		return fmt.Errorf("runtimeapi: build: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("runtimeapi: build: %w", err)
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(out), ".build-"+filepath.Base(out)+"-*")
	if err != nil {
		return fmt.Errorf("runtimeapi: build: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, filepath.Base(out))

	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", tmp, pkg)
	cmd.Dir = root
	// Later entries win, so these override a GOOS/GOARCH the caller exported for deployment.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("runtimeapi: go build %s: %w\n%s", pkg, err, output)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("runtimeapi: build: %w", err)
	}
	return nil
}
