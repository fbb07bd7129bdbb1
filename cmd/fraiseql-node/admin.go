package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fraiseql/subscriptions/node"
)

// AdminConfig turns on the admin API on the ops listener (docs/operations.md,
// *Admin API*).
type AdminConfig struct {
	// TokenFile holds the bearer token requests must carry (at least 32
	// bytes; surrounding white space is trimmed). Empty: the API is off.
	TokenFile string `yaml:"token_file"`
	// RevocationTTL is how long a token revocation is kept for every node
	// (at least the lifetime of the longest token). Zero: 24h.
	RevocationTTL time.Duration `yaml:"revocation_ttl"`
}

// adminToken reads admin.token_file; "" when the admin API is off.
func (c Config) adminToken() (string, error) {
	if t := c.Admin.RevocationTTL; t != 0 && t < time.Second {
		return "", fmt.Errorf("admin.revocation_ttl: %v; at least 1s", t)
	}
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
