// Command fraiseql-token mints an HS256 token for development and demos:
//
//	go run ./auth/cmd/fraiseql-token --secret-file dev-secret --tenant acme --sub alice --roles admin,ops --ttl 1h
//
// It prints the token on stdout. The node verifies it when its auth
// configuration names the same secret (auth.hs256_secret or
// auth.hs256_secret_file). Production tokens come from your identity
// provider, not from this tool.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/auth"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, time.Now))
}

// claimFlags collects repeated --claim key=value flags.
type claimFlags map[string]string

func (c claimFlags) String() string { return "" }

func (c claimFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	c[k] = v
	return nil
}

func run(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	fs := flag.NewFlagSet("fraiseql-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "", "HS256 secret, at least 32 bytes (visible in ps: prefer --secret-file or $FRAISEQL_TOKEN_SECRET)")
	secretFile := fs.String("secret-file", "", "file holding the HS256 secret (one trailing newline is dropped)")
	tenant := fs.String("tenant", "", "tenant claim (required): 1 to 64 bytes of [A-Za-z0-9_-]")
	tenantClaim := fs.String("tenant-claim", auth.DefaultTenantClaim, "name of the tenant claim")
	sub := fs.String("sub", "", "user id (sub claim)")
	roles := fs.String("roles", "", "comma-separated roles (roles claim)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime: exp = now + ttl")
	iss := fs.String("iss", "", "issuer (iss claim)")
	aud := fs.String("aud", "", "audience (aud claim)")
	extra := claimFlags{}
	fs.Var(extra, "claim", "extra string claim key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "fraiseql-token: "+format+"\n", a...)
		return 2
	}

	key := *secret
	switch {
	case key != "" && *secretFile != "":
		return fail("set --secret or --secret-file, not both")
	case *secretFile != "":
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fail("%v", err)
		}
		key = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	case key == "":
		key = os.Getenv("FRAISEQL_TOKEN_SECRET")
	}
	if len(key) < 32 {
		return fail("the secret must be at least 32 bytes (got %d); set --secret-file, --secret or $FRAISEQL_TOKEN_SECRET", len(key))
	}
	if !auth.ValidTenant(*tenant) {
		return fail("--tenant %q must be 1 to 64 bytes of [A-Za-z0-9_-]", *tenant)
	}
	if *ttl <= 0 {
		return fail("--ttl must be positive")
	}

	t := now()
	claims := jwt.MapClaims{}
	for k, v := range extra {
		claims[k] = v
	}
	claims[*tenantClaim] = *tenant
	claims["iat"] = t.Unix()
	claims["exp"] = t.Add(*ttl).Unix()
	if *sub != "" {
		claims["sub"] = *sub
	}
	if *roles != "" {
		var rs []string
		for r := range strings.SplitSeq(*roles, ",") {
			if r = strings.TrimSpace(r); r != "" {
				rs = append(rs, r)
			}
		}
		claims["roles"] = rs
	}
	if *iss != "" {
		claims["iss"] = *iss
	}
	if *aud != "" {
		claims["aud"] = *aud
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
