package localstack

import (
	"encoding/json"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
)

// Credentials of the local ServiceNow instance (HTTP Basic), served as cxbridge/servicenow.
const (
	LocalServiceNowUser     = "cxbridge.integration"
	LocalServiceNowPassword = "local-servicenow-password"
)

// servicenowSeeds fill the local instance; each function's seed file adds its own in init.
var servicenowSeeds []func(sn *servicenowtest.Server)

func init() {
	register(system{
		name: "servicenow",
		real: func(getenv func(string) string) bool { return getenv("SERVICENOW_BASE_URL") != "" },
		setReal: func(s *Stack, getenv func(string) string) {
			s.values["ServiceNowBaseUrl"] = getenv("SERVICENOW_BASE_URL")
		},
		start: func(s *Stack) (any, func()) {
			sn := servicenowtest.New(servicenowtest.Config{Username: LocalServiceNowUser, Password: LocalServiceNowPassword})
			for _, seed := range servicenowSeeds {
				seed(sn)
			}
			creds, _ := json.Marshal(map[string]string{"username": LocalServiceNowUser, "password": LocalServiceNowPassword})
			s.Secrets.Put("cxbridge/servicenow", string(creds))
			s.values["ServiceNowBaseUrl"] = sn.URL()
			return sn, sn.Close
		},
	})
}

// ServiceNow is the ServiceNow fake, or nil when SERVICENOW_BASE_URL points at a real instance.
func (s *Stack) ServiceNow() *servicenowtest.Server {
	return fake[*servicenowtest.Server](s, "servicenow")
}
