package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Modes of Config.Mode.
const (
	// ModeJWT verifies a JWT on every connection (the default).
	ModeJWT = "jwt"
	// ModeNone authenticates nobody: every connection is anonymous, in
	// Config.AnonymousTenant. For development only.
	ModeNone = "none"
)

// Defaults of the Config fields whose zero value means a default.
const (
	DefaultClockSkew       = 30 * time.Second
	DefaultJWKSReload      = 10 * time.Second
	DefaultTenantClaim     = "tenant"
	DefaultUserClaim       = "sub"
	DefaultRolesClaim      = "roles"
	DefaultAnonymousTenant = "public"
)

// Limits of the configuration.
const (
	// minSecretBytes is the shortest HS256 secret accepted: RFC 7518
	// §3.2 requires a key at least as long as the hash output (256 bits).
	minSecretBytes = 32
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
	minRSABits = 2048
	// maxClockSkew bounds ClockSkew: a leeway longer than this would
	// quietly extend every token's life.
	maxClockSkew = 10 * time.Minute
	// minJWKSReload bounds how often the JWKS file may be polled.
	minJWKSReload = 100 * time.Millisecond
)

// Config configures a Verifier. It is a plain value, loaded from YAML under
// the "auth" key of the node's configuration; every field documents its
// zero value. Validate names the keys it rejects ("auth.hs256_secret").
//
// The algorithms a Verifier accepts follow from the key sources, never from
// the token: HS256 only when a secret is configured, RS256 and ES256 only
// with public keys (PEM files or a JWKS file). "none" is never accepted, and
// a token can never make a public key serve as an HMAC secret.
type Config struct {
	// Mode is "jwt" or "none". Zero value means "jwt". "none" makes every
	// connection anonymous, in AnonymousTenant, whatever it sends: for
	// development only (the node logs a loud warning).
	Mode string `yaml:"mode"`

	// HS256Secret is the shared secret of HS256 tokens, at least 32 bytes.
	// Zero value: no secret (unless HS256SecretFile is set), so HS256
	// tokens are refused. Prefer HS256SecretFile: configuration files leak.
	HS256Secret string `yaml:"hs256_secret"`
	// HS256SecretFile names a file holding the HS256 secret; one trailing
	// newline (\n or \r\n) is dropped. Zero value: none. At most one of
	// HS256Secret and HS256SecretFile may be set.
	HS256SecretFile string `yaml:"hs256_secret_file"`

	// PublicKeyFiles name PEM files, each one RSA (2048 bits or more, for
	// RS256) or EC P-256 (for ES256) public key ("PUBLIC KEY", "RSA PUBLIC
	// KEY" or a "CERTIFICATE"). Such keys carry no key id: they are tried
	// in this order. Zero value: none. Read once, by New.
	PublicKeyFiles []string `yaml:"public_key_files"`
	// JWKSFile names a JSON Web Key Set file (RFC 7517) of RSA and EC P-256
	// signing keys, looked up by the token's kid. The file is reloaded
	// when it changes: its mtime and size are polled every JWKSReload, and
	// a token whose kid is unknown triggers a reload at most once a second.
	// A file that does not parse leaves the previous keys in force.
	// Zero value: none.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSReload is the JWKSFile poll interval. Zero value means 10s; at
	// least 100ms.
	JWKSReload time.Duration `yaml:"jwks_reload"`

	// Issuer, when set, must equal the token's iss. Zero value: iss is not
	// checked.
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be one of the token's aud. Zero value: aud
	// is not checked.
	Audience string `yaml:"audience"`
	// ClockSkew is the leeway for exp, nbf and iat. Zero value means 30s;
	// at most 10m. (For practically none, set 1ms.)
	ClockSkew time.Duration `yaml:"clock_skew"`
	// AllowNoExp accepts tokens that carry no exp claim; such a token
	// never expires. Zero value (false): a token without exp is refused.
	// The flag is inverted so that the zero value is the safe one.
	AllowNoExp bool `yaml:"allow_no_exp"`

	// TenantClaim names the claim that holds the connection's tenant. Its
	// value must be a string of 1 to 64 bytes of [A-Za-z0-9_-] (the
	// subject rule, cluster.ValidateTenant), else the token is refused.
	// Zero value means "tenant".
	TenantClaim string `yaml:"tenant_claim"`
	// UserClaim names the claim that holds the user id (a string or a
	// number). Zero value means "sub". A token without it is accepted,
	// with Identity.User empty.
	UserClaim string `yaml:"user_claim"`
	// RolesClaim names the claim that holds the roles: a list of strings,
	// or one string of space-separated roles (as OAuth's scope claim).
	// Zero value means "roles".
	RolesClaim string `yaml:"roles_claim"`

	// Cookie names a cookie of the WebSocket upgrade request that may carry
	// the token (browsers cannot set headers on a WebSocket). Zero value:
	// no cookie is read.
	Cookie string `yaml:"cookie"`

	// AnonymousTenant is the tenant of every connection in mode "none".
	// Zero value means "public". It must pass the tenant rule.
	AnonymousTenant string `yaml:"anonymous_tenant"`
}

// WithDefaults returns c with every zero value that means a default filled in.
func (c Config) WithDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeJWT
	}
	if c.JWKSReload == 0 {
		c.JWKSReload = DefaultJWKSReload
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.TenantClaim == "" {
		c.TenantClaim = DefaultTenantClaim
	}
	if c.UserClaim == "" {
		c.UserClaim = DefaultUserClaim
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	if c.AnonymousTenant == "" {
		c.AnonymousTenant = DefaultAnonymousTenant
	}
	return c
}

// Validate checks c without touching the file system (New reads the files)
// and returns every problem found, each naming its key, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("auth.%s: "+format, append([]any{key}, args...)...))
	}
	switch c.Mode {
	case "", ModeJWT:
		if c.HS256Secret == "" && c.HS256SecretFile == "" && len(c.PublicKeyFiles) == 0 && c.JWKSFile == "" {
			errs = append(errs, errors.New("auth: mode jwt needs a key source: auth.hs256_secret, auth.hs256_secret_file, auth.public_key_files or auth.jwks_file"))
		}
	case ModeNone:
	default:
		bad("mode", "must be %q or %q, not %q", ModeJWT, ModeNone, c.Mode)
	}
	if c.HS256Secret != "" && c.HS256SecretFile != "" {
		errs = append(errs, errors.New("auth.hs256_secret and auth.hs256_secret_file: set at most one"))
	}
	if c.HS256Secret != "" && len(c.HS256Secret) < minSecretBytes {
		bad("hs256_secret", "%d bytes; at least %d are needed (RFC 7518 §3.2)", len(c.HS256Secret), minSecretBytes)
	}
	for i, f := range c.PublicKeyFiles {
		if strings.TrimSpace(f) == "" {
			bad(fmt.Sprintf("public_key_files[%d]", i), "empty file name")
		}
	}
	if c.JWKSReload != 0 && c.JWKSReload < minJWKSReload {
		bad("jwks_reload", "%v is below the minimum of %v", c.JWKSReload, minJWKSReload)
	}
	if c.ClockSkew < 0 || c.ClockSkew > maxClockSkew {
		bad("clock_skew", "%v is outside 0..%v", c.ClockSkew, maxClockSkew)
	}
	if c.Cookie != "" && strings.ContainsFunc(c.Cookie, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r)
	}) {
		bad("cookie", "%q is not a valid cookie name", c.Cookie)
	}
	if c.AnonymousTenant != "" && !ValidTenant(c.AnonymousTenant) {
		bad("anonymous_tenant", "%q must be 1 to 64 bytes of [A-Za-z0-9_-]", c.AnonymousTenant)
	}
	return errors.Join(errs...)
}

// maxTenantBytes is the longest tenant (cluster.ValidateTenant).
const maxTenantBytes = 64

// ValidTenant reports whether t may be a tenant: 1 to 64 bytes of
// [A-Za-z0-9_-], one subject token that holds no wildcard. It is the rule
// of cluster.ValidateTenant, repeated here so that auth need not import the
// NATS layer; a test keeps the two in step.
func ValidTenant(t string) bool {
	if t == "" || len(t) > maxTenantBytes {
		return false
	}
	for i := 0; i < len(t); i++ {
		b := t[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}
