package localstack

import (
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
)

// Credentials of the local ServiceNow instance (HTTP Basic), served as cxbridge/servicenow.
const (
	LocalServiceNowUser     = "cxbridge.integration"
	LocalServiceNowPassword = "local-servicenow-password"
)

// Local ServiceNow records the create-escalation events use.
const (
	// ServiceNowCallerSysID is Jane Doe's sys_user record.
	ServiceNowCallerSysID = "62826bf03710200044e0bfc8bcbe5df1"
	// ServiceNowMasterSysID is the master incident of the outage examples ("E-mail is down").
	ServiceNowMasterSysID = "9d385017c611228701d22104cc95c371"
)

// servicenowSeeds fill the local instance; each function's seed file adds its own in init.
var servicenowSeeds []func(sn *servicenowtest.Server)

func init() {
	servicenowSeeds = append(servicenowSeeds, seedEscalationRecords)
	register(system{
		params: []string{"ServiceNowBaseUrl"},
		name:   "servicenow",
		real:   func(getenv func(string) string) bool { return getenv("SERVICENOW_BASE_URL") != "" },
		setReal: func(s *Stack, getenv func(string) string) string {
			s.values["ServiceNowBaseUrl"] = getenv("SERVICENOW_BASE_URL")
			return getenv("SERVICENOW_BASE_URL")
		},
		start: func(s *Stack) (any, func()) {
			sn := servicenowtest.New(servicenowtest.Config{Username: LocalServiceNowUser, Password: LocalServiceNowPassword})
			for _, seed := range servicenowSeeds {
				seed(sn)
			}
			s.Secrets.Put("cxbridge/servicenow", `{"username":"`+LocalServiceNowUser+`","password":"`+LocalServiceNowPassword+`"}`)
			s.values["ServiceNowBaseUrl"] = sn.URL()
			return sn, sn.Close
		},
	})
}

// ServiceNow is the ServiceNow fake, or nil when SERVICENOW_BASE_URL points at a real instance.
func (s *Stack) ServiceNow() *servicenowtest.Server {
	return fake[*servicenowtest.Server](s, "servicenow")
}

func seedEscalationRecords(sn *servicenowtest.Server) {
	must := func(_ string, err error) {
		if err != nil {
			panic(err)
		}
	}
	must(sn.Insert("incident", map[string]string{"sys_id": ServiceNowMasterSysID, "short_description": "E-mail is down",
		"impact": "1", "urgency": "1", "state": "2"}))
	must(sn.Insert("sys_user", map[string]string{"sys_id": ServiceNowCallerSysID, "user_name": "jane.doe", "first_name": "Jane",
		"last_name": "Doe", "email": "jane.doe@example.com", "phone": "+1 212 555 0147"}))
}
