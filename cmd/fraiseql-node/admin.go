package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/fraiseql/subscriptions/node"
)

// AdminConfig turns on the admin API on the ops listener (docs/operations.md,
// *Admin API*).
type AdminConfig struct {
	// TokenFile holds the bearer token requests must carry (at least 32
	// bytes; surrounding white space is trimmed). Empty: the API is off.
	TokenFile string `yaml:"token_file"`
}

// adminToken reads admin.token_file; "" when the admin API is off.
func (c Config) adminToken() (string, error) {
	if c.Admin.TokenFile == "" {
		return "", nil
	}
	if c.opsListen() == "" {
		return "", fmt.Errorf("admin.token_file: the admin API is served on the ops listener, and ops_listen is off")
	}
	b, err := os.ReadFile(c.Admin.TokenFile)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < node.MinAdminTokenBytes {
		return "", fmt.Errorf("admin.token_file: the admin token is %d bytes; at least %d", len(tok), node.MinAdminTokenBytes)
	}
	return tok, nil
}
