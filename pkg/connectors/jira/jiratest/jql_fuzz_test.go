package jiratest

import (
	"reflect"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
)

// FuzzQuote: whatever the value, a query built with jira.Quote parses (with the fake's JQL
// parser, which follows Jira's quoting rules) to exactly the structure the same query has
// with a benign value, with the value intact: a value can never add a clause, an operator or
// an ORDER BY.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"cxb-1234", `a" OR project = "X`, `\`, `\"`, `x\" OR labels != "y`, "ORDER BY created", "'single'", "new\nline", `"`, ""} {
		f.Add(s)
	}
	build := func(v string) string {
		return `project = SUPP AND labels = ` + jira.Quote(v) + ` ORDER BY created DESC`
	}
	benign, err := parseJQL(build("benign"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		v = string([]rune(v)) // the parser reads runes: invalid UTF-8 becomes U+FFFD either way
		got, err := parseJQL(build(v))
		if err != nil {
			t.Fatalf("%q broke the query: %v", v, err)
		}
		want := benign
		want.clauses = append([]jqlClause(nil), benign.clauses...)
		want.clauses[1] = jqlClause{field: benign.clauses[1].field, op: benign.clauses[1].op, values: []string{v}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q changed the query's structure:\n got %+v\nwant %+v", v, got, want)
		}
	})
}
