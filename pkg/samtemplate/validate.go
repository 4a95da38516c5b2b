package samtemplate

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// AllowedTypes are the resource types a cxbridge template may declare. Anything else is more
// likely a typo or an unreviewed addition than a need; extend the list deliberately.
var AllowedTypes = map[string]bool{
	"AWS::Serverless::Function":        true,
	"AWS::Serverless::Api":             true,
	"AWS::DynamoDB::Table":             true,
	"AWS::ApiGateway::ApiKey":          true,
	"AWS::ApiGateway::UsagePlan":       true,
	"AWS::ApiGateway::UsagePlanKey":    true,
	"AWS::ApiGateway::GatewayResponse": true, // error bodies for API Gateway's own 4xx
	"AWS::SNS::Topic":                  true,
	"AWS::SNS::Subscription":           true,
	"AWS::CloudWatch::Alarm":           true,
	"AWS::CloudWatch::Dashboard":       true,
	"AWS::IAM::Role":                   true,
	"AWS::Events::Rule":                true,
	"AWS::Lambda::Permission":          true,
	"AWS::Logs::LogGroup":              true,
	"AWS::Logs::MetricFilter":          true,
	"AWS::SQS::Queue":                  true, // dead-letter queues of asynchronous invocations
}

// PseudoParameters are the names CloudFormation defines in every stack.
var PseudoParameters = map[string]bool{
	"AWS::AccountId":        true,
	"AWS::NotificationARNs": true,
	"AWS::NoValue":          true,
	"AWS::Partition":        true,
	"AWS::Region":           true,
	"AWS::StackId":          true,
	"AWS::StackName":        true,
	"AWS::URLSuffix":        true,
}

// Rules for every function, from DESIGN.md section 1.
const (
	wantRuntime      = "provided.al2023"
	wantHandler      = "bootstrap"
	wantArchitecture = "arm64"
	apiTimeoutMax    = 29  // API Gateway's integration timeout, seconds
	lambdaTimeoutMax = 900 // Lambda's maximum, seconds
)

// broadManagedPolicies grant dynamodb:* or secretsmanager:* on every resource.
var broadManagedPolicies = []string{"AdministratorAccess", "PowerUserAccess", "AmazonDynamoDBFullAccess", "AmazonDynamoDBReadOnlyAccess", "SecretsManagerReadWrite"}

// Problem is one thing wrong with a template. It names the resource (or section entry) and
// the property, because that is what has to be edited.
type Problem struct {
	File     string
	Line     int
	Resource string // logical id, or e.g. "Outputs.ApiUrl", "Globals.Function"
	Property string // dotted path inside it, e.g. "Properties.Events.Tier.Properties.Path"
	Message  string
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	b.WriteString(p.Resource)
	if p.Property != "" {
		b.WriteString(" " + p.Property)
	}
	b.WriteString(": " + p.Message)
	return b.String()
}

// Validate checks the template against cxbridge's rules; root is the repository root, against
// which CodeUri, the Makefile and the function packages are checked. It returns every problem
// found, ordered by line.
func (t *Template) Validate(root string) []error {
	v := &validator{t: t, root: root, generated: t.generatedNames()}
	v.transform()
	v.types()
	v.references()
	v.functions()
	v.tables()
	v.rolePolicies()
	v.monitoring()
	sort.SliceStable(v.problems, func(i, j int) bool { return v.problems[i].Line < v.problems[j].Line })
	out := make([]error, len(v.problems))
	for i, p := range v.problems {
		out[i] = p
	}
	return out
}

type validator struct {
	t         *Template
	root      string
	generated map[string]bool // names SAM creates that !Ref / !GetAtt may use
	problems  []*Problem
}

func (v *validator) add(line int, resource, property, format string, args ...any) {
	v.problems = append(v.problems, &Problem{File: v.t.Path, Line: line, Resource: resource, Property: property, Message: fmt.Sprintf(format, args...)})
}

// generatedNames are the logical names SAM adds when it expands the template.
func (t *Template) generatedNames() map[string]bool {
	g := map[string]bool{}
	for _, r := range t.ResourcesOfType(TypeApi) {
		g[r.LogicalID+".Stage"] = true
		g[r.LogicalID+".Deployment"] = true
		props, _ := t.api(r.LogicalID)
		auth, _ := props["Auth"].(map[string]any)
		plan, _ := auth["UsagePlan"].(map[string]any)
		switch plan["CreateUsagePlan"] {
		case "PER_API":
			g[r.LogicalID+"ApiKey"] = true
			g[r.LogicalID+"UsagePlan"] = true
			g[r.LogicalID+"UsagePlanKey"] = true
		case "SHARED":
			g["ServerlessApiKey"] = true
			g["ServerlessUsagePlan"] = true
			g["ServerlessUsagePlanKey"] = true
		}
	}
	for _, f := range t.Functions() {
		if _, ok := f.Properties["Role"]; !ok {
			g[f.LogicalID+"Role"] = true
		}
		if _, ok := f.Properties["AutoPublishAlias"]; ok {
			g[f.LogicalID+".Alias"] = true
			g[f.LogicalID+".Version"] = true
		}
	}
	return g
}

func (v *validator) transform() {
	for _, r := range v.t.Resources {
		if strings.HasPrefix(r.Type, "AWS::Serverless::") {
			for _, tr := range v.t.Transform {
				if tr == "AWS::Serverless-2016-10-31" {
					return
				}
			}
			v.add(0, "Transform", "", "the template declares %s resources but not Transform: AWS::Serverless-2016-10-31", "AWS::Serverless::*")
			return
		}
	}
}

func (v *validator) types() {
	for _, id := range sortedKeys(v.t.Resources) {
		r := v.t.Resources[id]
		if r.Type == "" {
			v.add(r.Line, id, "Type", "missing")
		} else if !AllowedTypes[r.Type] {
			v.add(r.Line, id, "Type", "%s is not an allowed resource type (see samtemplate.AllowedTypes)", r.Type)
		}
	}
}

// references checks every Ref, GetAtt, Sub variable, Condition and FindInMap, and DependsOn.
func (v *validator) references() {
	t := v.t
	for _, name := range sortedKeys(t.Conditions) {
		v.walk(t.Conditions[name], "Conditions."+name, "", t.lines["Conditions."+name], true)
	}
	for _, sec := range sortedKeys(t.Globals) {
		v.walk(t.Globals[sec], "Globals."+sec, "", t.lines["Globals."+sec], false)
	}
	for _, id := range sortedKeys(t.Resources) {
		r := t.Resources[id]
		v.walk(r.Properties, id, "Properties", r.Line, false)
		v.walk(r.Metadata, id, "Metadata", r.Line, false)
		if r.Condition != "" {
			if _, ok := t.Conditions[r.Condition]; !ok {
				v.add(r.Line, id, "Condition", "condition %q is not defined in Conditions", r.Condition)
			}
		}
		for _, d := range r.DependsOn {
			if _, ok := t.Resources[d]; !ok && !v.generated[d] {
				v.add(r.Line, id, "DependsOn", "%q is not a resource", d)
			}
		}
	}
	for _, name := range sortedKeys(t.Outputs) {
		o := t.Outputs[name]
		v.walk(o.Value, "Outputs."+name, "Value", o.Line, false)
		v.walk(o.Export, "Outputs."+name, "Export", o.Line, false)
		if o.Condition != "" {
			if _, ok := t.Conditions[o.Condition]; !ok {
				v.add(o.Line, "Outputs."+name, "Condition", "condition %q is not defined in Conditions", o.Condition)
			}
		}
	}
}

// walk visits a value. In the Conditions section, Ref may only name parameters.
func (v *validator) walk(val any, owner, path string, line int, inConditions bool) {
	join := func(p, k string) string {
		if p == "" {
			return k
		}
		return p + "." + k
	}
	switch x := val.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			v.walk(x[k], owner, join(path, k), line, inConditions)
		}
	case []any:
		for i, e := range x {
			v.walk(e, owner, fmt.Sprintf("%s[%d]", path, i), line, inConditions)
		}
	case Intrinsic:
		v.intrinsic(x, owner, path, inConditions, nil)
	}
}

func (v *validator) intrinsic(in Intrinsic, owner, path string, inConditions bool, local map[string]bool) {
	t := v.t
	bad := func(format string, args ...any) { v.add(in.Line, owner, path, format, args...) }
	recurse := func(a any) {
		switch x := a.(type) {
		case Intrinsic:
			v.intrinsic(x, owner, path, inConditions, local)
		default:
			v.walk(x, owner, path, in.Line, inConditions)
		}
	}
	switch in.Fn {
	case "Ref":
		name, _ := in.Ref()
		if _, isParam := t.Parameters[name]; isParam || PseudoParameters[name] || local[name] {
			return
		}
		if inConditions {
			bad("!Ref %s: conditions may only refer to parameters", name)
			return
		}
		if _, ok := t.Resources[name]; ok || v.generated[name] {
			return
		}
		bad("!Ref %s: no parameter, resource or pseudo parameter has that name", name)
	case "Fn::GetAtt":
		res, attr, ok := in.GetAtt()
		if !ok {
			bad("Fn::GetAtt wants [Resource, Attribute] as literal names")
			return
		}
		if _, ok := t.Resources[res]; !ok && !v.generated[res] {
			bad("!GetAtt %s.%s: no resource named %s", res, attr, res)
		}
	case "Fn::Sub":
		text, vars, ok := subParts(in)
		if !ok {
			bad("Fn::Sub wants a string or [string, {variables}]")
			return
		}
		scope := map[string]bool{}
		for k := range local {
			scope[k] = true
		}
		for k, val := range vars {
			scope[k] = true
			recurse(val)
		}
		for _, name := range subNames(text) {
			if scope[name] || PseudoParameters[name] || v.generated[name] {
				continue
			}
			if _, ok := t.Parameters[name]; ok {
				continue
			}
			if _, ok := t.Resources[name]; ok && !inConditions {
				continue
			}
			if res, _, dotted := strings.Cut(name, "."); dotted {
				if _, ok := t.Resources[res]; ok || v.generated[res] {
					continue
				}
			}
			bad("!Sub ${%s}: no parameter, resource or pseudo parameter has that name", name)
		}
	case "Condition":
		name, _ := in.Arg.(string)
		if _, ok := t.Conditions[name]; !ok {
			bad("condition %q is not defined in Conditions", name)
		}
	case "Fn::If":
		l, _ := in.Arg.([]any)
		if len(l) != 3 {
			bad("Fn::If wants [condition, value if true, value if false]")
			return
		}
		if name, ok := l[0].(string); !ok {
			bad("Fn::If: the condition must be a name")
		} else if _, ok := t.Conditions[name]; !ok {
			bad("Fn::If: condition %q is not defined in Conditions", name)
		}
		recurse(l[1])
		recurse(l[2])
	case "Fn::FindInMap":
		l, _ := in.Arg.([]any)
		if len(l) < 3 {
			bad("Fn::FindInMap wants [map, key, key]")
			return
		}
		if name, ok := l[0].(string); ok {
			if _, ok := t.Mappings[name]; !ok {
				bad("Fn::FindInMap: mapping %q is not defined in Mappings", name)
			}
		}
		for _, a := range l {
			recurse(a)
		}
	default:
		recurse(in.Arg)
	}
}

func (v *validator) tables() {
	for _, r := range v.t.ResourcesOfType(TypeTable) {
		if _, err := parseTable(r); err != nil {
			var te *tableError
			if errors.As(err, &te) {
				v.add(r.Line, r.LogicalID, "Properties."+te.prop, "%s", te.msg)
			} else {
				v.add(r.Line, r.LogicalID, "Properties", "%v", err)
			}
		}
	}
}

// functions checks every function's configuration, build and events.
func (v *validator) functions() {
	type routeKey struct{ api, path, method string }
	seen := map[routeKey]string{}
	var makefiles = map[string]*makefile{}
	for _, f := range v.t.Functions() {
		id, line := f.LogicalID, f.Line
		if f.Runtime != wantRuntime {
			v.add(line, id, "Properties.Runtime", "is %q; want %s", f.Runtime, wantRuntime)
		}
		if f.Handler != wantHandler {
			v.add(line, id, "Properties.Handler", "is %q; want %s", f.Handler, wantHandler)
		}
		if len(f.Architectures) != 1 || f.Architectures[0] != wantArchitecture {
			v.add(line, id, "Properties.Architectures", "is %v; want [%s] (Globals lists are prepended to the function's)", f.Architectures, wantArchitecture)
		}
		if f.Tracing != "Active" {
			v.add(line, id, "Properties.Tracing", "is %q; want Active", f.Tracing)
		}
		if lf, _ := f.LoggingConfig["LogFormat"].(string); lf != "JSON" {
			v.add(line, id, "Properties.LoggingConfig.LogFormat", "is %q; want JSON", lf)
		}
		if bm, _ := f.Metadata["BuildMethod"].(string); bm != "makefile" {
			v.add(line, id, "Metadata.BuildMethod", "is %q; want makefile", bm)
		}
		v.build(f, makefiles)

		hasApi := false
		for _, name := range sortedKeys(f.Events) {
			e := f.Events[name]
			prop := "Properties.Events." + name
			if e.Type == "" {
				v.add(line, id, prop+".Type", "missing")
			}
			if e.Type != "Api" {
				continue
			}
			hasApi = true
			api := ""
			if in, ok := e.Properties["RestApiId"].(Intrinsic); ok {
				api, _ = in.Ref()
			}
			if r, ok := v.t.Resources[api]; !ok || r.Type != TypeApi {
				v.add(line, id, prop+".Properties.RestApiId", "want !Ref of an %s resource (an implicit API would not carry the API's auth and throttling)", TypeApi)
			}
			path, _ := e.Properties["Path"].(string)
			if !strings.HasPrefix(path, "/") {
				v.add(line, id, prop+".Properties.Path", "is %q; want a path starting with /", path)
			}
			method, _ := e.Properties["Method"].(string)
			method = strings.ToUpper(method)
			switch method {
			case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY":
			default:
				v.add(line, id, prop+".Properties.Method", "is %q; want an HTTP method or ANY", method)
			}
			k := routeKey{api, path, method}
			if other, dup := seen[k]; dup && path != "" && method != "" {
				v.add(line, id, prop, "%s %s is already routed to %s", method, path, other)
			} else {
				seen[k] = id + "." + name
			}
		}
		timeout, literal := intValue(f.Properties["Timeout"])
		switch {
		case !literal:
			v.add(line, id, "Properties.Timeout", "want a literal number of seconds, so its limit can be checked")
		case timeout < 1:
			v.add(line, id, "Properties.Timeout", "is %d; want at least 1", timeout)
		case hasApi && timeout > apiTimeoutMax:
			v.add(line, id, "Properties.Timeout", "is %d; a function behind API Gateway must finish within its %d s integration timeout", timeout, apiTimeoutMax)
		case timeout > lambdaTimeoutMax:
			v.add(line, id, "Properties.Timeout", "is %d; Lambda allows at most %d", timeout, lambdaTimeoutMax)
		}
		for i, p := range f.Policies {
			v.policy(p, id, fmt.Sprintf("Properties.Policies[%d]", i), line)
		}
	}
}

// build checks that sam build can build the function: SAM runs `make build-<LogicalId>` in
// the CodeUri directory, so the Makefile lives there, and its recipe must build a
// ./functions/<dir> package that exists.
func (v *validator) build(f *Function, makefiles map[string]*makefile) {
	id, line := f.LogicalID, f.Line
	if f.CodeUri == "" {
		v.add(line, id, "Properties.CodeUri", "want a literal directory (the one holding the Makefile, usually .)")
		return
	}
	dir := filepath.Join(v.root, filepath.FromSlash(f.CodeUri))
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		v.add(line, id, "Properties.CodeUri", "%s is not a directory under %s", f.CodeUri, v.root)
		return
	}
	mfPath := filepath.Join(dir, "Makefile")
	mf, ok := makefiles[mfPath]
	if !ok {
		var err error
		mf, err = parseMakefile(mfPath)
		if err != nil {
			mf = &makefile{err: err}
		}
		makefiles[mfPath] = mf
	}
	if mf.err != nil {
		v.add(line, id, "Metadata.BuildMethod", "makefile builds need %s: %v", relTo(v.root, mfPath), mf.err)
		return
	}
	target := "build-" + id
	recipe, ok := mf.recipe(target)
	if !ok {
		v.add(line, id, "Metadata.BuildMethod", "%s has no %s: target", relTo(v.root, mfPath), target)
		return
	}
	pkgs := functionPackage.FindAllStringSubmatch(strings.Join(recipe, "\n"), -1)
	if len(pkgs) == 0 {
		v.add(line, id, "Metadata.BuildMethod", "the %s recipe in %s builds no ./functions/<dir> package", target, relTo(v.root, mfPath))
		return
	}
	for _, m := range pkgs {
		main := filepath.Join(dir, "functions", m[1], "main.go")
		if _, err := os.Stat(main); err != nil {
			v.add(line, id, "Metadata.BuildMethod", "%s builds ./functions/%s, which has no main.go", target, m[1])
		}
	}
}

// functionPackage finds the ./functions/<dir> a recipe builds.
var functionPackage = regexp.MustCompile(`(?:^|[\s"'=])(?:\./)?functions/([A-Za-z0-9_.-]+)`)

func relTo(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

// makefile is the little of a Makefile we need: explicit targets, their prerequisites and
// recipes. Pattern rules and variables in target names are not expanded.
type makefile struct {
	recipes map[string][]string
	prereqs map[string][]string
	err     error
}

// recipe returns a target's recipe lines, followed by those of its prerequisites.
func (m *makefile) recipe(target string) ([]string, bool) {
	if _, ok := m.recipes[target]; !ok {
		return nil, false
	}
	var out []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(t string) {
		if seen[t] {
			return
		}
		seen[t] = true
		out = append(out, m.recipes[t]...)
		for _, p := range m.prereqs[t] {
			visit(p)
		}
	}
	visit(target)
	return out, true
}

var ruleLine = regexp.MustCompile(`^([^:=#\s][^:=#]*?)\s*::?(?:\s|$|;)(.*)$`)

func parseMakefile(path string) (*makefile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := &makefile{recipes: map[string][]string{}, prereqs: map[string][]string{}}
	var current []string
	sc := bufio.NewScanner(f)
	var pending string
	for sc.Scan() {
		line := sc.Text()
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "\t") {
			for _, t := range current {
				m.recipes[t] = append(m.recipes[t], strings.TrimSpace(line))
			}
			continue
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		g := ruleLine.FindStringSubmatch(line)
		if g == nil {
			current = nil // a variable assignment or directive ends the rule
			continue
		}
		current = strings.Fields(g[1])
		deps, inline, _ := strings.Cut(g[2], ";")
		for _, t := range current {
			if _, ok := m.recipes[t]; !ok {
				m.recipes[t] = nil
			}
			m.prereqs[t] = append(m.prereqs[t], strings.Fields(deps)...)
			if s := strings.TrimSpace(inline); s != "" {
				m.recipes[t] = append(m.recipes[t], s)
			}
		}
	}
	return m, sc.Err()
}

// rolePolicies checks the inline policies of AWS::IAM::Role resources.
func (v *validator) rolePolicies() {
	for _, r := range v.t.ResourcesOfType("AWS::IAM::Role") {
		if l, ok := r.Properties["Policies"].([]any); ok {
			for i, p := range l {
				m, _ := p.(map[string]any)
				v.document(m["PolicyDocument"], r.LogicalID, fmt.Sprintf("Properties.Policies[%d].PolicyDocument", i), r.Line)
			}
		}
		if l, ok := r.Properties["ManagedPolicyArns"].([]any); ok {
			for i, p := range l {
				v.policy(p, r.LogicalID, fmt.Sprintf("Properties.ManagedPolicyArns[%d]", i), r.Line)
			}
		}
	}
}

// policy checks one entry of a function's Policies: a managed policy, a SAM policy template or
// an inline document.
func (v *validator) policy(p any, id, prop string, line int) {
	switch x := p.(type) {
	case string:
		name := x[strings.LastIndex(x, "/")+1:]
		for _, b := range broadManagedPolicies {
			if name == b {
				v.add(line, id, prop, "managed policy %s grants DynamoDB or Secrets Manager on every resource; grant the specific tables and secrets", name)
			}
		}
	case map[string]any:
		if _, ok := x["Statement"]; ok {
			v.document(x, id, prop, line)
			return
		}
		for _, name := range sortedKeys(x) {
			args, _ := x[name].(map[string]any)
			var param string
			switch {
			case strings.HasPrefix(name, "DynamoDB"):
				param = "TableName"
			case name == "AWSSecretsManagerGetSecretValuePolicy":
				param = "SecretArn"
			default:
				continue
			}
			val, ok := args[param]
			if s, isString := val.(string); !ok || (isString && (strings.TrimSpace(s) == "" || s == "*")) {
				v.add(line, id, prop+"."+name+"."+param, "SAM policy template %s needs a specific %s; without one it grants every table or secret", name, param)
			}
		}
	}
}

// document checks an IAM policy document's statements: no dynamodb:* or secretsmanager:*
// action (or *) is allowed on Resource "*".
func (v *validator) document(doc any, id, prop string, line int) {
	m, _ := doc.(map[string]any)
	var stmts []any
	switch s := m["Statement"].(type) {
	case []any:
		stmts = s
	case map[string]any:
		stmts = []any{s}
	}
	for i, s := range stmts {
		st, _ := s.(map[string]any)
		if eff, _ := st["Effect"].(string); eff != "" && eff != "Allow" {
			continue
		}
		var sensitive []string
		for _, a := range stringList(st["Action"]) {
			la := strings.ToLower(a)
			if la == "*" || strings.HasPrefix(la, "dynamodb:") || strings.HasPrefix(la, "secretsmanager:") {
				sensitive = append(sensitive, a)
			}
		}
		if len(sensitive) == 0 {
			continue
		}
		for _, r := range stringList(st["Resource"]) {
			if r == "*" {
				v.add(line, id, fmt.Sprintf("%s.Statement[%d].Resource", prop, i), "grants %s on every resource; name the tables or secrets", strings.Join(sensitive, ", "))
				break
			}
		}
	}
}

// stringList returns the literal strings of a string-or-list value.
func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
