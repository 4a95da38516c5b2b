package servicenow_test

import (
	"fmt"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
)

// The screen pop's two queries. Both are built from the calling number alone, so they can run
// at the same time: the incident query dot-walks caller_id instead of waiting for the user's
// sys_id. Anything that is not a phone number is refused before a query exists.
func ExampleEncodedQuery() {
	ani := "tel:+1 (415) 555-0100"
	d, err := servicenow.PhoneDigits(ani)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	national := d.Last(10)

	users := servicenow.NewQuery().
		Where(servicenow.Like(servicenow.FieldPhone, national), servicenow.Like(servicenow.FieldMobilePhone, national)).
		Where(servicenow.Eq(servicenow.FieldActive, servicenow.Bool(true)))
	incidents := servicenow.NewQuery().
		Where(servicenow.Like(servicenow.FieldCallerPhone, national), servicenow.Like(servicenow.FieldCallerMobilePhone, national)).
		Where(servicenow.OpenStates()).
		OrderByDesc(servicenow.FieldUpdatedOn)
	fmt.Println(users)
	fmt.Println(incidents)

	_, err = servicenow.PhoneDigits("4155550100^ORactive=true")
	fmt.Println(err)
	// Output:
	// phoneLIKE4155550100^ORmobile_phoneLIKE4155550100^active=true
	// caller_id.phoneLIKE4155550100^ORcaller_id.mobile_phoneLIKE4155550100^stateIN1,2,3^ORDERBYDESCsys_updated_on
	// servicenow: invalid encoded query: phone number: character at byte 11 is not a digit or separator
}
