package samtemplate

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// base is a small template that passes every rule; each validation case changes one thing.
const base = `AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Level:
    Type: String
    Default: INFO
  Limit:
    Type: Number
    Default: 5
  Url:
    Type: String
  Zones:
    Type: CommaDelimitedList
    Default: [a, b]
Mappings:
  Sizes:
    prod:
      memory: 256
Conditions:
  IsInfo: !Equals [!Ref Level, INFO]
  NotInfo: !Not [!Condition IsInfo]
Globals:
  Function:
    Runtime: provided.al2023
    Handler: bootstrap
    Architectures: [arm64]
    Timeout: 10
    MemorySize: 256
    Tracing: Active
    CodeUri: .
    LoggingConfig:
      LogFormat: JSON
      ApplicationLogLevel: !Ref Level
    Environment:
      Variables:
        STATE_TABLE: !Ref StateTable
        LIMIT: !Ref Limit
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: prod
      Auth:
        ApiKeyRequired: true
  Plan:
    Type: AWS::ApiGateway::UsagePlan
    Properties:
      ApiStages:
        - ApiId: !Ref Api
          Stage: !Ref Api.Stage
  TierFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      Timeout: 5
      MemorySize: !FindInMap [Sizes, prod, memory]
      Environment:
        Variables:
          TELEMETRY_URL: !Ref Url
          MODE: !Sub "${AWS::Region}-${Level}"
          JOINED: !Join ["/", [!Ref Level, !GetAtt StateTable.Arn]]
          FIXED: 42
      Policies:
        - DynamoDBCrudPolicy:
            TableName: !Ref StateTable
        - Statement:
            - Effect: Allow
              Action: [secretsmanager:GetSecretValue]
              Resource: !Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:cxbridge/*"
            - Effect: Allow
              Action: cloudwatch:PutMetricData
              Resource: "*"
      Events:
        Tier:
          Type: Api
          Properties:
            RestApiId: !Ref Api
            Path: /tier
            Method: post
        Hook:
          Type: Api
          Properties:
            RestApiId: !Ref Api
            Path: /hook
            Method: POST
            Auth:
              ApiKeyRequired: false
  RedriveFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      Timeout: 60
      Events:
        Every:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
  StateTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: S}
        - {AttributeName: gsi1pk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
        - {AttributeName: sk, KeyType: RANGE}
      GlobalSecondaryIndexes:
        - IndexName: gsi1
          KeySchema:
            - {AttributeName: gsi1pk, KeyType: HASH}
          Projection: {ProjectionType: ALL}
      TimeToLiveSpecification:
        AttributeName: expires_at
        Enabled: true
  IdemTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: id, AttributeType: S}
      KeySchema:
        - {AttributeName: id, KeyType: HASH}
  AlarmTopic:
    Type: AWS::SNS::Topic
  RedriveAlarm:
    Type: AWS::CloudWatch::Alarm
    Condition: IsInfo
    DependsOn: AlarmTopic
    Properties:
      AlarmDescription: The redrive fails; read its log.
      AlarmActions: [!Ref AlarmTopic]
      Dimensions:
        - Name: FunctionName
          Value: !Ref RedriveFunction
      Namespace: !If [NotInfo, debug, cxbridge]
      MetricName: Errors
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
  Board:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardBody: !Sub '{"widgets":[{"type":"alarm","x":0,"y":0,"width":24,"height":3,"properties":{"alarms":["${RedriveAlarm.Arn}"]}},{"type":"metric","x":0,"y":3,"width":12,"height":6,"properties":{"title":"Errors","metrics":[["AWS/Lambda","Errors","FunctionName","${RedriveFunction}"]]}}]}'
Outputs:
  Url:
    Value: !Sub "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod"
  Role:
    Value: !GetAtt TierFunctionRole.Arn
  Topic:
    Condition: IsInfo
    Value: {"Fn::GetAtt": [AlarmTopic, TopicArn]}
`

const baseMakefile = `# builds every function for provided.al2023/arm64
GOFLAGS := -tags lambda.norpc -trimpath
.PHONY: build-TierFunction build-RedriveFunction

build-TierFunction:
	GOOS=linux GOARCH=arm64 go build $(GOFLAGS) -ldflags="-s -w" \
		-o $(ARTIFACTS_DIR)/bootstrap ./functions/tier

build-RedriveFunction: redrive

redrive:
	GOOS=linux GOARCH=arm64 go build -o $(ARTIFACTS_DIR)/bootstrap ./functions/redrive
`

// repo writes a fake repository root: a Makefile and the two function packages.
func repo(t *testing.T, makefile string) string {
	t.Helper()
	root := t.TempDir()
	for _, dir := range []string{"tier", "redrive"} {
		p := filepath.Join(root, "functions", dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if makefile != "" {
		if err := os.WriteFile(filepath.Join(root, "Makefile"), []byte(makefile), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// replace changes one occurrence of old, failing the test when old is not there (so a case
// cannot silently test the unchanged base).
func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("case does not apply: %q not found", old)
	}
	return strings.Replace(s, old, new, 1)
}

func parse(t *testing.T, text string) *Template {
	t.Helper()
	tpl, err := Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tpl
}

func TestBaseIsValid(t *testing.T) {
	tpl := parse(t, base)
	if errs := tpl.Validate(repo(t, baseMakefile)); len(errs) != 0 {
		t.Fatalf("base template should be valid; got:\n%v", joinErrs(errs))
	}
}

func joinErrs(errs []error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Error() + "\n")
	}
	return b.String()
}

func TestValidateRules(t *testing.T) {
	cases := []struct {
		name     string
		template func(t *testing.T, s string) string // nil: base
		makefile func(t *testing.T, s string) string // nil: baseMakefile
		repo     func(t *testing.T, root string)     // extra changes to the fake repository
		resource string                              // the Problem must name this resource...
		property string                              // ...and this property (prefix)
		message  string                              // ...and say this
	}{
		{
			name:     "misspelt Ref",
			template: func(t *testing.T, s string) string { return replace(t, s, "!Ref Url", "!Ref Ulr") },
			resource: "TierFunction", property: "Properties.Environment.Variables.TELEMETRY_URL", message: "!Ref Ulr",
		},
		{
			name: "misspelt long-form Ref",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "Value: !Ref RedriveFunction", "Value: {Ref: RedriveFunc}")
			},
			resource: "RedriveAlarm", property: "Properties.Dimensions[0].Value", message: "!Ref RedriveFunc",
		},
		{
			name: "alarm that says nothing",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "AlarmDescription: The redrive fails; read its log.", `AlarmDescription: ""`)
			},
			resource: "RedriveAlarm", property: "Properties.AlarmDescription", message: "say what happened and what to do",
		},
		{
			name: "alarm nobody hears",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "AlarmActions: [!Ref AlarmTopic]", "AlarmActions: []")
			},
			resource: "RedriveAlarm", property: "Properties.AlarmActions", message: "nobody hears",
		},
		{
			name:     "hard-coded alarm threshold",
			template: func(t *testing.T, s string) string { return replace(t, s, "Threshold: 1", "Threshold: 5") },
			resource: "RedriveAlarm", property: "Properties.Threshold", message: "want a parameter",
		},
		{
			name: "alarm without missing-data treatment",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "TreatMissingData: notBreaching", "TreatMissingData: sometimes")
			},
			resource: "RedriveAlarm", property: "Properties.TreatMissingData", message: "say what no data means",
		},
		{
			name: "alarm missing from the dashboard",
			template: func(t *testing.T, s string) string {
				return replace(t, s, `"alarms":["${RedriveAlarm.Arn}"]`, `"alarms":[]`)
			},
			resource: "RedriveAlarm", property: "", message: "not in the dashboard's alarm widget",
		},
		{
			name: "dashboard widget off the grid",
			template: func(t *testing.T, s string) string {
				return replace(t, s, `"x":0,"y":3,"width":12`, `"x":20,"y":3,"width":12`)
			},
			resource: "Board", property: "Properties.DashboardBody.widgets[1]", message: "24-column grid",
		},
		{
			name: "dashboard metric of a function that is not in the template",
			template: func(t *testing.T, s string) string {
				return replace(t, s, `"FunctionName","${RedriveFunction}"`, `"FunctionName","cxbridge-redrive"`)
			},
			resource: "Board", property: "Properties.DashboardBody.widgets[1]", message: "must name a AWS::Serverless::Function",
		},
		{
			name:     "dashboard body that is not JSON",
			template: func(t *testing.T, s string) string { return replace(t, s, `{"widgets":[`, `{"widgets":[[`) },
			resource: "Board", property: "Properties.DashboardBody", message: "not JSON",
		},
		{
			name:     "misspelt GetAtt",
			template: func(t *testing.T, s string) string { return replace(t, s, "TierFunctionRole.Arn", "TierFuncRole.Arn") },
			resource: "Outputs.Role", property: "Value", message: "no resource named TierFuncRole",
		},
		{
			name: "GetAtt on a parameter",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "!GetAtt StateTable.Arn", "!GetAtt Level.Arn")
			},
			resource: "TierFunction", property: "Properties.Environment.Variables.JOINED", message: "no resource named Level",
		},
		{
			name: "unknown Sub variable",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "${AWS::Region}-${Level}", "${AWS::Region}-${LevelX}")
			},
			resource: "TierFunction", property: "Properties.Environment.Variables.MODE", message: "${LevelX}",
		},
		{
			name:     "unknown pseudo parameter",
			template: func(t *testing.T, s string) string { return replace(t, s, "${AWS::URLSuffix}", "${AWS::UrlSuffix}") },
			resource: "Outputs.Url", property: "Value", message: "${AWS::UrlSuffix}",
		},
		{
			name:     "generated name of a missing Api",
			template: func(t *testing.T, s string) string { return replace(t, s, "!Ref Api.Stage", "!Ref MyApi.Stage") },
			resource: "Plan", property: "Properties.ApiStages[0].Stage", message: "!Ref MyApi.Stage",
		},
		{
			name: "undefined resource Condition",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "Condition: IsInfo\n    DependsOn", "Condition: IsInfoo\n    DependsOn")
			},
			resource: "RedriveAlarm", property: "Condition", message: `"IsInfoo" is not defined`,
		},
		{
			name:     "undefined Fn::If condition",
			template: func(t *testing.T, s string) string { return replace(t, s, "!If [NotInfo,", "!If [NotInf,") },
			resource: "RedriveAlarm", property: "Properties.Namespace", message: `"NotInf" is not defined`,
		},
		{
			name:     "undefined !Condition",
			template: func(t *testing.T, s string) string { return replace(t, s, "!Condition IsInfo", "!Condition IsInf") },
			resource: "Conditions.NotInfo", message: `"IsInf" is not defined`,
		},
		{
			name: "undefined Output condition",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "Condition: IsInfo\n    Value", "Condition: Nope\n    Value")
			},
			resource: "Outputs.Topic", property: "Condition", message: `"Nope"`,
		},
		{
			name: "condition refers to a resource",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "!Equals [!Ref Level, INFO]", "!Equals [!Ref StateTable, INFO]")
			},
			resource: "Conditions.IsInfo", message: "conditions may only refer to parameters",
		},
		{
			name:     "unknown mapping",
			template: func(t *testing.T, s string) string { return replace(t, s, "!FindInMap [Sizes,", "!FindInMap [Size,") },
			resource: "TierFunction", property: "Properties.MemorySize", message: `mapping "Size"`,
		},
		{
			name: "DependsOn a missing resource",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "DependsOn: AlarmTopic", "DependsOn: [AlarmTopic, Topic]")
			},
			resource: "RedriveAlarm", property: "DependsOn", message: `"Topic"`,
		},
		{
			name: "resource type not allowed",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "Type: AWS::SNS::Topic", "Type: AWS::S3::Bucket")
			},
			resource: "AlarmTopic", property: "Type", message: "AWS::S3::Bucket",
		},
		{
			name: "missing transform",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "Transform: AWS::Serverless-2016-10-31\n", "")
			},
			resource: "Transform", message: "AWS::Serverless-2016-10-31",
		},
		{
			name: "runtime",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "      Timeout: 5\n", "      Timeout: 5\n      Runtime: provided.al2\n")
			},
			resource: "TierFunction", property: "Properties.Runtime", message: "provided.al2023",
		},
		{
			name:     "handler",
			template: func(t *testing.T, s string) string { return replace(t, s, "Handler: bootstrap", "Handler: main") },
			resource: "RedriveFunction", property: "Properties.Handler", message: `"main"`,
		},
		{
			// Globals lists are prepended, so repeating the global list doubles it.
			name: "architectures",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "      Timeout: 60\n", "      Timeout: 60\n      Architectures: [arm64]\n")
			},
			resource: "RedriveFunction", property: "Properties.Architectures", message: "[arm64 arm64]",
		},
		{
			name:     "tracing",
			template: func(t *testing.T, s string) string { return replace(t, s, "Tracing: Active", "Tracing: PassThrough") },
			resource: "TierFunction", property: "Properties.Tracing", message: "Active",
		},
		{
			name:     "log format",
			template: func(t *testing.T, s string) string { return replace(t, s, "LogFormat: JSON", "LogFormat: Text") },
			resource: "TierFunction", property: "Properties.LoggingConfig.LogFormat", message: "JSON",
		},
		{
			name: "build method",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "BuildMethod: makefile", "BuildMethod: go1.x")
			},
			resource: "TierFunction", property: "Metadata.BuildMethod", message: "makefile",
		},
		{
			name: "CodeUri does not exist",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "      Timeout: 60\n", "      Timeout: 60\n      CodeUri: src/\n")
			},
			resource: "RedriveFunction", property: "Properties.CodeUri", message: "src/ is not a directory",
		},
		{
			name:     "no Makefile",
			makefile: func(t *testing.T, s string) string { return "" },
			resource: "TierFunction", property: "Metadata.BuildMethod", message: "Makefile",
		},
		{
			name: "missing build target",
			makefile: func(t *testing.T, s string) string {
				return replace(t, s, "build-TierFunction:\n", "build-TierFunc:\n")
			},
			resource: "TierFunction", property: "Metadata.BuildMethod", message: "no build-TierFunction: target",
		},
		{
			name: "target builds a package without main.go",
			repo: func(t *testing.T, root string) {
				must(t, os.Remove(filepath.Join(root, "functions", "redrive", "main.go")))
			},
			resource: "RedriveFunction", property: "Metadata.BuildMethod", message: "./functions/redrive, which has no main.go",
		},
		{
			name:     "target builds no function package",
			makefile: func(t *testing.T, s string) string { return replace(t, s, "./functions/tier", "./cmd/tier") },
			resource: "TierFunction", property: "Metadata.BuildMethod", message: "builds no ./functions/<dir> package",
		},
		{
			name:     "Api function Timeout 30",
			template: func(t *testing.T, s string) string { return replace(t, s, "Timeout: 5", "Timeout: 30") },
			resource: "TierFunction", property: "Properties.Timeout", message: "29 s integration timeout",
		},
		{
			name:     "scheduled function Timeout 901",
			template: func(t *testing.T, s string) string { return replace(t, s, "Timeout: 60", "Timeout: 901") },
			resource: "RedriveFunction", property: "Properties.Timeout", message: "at most 900",
		},
		{
			name:     "Timeout not a literal",
			template: func(t *testing.T, s string) string { return replace(t, s, "Timeout: 5", "Timeout: !Ref Limit") },
			resource: "TierFunction", property: "Properties.Timeout", message: "literal number",
		},
		{
			name: "Api event without RestApiId",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "            RestApiId: !Ref Api\n            Path: /hook", "            Path: /hook")
			},
			resource: "TierFunction", property: "Properties.Events.Hook.Properties.RestApiId", message: "AWS::Serverless::Api",
		},
		{
			name: "RestApiId of another resource type",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "RestApiId: !Ref Api\n            Path: /hook", "RestApiId: !Ref AlarmTopic\n            Path: /hook")
			},
			resource: "TierFunction", property: "Properties.Events.Hook.Properties.RestApiId", message: "AWS::Serverless::Api",
		},
		{
			name:     "Api event without Path",
			template: func(t *testing.T, s string) string { return replace(t, s, "            Path: /tier\n", "") },
			resource: "TierFunction", property: "Properties.Events.Tier.Properties.Path", message: "want a path",
		},
		{
			name:     "Api event with a bad Method",
			template: func(t *testing.T, s string) string { return replace(t, s, "Method: post", "Method: fetch") },
			resource: "TierFunction", property: "Properties.Events.Tier.Properties.Method", message: `"FETCH"`,
		},
		{
			// Methods compare case-insensitively: "post" and "POST" are the same route.
			name:     "duplicate route",
			template: func(t *testing.T, s string) string { return replace(t, s, "Path: /hook", "Path: /tier") },
			resource: "TierFunction", property: "Properties.Events.Tier", message: "POST /tier is already routed to TierFunction.Hook",
		},
		{
			name: "dynamodb action on every resource",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "Action: cloudwatch:PutMetricData", "Action: [cloudwatch:PutMetricData, dynamodb:GetItem]")
			},
			resource: "TierFunction", property: "Properties.Policies[1].Statement[1].Resource", message: "dynamodb:GetItem on every resource",
		},
		{
			name: "secretsmanager action on every resource",
			template: func(t *testing.T, s string) string {
				return replace(t, s, `Resource: !Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:cxbridge/*"`, `Resource: ["*"]`)
			},
			resource: "TierFunction", property: "Properties.Policies[1].Statement[0].Resource", message: "secretsmanager:GetSecretValue",
		},
		{
			name: "DynamoDBCrudPolicy without a table",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "DynamoDBCrudPolicy:\n            TableName: !Ref StateTable", "DynamoDBCrudPolicy: {}")
			},
			resource: "TierFunction", property: "Properties.Policies[0].DynamoDBCrudPolicy.TableName", message: "every table",
		},
		{
			name: "secret policy template on every secret",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "      Policies:\n", "      Policies:\n        - AWSSecretsManagerGetSecretValuePolicy:\n            SecretArn: \"*\"\n")
			},
			resource: "TierFunction", property: "Properties.Policies[0].AWSSecretsManagerGetSecretValuePolicy.SecretArn", message: "every table or secret",
		},
		{
			name: "broad managed policy",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "      Policies:\n", "      Policies:\n        - AmazonDynamoDBFullAccess\n")
			},
			resource: "TierFunction", property: "Properties.Policies[0]", message: "AmazonDynamoDBFullAccess",
		},
		{
			name: "IAM role granting dynamodb:* on *",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "  AlarmTopic:\n", `  OpsRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {}
      Policies:
        - PolicyName: ops
          PolicyDocument:
            Statement:
              Effect: Allow
              Action: "dynamodb:*"
              Resource: "*"
  AlarmTopic:
`)
			},
			resource: "OpsRole", property: "Properties.Policies[0].PolicyDocument.Statement[0].Resource", message: "dynamodb:*",
		},
		{
			name: "table key not declared",
			template: func(t *testing.T, s string) string {
				return replace(t, s, "- {AttributeName: id, KeyType: HASH}", "- {AttributeName: key, KeyType: HASH}")
			},
			resource: "IdemTable", property: "Properties.KeySchema[0].AttributeName", message: `"key" is not in AttributeDefinitions`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text, mk := base, baseMakefile
			if c.template != nil {
				text = c.template(t, text)
			}
			if c.makefile != nil {
				mk = c.makefile(t, mk)
			}
			root := repo(t, mk)
			if c.repo != nil {
				c.repo(t, root)
			}
			errs := parse(t, text).Validate(root)
			for _, err := range errs {
				p, ok := err.(*Problem)
				if !ok {
					t.Fatalf("error %v is a %T, want *Problem", err, err)
				}
				if p.Resource == c.resource && strings.HasPrefix(p.Property, c.property) && strings.Contains(p.Message, c.message) {
					return
				}
			}
			t.Fatalf("want a problem with %s %s: ...%s...; got:\n%s", c.resource, c.property, c.message, joinErrs(errs))
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]struct{ old, new, want string }{
		"unknown tag":   {"!Ref Url", "!Reff Url", "unknown tag !Reff"},
		"duplicate key": {"      Timeout: 5\n", "      Timeout: 5\n      Timeout: 6\n", `duplicate key "Timeout"`},
		"bad GetAtt":    {"!GetAtt StateTable.Arn", "!GetAtt StateTable", "want Resource.Attribute"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(replace(t, base, c.old, c.new)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestIntrinsicForms(t *testing.T) {
	tpl := parse(t, `Resources:
  R:
    Type: AWS::SNS::Topic
    Properties:
      ShortRef: !Ref X
      LongRef: {Ref: X}
      ShortAtt: !GetAtt A.B.C
      LongAtt: {"Fn::GetAtt": [A, B.C]}
      LongAttString: {"Fn::GetAtt": A.B.C}
      ShortSub: !Sub "${X}-${!Literal}"
      LongSub: {"Fn::Sub": ["${Y}", {Y: !Ref X}]}
      ShortIf: !If [C, !Ref X, !Ref "AWS::NoValue"]
      Cond: !Condition C
      Nested: !Base64 {"Fn::Join": ["", [a, !Ref X]]}
      Statement: {Condition: {StringEquals: {a: b}}}
`)
	p := tpl.Resources["R"].Properties
	if !reflect.DeepEqual(p["ShortRef"], Intrinsic{Fn: "Ref", Arg: "X", Line: 5}) {
		t.Errorf("ShortRef = %#v", p["ShortRef"])
	}
	for _, k := range []string{"LongRef"} {
		if n, ok := p[k].(Intrinsic).Ref(); !ok || n != "X" {
			t.Errorf("%s = %#v", k, p[k])
		}
	}
	for _, k := range []string{"ShortAtt", "LongAtt", "LongAttString"} {
		r, a, ok := p[k].(Intrinsic).GetAtt()
		if !ok || r != "A" || a != "B.C" {
			t.Errorf("%s = %#v, want GetAtt A / B.C", k, p[k])
		}
	}
	if in := p["ShortSub"].(Intrinsic); in.Fn != "Fn::Sub" || in.Arg != "${X}-${!Literal}" {
		t.Errorf("ShortSub = %#v", in)
	}
	if in := p["ShortIf"].(Intrinsic); in.Fn != "Fn::If" || len(in.Arg.([]any)) != 3 {
		t.Errorf("ShortIf = %#v", in)
	}
	if in := p["Cond"].(Intrinsic); in.Fn != "Condition" || in.Arg != "C" {
		t.Errorf("Cond = %#v", in)
	}
	if in := p["Nested"].(Intrinsic); in.Fn != "Fn::Base64" || in.Arg.(Intrinsic).Fn != "Fn::Join" {
		t.Errorf("Nested = %#v", in)
	}
	// An IAM condition block is a property, not the Condition intrinsic.
	if _, ok := p["Statement"].(map[string]any)["Condition"].(map[string]any); !ok {
		t.Errorf("Statement.Condition = %#v, want a mapping", p["Statement"])
	}
	res := tpl.Resolver(map[string]string{"X": "x"})
	for k, want := range map[string]string{"ShortSub": "x-${Literal}", "LongSub": "x", "LongAtt": "", "Nested": ""} {
		got, ok := res(p[k].(Intrinsic))
		if want == "" {
			if ok {
				t.Errorf("%s resolved to %q; want unresolvable", k, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", k, got, ok, want)
		}
	}
}

func TestFunctionsMergeGlobals(t *testing.T) {
	tpl := parse(t, base)
	fs := tpl.Functions()
	if len(fs) != 2 || fs[0].LogicalID != "RedriveFunction" || fs[1].LogicalID != "TierFunction" {
		t.Fatalf("Functions = %v", fs)
	}
	f := fs[1]
	if f.Runtime != "provided.al2023" || f.Handler != "bootstrap" || f.CodeUri != "." || f.Tracing != "Active" {
		t.Errorf("global scalars not merged: %+v", f)
	}
	if !reflect.DeepEqual(f.Architectures, []string{"arm64"}) {
		t.Errorf("Architectures = %v", f.Architectures)
	}
	if f.Timeout != 5 || fs[0].Timeout != 60 {
		t.Errorf("Timeout = %d / %d; want the functions' own 5 / 60", f.Timeout, fs[0].Timeout)
	}
	if f.MemorySize != 0 || fs[0].MemorySize != 256 {
		t.Errorf("MemorySize = %d / %d; want 0 (an intrinsic) / 256 (global)", f.MemorySize, fs[0].MemorySize)
	}
	names := sortedKeys(f.Environment)
	if want := []string{"FIXED", "JOINED", "LIMIT", "MODE", "STATE_TABLE", "TELEMETRY_URL"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Environment = %v, want %v (global and own variables)", names, want)
	}
	if len(fs[0].Environment) != 2 {
		t.Errorf("RedriveFunction environment = %v, want the two globals", fs[0].Environment)
	}
	if len(f.Policies) != 2 || len(f.Events) != 2 || f.Events["Tier"].Type != "Api" {
		t.Errorf("Policies/Events = %v / %v", f.Policies, f.Events)
	}
	if f.LoggingConfig["ApplicationLogLevel"].(Intrinsic).Fn != "Ref" {
		t.Errorf("LoggingConfig = %v", f.LoggingConfig)
	}
	if bm := f.Metadata["BuildMethod"]; bm != "makefile" {
		t.Errorf("Metadata.BuildMethod = %v", bm)
	}
}

func TestRoutes(t *testing.T) {
	got := parse(t, base).Routes()
	want := []Route{
		{Function: "TierFunction", Event: "Hook", Api: "Api", Path: "/hook", Method: "POST", ApiKeyRequired: false},
		{Function: "TierFunction", Event: "Tier", Api: "Api", Path: "/tier", Method: "POST", ApiKeyRequired: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Routes =\n%+v\nwant\n%+v", got, want)
	}
	// Globals.Api supplies the default when the Api itself says nothing.
	text := replace(t, base, "      Auth:\n        ApiKeyRequired: true\n", "")
	text = replace(t, text, "Globals:\n", "Globals:\n  Api:\n    Auth:\n      ApiKeyRequired: true\n")
	if r := parse(t, text).Routes(); !r[1].ApiKeyRequired || r[0].ApiKeyRequired {
		t.Fatalf("with Globals.Api: %+v", r)
	}
}

func TestEnv(t *testing.T) {
	tpl := parse(t, base)
	resolve := tpl.Resolver(map[string]string{
		"StateTable":     "local-state",
		"StateTable.Arn": "arn:aws:dynamodb:us-east-1:000000000000:table/local-state",
		"Url":            "http://127.0.0.1:9999",
		"Limit":          "7", // overrides the parameter's default
		"AWS::Region":    "us-east-1",
	})
	env, err := tpl.Env("TierFunction", resolve)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"STATE_TABLE":   "local-state",
		"LIMIT":         "7",
		"TELEMETRY_URL": "http://127.0.0.1:9999",
		"MODE":          "us-east-1-INFO",
		"JOINED":        "INFO/arn:aws:dynamodb:us-east-1:000000000000:table/local-state",
		"FIXED":         "42",
	}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("Env =\n%v\nwant\n%v", env, want)
	}
	// Parameter defaults apply when the caller does not override.
	env, err = tpl.Env("RedriveFunction", tpl.Resolver(map[string]string{"StateTable": "s"}))
	if err != nil || env["LIMIT"] != "5" {
		t.Fatalf("Env = %v, %v; want LIMIT=5 from the default", env, err)
	}
	// Every unresolvable variable is named.
	_, err = tpl.Env("TierFunction", tpl.Resolver(nil))
	if err == nil {
		t.Fatal("want an error for unresolvable variables")
	}
	for _, name := range []string{"Environment.Variables.STATE_TABLE", "Environment.Variables.TELEMETRY_URL", "Environment.Variables.MODE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if _, err := tpl.Env("StateTable", resolve); err == nil {
		t.Error("Env of a table: want an error")
	}
}

func TestTables(t *testing.T) {
	tables, err := parse(t, base).Tables()
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || tables[0].LogicalID != "IdemTable" || tables[1].LogicalID != "StateTable" {
		t.Fatalf("Tables = %+v", tables)
	}
	idem, state := tables[0], tables[1]
	if idem.TTLAttribute != "" || idem.TimeToLiveInput("x") != nil {
		t.Errorf("IdemTable has no TTL in this template; got %q", idem.TTLAttribute)
	}
	in := state.CreateTableInput("state-test")
	if aws.ToString(in.TableName) != "state-test" || in.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("CreateTableInput = %+v", in)
	}
	if pk, sk := state.Key(); pk != "pk" || sk != "sk" {
		t.Errorf("Key = %s, %s", pk, sk)
	}
	if len(in.AttributeDefinitions) != 3 || len(in.GlobalSecondaryIndexes) != 1 {
		t.Fatalf("CreateTableInput = %+v", in)
	}
	g := in.GlobalSecondaryIndexes[0]
	if aws.ToString(g.IndexName) != "gsi1" || g.Projection.ProjectionType != types.ProjectionTypeAll || aws.ToString(g.KeySchema[0].AttributeName) != "gsi1pk" || g.ProvisionedThroughput != nil {
		t.Errorf("GSI = %+v", g)
	}
	ttl := state.TimeToLiveInput("state-test")
	if aws.ToString(ttl.TableName) != "state-test" || aws.ToString(ttl.TimeToLiveSpecification.AttributeName) != "expires_at" || !aws.ToBool(ttl.TimeToLiveSpecification.Enabled) {
		t.Errorf("TimeToLiveInput = %+v", ttl)
	}
	// Inputs are copies: changing one must not change the next.
	in.KeySchema[0].AttributeName = aws.String("changed")
	if pk, _ := state.Key(); pk != "pk" {
		t.Error("CreateTableInput shares its slices with the Table")
	}
}

// TestRealTemplate checks the repository's template.yaml against every rule, and that
// everything the local stack derives from it works: tables, routes and each function's
// environment. It keeps checking as functions are added.
func TestRealTemplate(t *testing.T) {
	tpl, err := Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if errs := tpl.Validate("../.."); len(errs) != 0 {
		t.Fatalf("template.yaml:\n%s", joinErrs(errs))
	}
	tables, err := tpl.Tables()
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ pk, sk, ttl string }
	wants := map[string]want{
		"IdempotencyTable": {"id", "", "expiration"},
		"StateTable":       {"pk", "sk", "expires_at"},
	}
	if len(tables) != len(wants) {
		t.Errorf("template.yaml has %d tables; want %d (update this test when adding one)", len(tables), len(wants))
	}
	for _, tb := range tables {
		w, ok := wants[tb.LogicalID]
		if !ok {
			t.Errorf("unexpected table %s", tb.LogicalID)
			continue
		}
		pk, sk := tb.Key()
		if pk != w.pk || sk != w.sk || tb.TTLAttribute != w.ttl {
			t.Errorf("%s: key (%q, %q) ttl %q; want (%q, %q) ttl %q", tb.LogicalID, pk, sk, tb.TTLAttribute, w.pk, w.sk, w.ttl)
		}
	}
	// Every function's environment must resolve from parameters and resource names alone,
	// which is what the local stack provides.
	values := map[string]string{"AWS::Region": "us-east-1", "AWS::AccountId": "000000000000", "AWS::Partition": "aws", "AWS::StackName": "cxbridge", "AWS::URLSuffix": "amazonaws.com"}
	for id := range tpl.Resources {
		values[id] = "local-" + id
	}
	for name, p := range tpl.Parameters {
		if !p.HasDefault {
			values[name] = "test-" + name
		}
	}
	for _, f := range tpl.Functions() {
		if _, err := tpl.Env(f.LogicalID, tpl.Resolver(values)); err != nil {
			t.Errorf("%s: %v", f.LogicalID, err)
		}
	}
	for _, r := range tpl.Routes() {
		t.Logf("route %s %s -> %s (api key: %v)", r.Method, r.Path, r.Function, r.ApiKeyRequired)
	}
}

// TestREADMEDocumentsEveryVariable holds the README's configuration to the template: every
// parameter, every function's environment variable and every output must be named there (in
// backticks), and every alarm must have its runbook entry, so a deployer never meets a setting
// nobody explained and the on-call never an alarm nobody wrote down what to do about.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	tpl, err := Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := func(kind, name string) {
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README.md does not document the %s `%s`", kind, name)
		}
	}
	for name := range tpl.Parameters {
		documented("parameter", name)
	}
	for name := range tpl.Outputs {
		documented("output", name)
	}
	for _, f := range tpl.Functions() {
		for name := range f.Environment {
			documented("environment variable of "+f.LogicalID, name)
		}
	}
	// the runbook: one entry per alarm
	for _, a := range tpl.ResourcesOfType(TypeAlarm) {
		documented("alarm (runbook entry under Operating it, Alarms)", a.LogicalID)
	}
}
