package secretstest

import (
	"encoding/json"
	"fmt"
)

// AddJSONFields adds string fields to a secret holding a JSON object, creating it when absent.
// Fields the secret already has are kept: several functions share one secret (the inbound
// signing keys), each seeds its own field, and a value the user supplied wins.
func (s *Server) AddJSONFields(id string, fields map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	obj := map[string]any{}
	if cur, ok := s.secrets[id]; ok && cur != "" {
		if err := json.Unmarshal([]byte(cur), &obj); err != nil {
			return fmt.Errorf("secretstest: secret %s is not a JSON object: %w", id, err)
		}
	}
	for k, v := range fields {
		if _, ok := obj[k]; !ok {
			obj[k] = v
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	s.secrets[id] = string(b)
	return nil
}
