package genesystest

import "net/http"

// Org is the organization the fake's tokens belong to.
var Org = map[string]string{"id": "5d6f7c8e-0000-4000-8000-00000000c0de", "name": "Local Contact Center"}

func (s *Server) registerTokens() {
	s.mux.HandleFunc("GET /api/v2/tokens/me", s.tokenInfo)
}

// tokenInfo is GET /api/v2/tokens/me (TokenInfo in the platform SDKs): the token's organization
// and OAuth client. It lists the client's scopes, not its role's permissions.
func (s *Server) tokenInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"organization":     Org,
		"homeOrganization": Org,
		"authorizedScope":  []string{},
		"OAuthClient":      map[string]any{"id": s.ClientID, "name": "cxbridge", "organization": Org},
	})
}
