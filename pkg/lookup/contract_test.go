package lookup_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/dataaction"
	"github.com/cxbridge/cxbridge/pkg/lookup"
)

func loadAction(t *testing.T) *dataaction.Action {
	t.Helper()
	a, err := dataaction.Load("../../integrations/genesys/servicenow-lookup.json")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The shipped data action follows Genesys' contract rules and offers exactly the function's
// inputs; contracts cannot change after publish, so its output contract must match what the
// function answers, field for field (Genesys' request rendering is checked in pkg/localstack).
func TestShippedDataActionMatchesTheFunction(t *testing.T) {
	a := loadAction(t)
	for _, err := range a.Check() {
		t.Error(err)
	}
	if got, want := a.InputNames(), dataaction.FieldNames(lookup.Input{}); !reflect.DeepEqual(got, want) {
		t.Errorf("contract inputs %v; the function accepts %v", got, want)
	}

	// A real answer with three incidents must fit the output contract exactly.
	e := newEnv(t)
	id := e.sn.AddUser(servicenowtest.User{UserName: "abel.tuter", FirstName: "Abel", LastName: "Tuter", Phone: "+1 415 555 0100"})
	for i := 0; i < 4; i++ {
		e.incident(id, "issue", servicenow.StateNew, time.Duration(i)*time.Hour)
	}
	r, _ := e.lookup(t, `{"ani":"+14155550100"}`)
	if r.IncidentCount != 3 {
		t.Fatalf("fixture: %+v", r)
	}
	for _, err := range a.Contract.Output.SuccessSchema.Exact(decode(t, mustJSON(t, r))) {
		t.Error(err)
	}

	// And so must the emptiest answer (nothing found, nothing to list).
	r, _ = e.lookup(t, `{"ani":"anonymous"}`)
	for _, err := range a.Contract.Output.SuccessSchema.Exact(decode(t, mustJSON(t, r))) {
		t.Error(err)
	}
}

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
