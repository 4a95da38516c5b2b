package samtemplate

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Table is an AWS::DynamoDB::Table definition, ready to be created under any physical name.
// Tests and the local stack create their tables from it, so they cannot drift from what
// deploys.
type Table struct {
	LogicalID              string
	Line                   int
	AttributeDefinitions   []types.AttributeDefinition
	KeySchema              []types.KeySchemaElement
	GlobalSecondaryIndexes []types.GlobalSecondaryIndex
	LocalSecondaryIndexes  []types.LocalSecondaryIndex
	StreamViewType         types.StreamViewType // "" when the table has no stream
	TTLAttribute           string               // "" when TTL is not enabled
}

// Key returns the partition and (possibly empty) sort key attribute names.
func (tb Table) Key() (partition, sort string) {
	for _, k := range tb.KeySchema {
		switch k.KeyType {
		case types.KeyTypeHash:
			partition = aws.ToString(k.AttributeName)
		case types.KeyTypeRange:
			sort = aws.ToString(k.AttributeName)
		}
	}
	return partition, sort
}

// CreateTableInput builds the request that creates this table as name. Billing is always
// PAY_PER_REQUEST: capacity settings mean nothing to a local or test database.
func (tb Table) CreateTableInput(name string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: append([]types.AttributeDefinition(nil), tb.AttributeDefinitions...),
		KeySchema:            append([]types.KeySchemaElement(nil), tb.KeySchema...),
	}
	for _, g := range tb.GlobalSecondaryIndexes {
		g.KeySchema = append([]types.KeySchemaElement(nil), g.KeySchema...)
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, g)
	}
	for _, l := range tb.LocalSecondaryIndexes {
		l.KeySchema = append([]types.KeySchemaElement(nil), l.KeySchema...)
		in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, l)
	}
	if tb.StreamViewType != "" {
		in.StreamSpecification = &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: tb.StreamViewType}
	}
	return in
}

// TimeToLiveInput builds the request that enables TTL on the table created as name, or nil
// when the table has no TTL. (CreateTable cannot enable TTL itself.)
func (tb Table) TimeToLiveInput(name string) *dynamodb.UpdateTimeToLiveInput {
	if tb.TTLAttribute == "" {
		return nil
	}
	return &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(tb.TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	}
}

// Tables returns every AWS::DynamoDB::Table, sorted by logical id. Key and index definitions
// must be literals: a table whose key depends on a parameter cannot be created the same way
// everywhere.
func (t *Template) Tables() ([]Table, error) {
	var out []Table
	for _, r := range t.ResourcesOfType(TypeTable) {
		tb, err := parseTable(r)
		if err != nil {
			return nil, err
		}
		out = append(out, tb)
	}
	return out, nil
}

// Table returns one table by logical id.
func (t *Template) Table(logicalID string) (Table, error) {
	r, ok := t.Resources[logicalID]
	if !ok || r.Type != TypeTable {
		return Table{}, fmt.Errorf("no %s named %q in the template", TypeTable, logicalID)
	}
	return parseTable(r)
}

// tableError names the table and property of a bad definition.
type tableError struct {
	id, prop, msg string
	line          int
}

func (e *tableError) Error() string {
	return fmt.Sprintf("%s: Properties.%s: %s", e.id, e.prop, e.msg)
}

func parseTable(r *Resource) (Table, error) {
	tb := Table{LogicalID: r.LogicalID, Line: r.Line}
	fail := func(prop, format string, args ...any) (Table, error) {
		return Table{}, &tableError{id: r.LogicalID, prop: prop, msg: fmt.Sprintf(format, args...), line: r.Line}
	}
	p := r.Properties
	defs, ok := p["AttributeDefinitions"].([]any)
	if !ok || len(defs) == 0 {
		return fail("AttributeDefinitions", "want a list of {AttributeName, AttributeType}")
	}
	declared := map[string]bool{}
	for i, d := range defs {
		m, _ := d.(map[string]any)
		name, ok1 := m["AttributeName"].(string)
		typ, ok2 := m["AttributeType"].(string)
		if !ok1 || !ok2 || name == "" {
			return fail(fmt.Sprintf("AttributeDefinitions[%d]", i), "want literal AttributeName and AttributeType")
		}
		switch typ {
		case "S", "N", "B":
		default:
			return fail(fmt.Sprintf("AttributeDefinitions[%d].AttributeType", i), "is %q; want S, N or B", typ)
		}
		declared[name] = true
		tb.AttributeDefinitions = append(tb.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(name), AttributeType: types.ScalarAttributeType(typ),
		})
	}
	used := map[string]bool{}
	keySchema := func(prop string, v any) ([]types.KeySchemaElement, error) {
		l, ok := v.([]any)
		if !ok || len(l) == 0 || len(l) > 2 {
			_, err := fail(prop, "want one or two {AttributeName, KeyType}")
			return nil, err
		}
		var out []types.KeySchemaElement
		for i, k := range l {
			m, _ := k.(map[string]any)
			name, ok1 := m["AttributeName"].(string)
			typ, ok2 := m["KeyType"].(string)
			if !ok1 || !ok2 || (typ != "HASH" && typ != "RANGE") {
				_, err := fail(fmt.Sprintf("%s[%d]", prop, i), "want literal AttributeName and KeyType HASH or RANGE")
				return nil, err
			}
			if !declared[name] {
				_, err := fail(fmt.Sprintf("%s[%d].AttributeName", prop, i), "%q is not in AttributeDefinitions", name)
				return nil, err
			}
			if (i == 0) != (typ == "HASH") {
				_, err := fail(prop, "the HASH key comes first, then an optional RANGE key")
				return nil, err
			}
			used[name] = true
			out = append(out, types.KeySchemaElement{AttributeName: aws.String(name), KeyType: types.KeyType(typ)})
		}
		return out, nil
	}
	projection := func(prop string, v any) (*types.Projection, error) {
		m, _ := v.(map[string]any)
		typ, _ := m["ProjectionType"].(string)
		if typ == "" {
			typ = "KEYS_ONLY" // CloudFormation's default
		}
		pr := &types.Projection{ProjectionType: types.ProjectionType(typ)}
		if l, ok := m["NonKeyAttributes"].([]any); ok {
			for _, a := range l {
				s, ok := a.(string)
				if !ok {
					_, err := fail(prop+".NonKeyAttributes", "want literal names")
					return nil, err
				}
				pr.NonKeyAttributes = append(pr.NonKeyAttributes, s)
			}
		}
		return pr, nil
	}
	var err error
	if tb.KeySchema, err = keySchema("KeySchema", p["KeySchema"]); err != nil {
		return Table{}, err
	}
	if l, ok := p["GlobalSecondaryIndexes"].([]any); ok {
		for i, g := range l {
			prop := fmt.Sprintf("GlobalSecondaryIndexes[%d]", i)
			m, _ := g.(map[string]any)
			name, _ := m["IndexName"].(string)
			if name == "" {
				return fail(prop+".IndexName", "want a literal name")
			}
			ks, err := keySchema(prop+".KeySchema", m["KeySchema"])
			if err != nil {
				return Table{}, err
			}
			pr, err := projection(prop+".Projection", m["Projection"])
			if err != nil {
				return Table{}, err
			}
			tb.GlobalSecondaryIndexes = append(tb.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{IndexName: aws.String(name), KeySchema: ks, Projection: pr})
		}
	}
	if l, ok := p["LocalSecondaryIndexes"].([]any); ok {
		for i, g := range l {
			prop := fmt.Sprintf("LocalSecondaryIndexes[%d]", i)
			m, _ := g.(map[string]any)
			name, _ := m["IndexName"].(string)
			if name == "" {
				return fail(prop+".IndexName", "want a literal name")
			}
			ks, err := keySchema(prop+".KeySchema", m["KeySchema"])
			if err != nil {
				return Table{}, err
			}
			pr, err := projection(prop+".Projection", m["Projection"])
			if err != nil {
				return Table{}, err
			}
			tb.LocalSecondaryIndexes = append(tb.LocalSecondaryIndexes, types.LocalSecondaryIndex{IndexName: aws.String(name), KeySchema: ks, Projection: pr})
		}
	}
	for name := range declared {
		if !used[name] {
			// DynamoDB rejects definitions of attributes that no key or index uses.
			return fail("AttributeDefinitions", "%q is defined but no key or index uses it", name)
		}
	}
	if s, ok := p["StreamSpecification"].(map[string]any); ok {
		v, _ := s["StreamViewType"].(string)
		tb.StreamViewType = types.StreamViewType(v)
	}
	if ttl, ok := p["TimeToLiveSpecification"].(map[string]any); ok {
		enabled, _ := boolValue(ttl["Enabled"])
		name, _ := ttl["AttributeName"].(string)
		if enabled {
			if name == "" {
				return fail("TimeToLiveSpecification.AttributeName", "want a literal name when TTL is enabled")
			}
			tb.TTLAttribute = name
		}
	}
	return tb, nil
}
