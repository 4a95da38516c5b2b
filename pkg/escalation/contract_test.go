package escalation_test

import (
	"reflect"
	"sort"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/dataaction"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

// TestShippedDataActionMatchesTheAPI keeps integrations/genesys/create-escalation.json, the
// data action users import, in step with what the function accepts and answers: the same
// input names, the required ones, and an output contract naming every answer field. (Genesys'
// own rules and real answers are checked in pkg/localstack.)
func TestShippedDataActionMatchesTheAPI(t *testing.T) {
	a, err := dataaction.Load("../../integrations/genesys/create-escalation.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.InputNames(), dataaction.FieldNames(escalation.Input{}); !reflect.DeepEqual(got, want) {
		t.Fatalf("input contract %v\nfunction inputs %v", got, want)
	}
	required := append([]string(nil), a.Contract.Input.InputSchema.Required...)
	sort.Strings(required)
	if !reflect.DeepEqual(required, []string{"conversationId", "trigger"}) {
		t.Fatalf("required %v", required)
	}
	var outputs []string
	for name := range a.Contract.Output.SuccessSchema.Properties {
		outputs = append(outputs, name)
	}
	sort.Strings(outputs)
	if want := dataaction.FieldNames(escalation.Result{}); !reflect.DeepEqual(outputs, want) {
		t.Fatalf("output contract %v\nfunction answer %v", outputs, want)
	}
}
