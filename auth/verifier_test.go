package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/query"
)

// reasons are the public texts Verify may return, and only these.
var reasons = []string{
	"missing token", "malformed token", "bad signature", "unknown key id",
	"token expired", "token has no expiry", "token not yet valid",
	"wrong issuer", "wrong audience", "missing tenant claim", "invalid tenant",
}

// wantRefused checks that err is an *Error matching want, with a public
// text from reasons and nothing of the cause in it.
func wantRefused(t *testing.T, id *Identity, err error, want *Error) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified (%+v), want %q", id, want.Reason)
	}
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %T %v is not *auth.Error", err, err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("refused with %q (cause: %v), want %q", err, errors.Unwrap(err), want.Reason)
	}
	if !slices.Contains(reasons, err.Error()) {
		t.Fatalf("Error() = %q is not a fixed reason", err.Error())
	}
}

func TestVerify(t *testing.T) {
	keys(t)
	rsaPEM := writePEM(t, &rsaA.PublicKey)
	ecPEM := writePEM(t, &ecA.PublicKey)
	all := Config{HS256Secret: secret, PublicKeyFiles: []string{rsaPEM, ecPEM}}
	hs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, []byte(secret), "", c) }
	rs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodRS256, rsaA, "", c) }
	es := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodES256, ecA, "", c) }
	long := strings.Repeat("a", 65)

	cases := []struct {
		name  string
		cfg   Config
		token string
		want  *Error // nil: verifies
	}{
		{"HS256", all, hs(good(nil)), nil},
		{"RS256", all, rs(good(nil)), nil},
		{"ES256", all, es(good(nil)), nil},
		{"RS256 from certificate-less PEM only", Config{PublicKeyFiles: []string{rsaPEM}}, rs(good(nil)), nil},

		{"empty", all, "", ErrMissingToken},
		{"garbage", all, "not a token", ErrMalformed},
		{"three garbage parts", all, "a.b.c", ErrMalformed},
		{"too long", all, strings.Repeat("a", maxTokenBytes+1), ErrMalformed},
		{"non-canonical base64 signature", all, nonCanonical(hs(good(nil))), ErrMalformed},
		{"exp of wrong type", all, hs(good(jwt.MapClaims{"exp": "tomorrow"})), ErrMalformed},

		{"HS256 wrong secret", all, mint(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), "", good(nil)), ErrBadSignature},
		{"RS256 other key", all, mint(t, jwt.SigningMethodRS256, rsaB, "", good(nil)), ErrBadSignature},
		{"ES256 other key", all, mint(t, jwt.SigningMethodES256, ecB, "", good(nil)), ErrBadSignature},
		{"tampered payload", all, tamper(t, hs(good(nil))), ErrBadSignature},
		{"HS256 without a secret", Config{PublicKeyFiles: []string{rsaPEM}}, hs(good(nil)), ErrBadSignature},
		{"ES256 with RSA keys only", Config{PublicKeyFiles: []string{rsaPEM}}, es(good(nil)), ErrBadSignature},
		{"HS512 never", all, mint(t, jwt.SigningMethodHS512, []byte(secret), "", good(nil)), ErrBadSignature},
		{"RS512 never", all, mint(t, jwt.SigningMethodRS512, rsaA, "", good(nil)), ErrBadSignature},
		{"PS256 never", all, mint(t, jwt.SigningMethodPS256, rsaA, "", good(nil)), ErrBadSignature},

		{"expired", all, hs(good(jwt.MapClaims{"exp": t0.Add(-time.Hour).Unix()})), ErrExpired},
		{"no exp", all, hs(good(jwt.MapClaims{"exp": nil})), ErrNoExpiry},
		{"no exp allowed", Config{HS256Secret: secret, AllowNoExp: true}, hs(good(jwt.MapClaims{"exp": nil})), nil},
		{"nbf in the future", all, hs(good(jwt.MapClaims{"nbf": t0.Add(time.Hour).Unix()})), ErrNotYetValid},
		{"iat in the future", all, hs(good(jwt.MapClaims{"iat": t0.Add(time.Hour).Unix()})), ErrNotYetValid},

		{"issuer", Config{HS256Secret: secret, Issuer: "https://id.example"}, hs(good(jwt.MapClaims{"iss": "https://id.example"})), nil},
		{"wrong issuer", Config{HS256Secret: secret, Issuer: "https://id.example"}, hs(good(jwt.MapClaims{"iss": "https://evil.example"})), ErrWrongIssuer},
		{"missing issuer", Config{HS256Secret: secret, Issuer: "https://id.example"}, hs(good(nil)), ErrWrongIssuer},
		{"issuer not checked when unset", all, hs(good(jwt.MapClaims{"iss": "anyone"})), nil},
		{"audience", Config{HS256Secret: secret, Audience: "subs"}, hs(good(jwt.MapClaims{"aud": "subs"})), nil},
		{"audience in list", Config{HS256Secret: secret, Audience: "subs"}, hs(good(jwt.MapClaims{"aud": []any{"api", "subs"}})), nil},
		{"wrong audience", Config{HS256Secret: secret, Audience: "subs"}, hs(good(jwt.MapClaims{"aud": "api"})), ErrWrongAudience},
		{"missing audience", Config{HS256Secret: secret, Audience: "subs"}, hs(good(nil)), ErrWrongAudience},

		{"missing tenant", all, hs(good(jwt.MapClaims{"tenant": nil})), ErrMissingTenant},
		{"tenant *", all, hs(good(jwt.MapClaims{"tenant": "*"})), ErrInvalidTenant},
		{"tenant >", all, hs(good(jwt.MapClaims{"tenant": ">"})), ErrInvalidTenant},
		{"tenant a.b", all, hs(good(jwt.MapClaims{"tenant": "a.b"})), ErrInvalidTenant},
		{"tenant empty", all, hs(good(jwt.MapClaims{"tenant": ""})), ErrInvalidTenant},
		{"tenant 65 bytes", all, hs(good(jwt.MapClaims{"tenant": long})), ErrInvalidTenant},
		{"tenant 64 bytes", all, hs(good(jwt.MapClaims{"tenant": long[:64]})), nil},
		{"tenant space", all, hs(good(jwt.MapClaims{"tenant": "a b"})), ErrInvalidTenant},
		{"tenant non-ASCII", all, hs(good(jwt.MapClaims{"tenant": "acmé"})), ErrInvalidTenant},
		{"tenant number", all, hs(good(jwt.MapClaims{"tenant": 42})), ErrInvalidTenant},
		{"tenant list", all, hs(good(jwt.MapClaims{"tenant": []any{"a", "b"}})), ErrInvalidTenant},
		{"other tenant claim", Config{HS256Secret: secret, TenantClaim: "org"}, hs(good(jwt.MapClaims{"org": "acme"})), nil},
		{"other tenant claim missing", Config{HS256Secret: secret, TenantClaim: "org"}, hs(good(nil)), ErrMissingTenant},

		// Claims are only read from signed tokens: a bad signature wins
		// over every claim problem.
		{"bad signature beats expiry", all, mint(t, jwt.SigningMethodRS256, rsaB, "", good(jwt.MapClaims{"exp": 1, "tenant": "*"})), ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, tc.cfg)
			id, err := v.Verify(tc.token)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v (cause: %v)", err, errors.Unwrap(err))
				}
				if id.Tenant == "" {
					t.Fatalf("no tenant: %+v", id)
				}
				return
			}
			wantRefused(t, id, err, tc.want)
		})
	}
}

// tamper changes the payload of a signed token without re-signing it.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := jwt.NewParser().DecodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = []byte(strings.Replace(string(payload), `"acme"`, `"evil"`, 1))
	parts[1] = strings.TrimRight(jwtEncode(payload), "=")
	return strings.Join(parts, ".")
}

// nonCanonical sets an unused low bit of the signature's last base64url
// character: the same bytes to a lenient decoder, a different token.
func nonCanonical(token string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, token[len(token)-1])
	return token[:len(token)-1] + string(alphabet[i^1])
}

func jwtEncode(b []byte) string { return (&jwt.Token{}).EncodeSegment(b) }

// TestAlgorithmConfusion: the RSA public key, which is public, must never
// work as an HS256 secret, and alg "none" never verifies.
func TestAlgorithmConfusion(t *testing.T) {
	keys(t)
	pubPEM := pemBytes(t, &rsaA.PublicKey)
	rsaPEM := writeFile(t, t.TempDir(), "rsa.pem", pubPEM)
	confused := mint(t, jwt.SigningMethodHS256, pubPEM, "", good(nil))
	confusedTrimmed := mint(t, jwt.SigningMethodHS256, []byte(strings.TrimSpace(string(pubPEM))), "", good(nil))
	none := mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good(nil))
	noneUpper := strings.Replace(none, strings.Split(none, ".")[0], strings.TrimRight(jwtEncode([]byte(`{"alg":"NONE","typ":"JWT"}`)), "="), 1)
	noAlg := strings.Replace(none, strings.Split(none, ".")[0], strings.TrimRight(jwtEncode([]byte(`{"typ":"JWT"}`)), "="), 1)

	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, jwksPath, 0, jwkOf(t, "k1", &rsaA.PublicKey))
	// An HS256 token naming the RSA key's kid: the kid must not lead HS256
	// to the public key.
	confusedKid := mint(t, jwt.SigningMethodHS256, pubPEM, "k1", good(nil))

	for _, cfg := range []Config{
		{PublicKeyFiles: []string{rsaPEM}},
		{PublicKeyFiles: []string{rsaPEM}, HS256Secret: secret},
		{JWKSFile: jwksPath},
		{JWKSFile: jwksPath, HS256Secret: secret},
	} {
		v := newTestVerifier(t, cfg)
		for name, tok := range map[string]string{
			"HS256 with public key as secret":         confused,
			"HS256 with trimmed public key as secret": confusedTrimmed,
			"HS256 with public key and kid":           confusedKid,
			"alg none":                                none,
			"alg NONE":                                noneUpper,
			"no alg":                                  noAlg,
		} {
			t.Run(fmt.Sprintf("%s/secret=%v,jwks=%v", name, cfg.HS256Secret != "", cfg.JWKSFile != ""), func(t *testing.T) {
				id, err := v.Verify(tok)
				wantRefused(t, id, err, ErrBadSignature)
			})
		}
	}
}

func TestClockSkew(t *testing.T) {
	cases := []struct {
		name   string
		skew   time.Duration
		claims jwt.MapClaims
		want   *Error
	}{
		{"expired within default skew", 0, jwt.MapClaims{"exp": t0.Add(-20 * time.Second).Unix()}, nil},
		{"expired beyond default skew", 0, jwt.MapClaims{"exp": t0.Add(-40 * time.Second).Unix()}, ErrExpired},
		{"nbf within default skew", 0, jwt.MapClaims{"nbf": t0.Add(20 * time.Second).Unix()}, nil},
		{"nbf beyond default skew", 0, jwt.MapClaims{"nbf": t0.Add(40 * time.Second).Unix()}, ErrNotYetValid},
		{"iat within default skew", 0, jwt.MapClaims{"iat": t0.Add(20 * time.Second).Unix()}, nil},
		{"iat beyond default skew", 0, jwt.MapClaims{"iat": t0.Add(40 * time.Second).Unix()}, ErrNotYetValid},
		{"expired within 2m skew", 2 * time.Minute, jwt.MapClaims{"exp": t0.Add(-90 * time.Second).Unix()}, nil},
		{"expired beyond 5s skew", 5 * time.Second, jwt.MapClaims{"exp": t0.Add(-10 * time.Second).Unix()}, ErrExpired},
		{"nbf beyond 5s skew", 5 * time.Second, jwt.MapClaims{"nbf": t0.Add(10 * time.Second).Unix()}, ErrNotYetValid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, Config{HS256Secret: secret, ClockSkew: tc.skew})
			id, err := v.Verify(mint(t, jwt.SigningMethodHS256, []byte(secret), "", good(tc.claims)))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v (%v)", err, errors.Unwrap(err))
				}
				return
			}
			wantRefused(t, id, err, tc.want)
		})
	}
}

func TestIdentity(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		claims    jwt.MapClaims
		user      string
		roles     []string
		noExpires bool
	}{
		{"defaults", Config{}, nil, "u1", []string{"admin", "ops"}, false},
		{"roles as string", Config{}, jwt.MapClaims{"roles": "admin"}, "u1", []string{"admin"}, false},
		{"roles space-separated", Config{}, jwt.MapClaims{"roles": "read  write"}, "u1", []string{"read", "write"}, false},
		{"roles with non-strings", Config{}, jwt.MapClaims{"roles": []any{"a", 1, nil, true, "b"}}, "u1", []string{"a", "b"}, false},
		{"no roles", Config{}, jwt.MapClaims{"roles": nil}, "u1", nil, false},
		{"roles object ignored", Config{}, jwt.MapClaims{"roles": map[string]any{"admin": true}}, "u1", nil, false},
		{"numeric sub", Config{}, jwt.MapClaims{"sub": 12345678901234567}, "12345678901234567", []string{"admin", "ops"}, false},
		{"no sub", Config{}, jwt.MapClaims{"sub": nil}, "", []string{"admin", "ops"}, false},
		{"custom claim names", Config{UserClaim: "uid", RolesClaim: "groups"}, jwt.MapClaims{"uid": "x9", "groups": []any{"g"}}, "x9", []string{"g"}, false},
		{"no exp allowed", Config{AllowNoExp: true}, jwt.MapClaims{"exp": nil}, "u1", []string{"admin", "ops"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.HS256Secret = secret
			v := newTestVerifier(t, tc.cfg)
			claims := good(tc.claims)
			claims["plan"] = "pro"
			id, err := v.Verify(mint(t, jwt.SigningMethodHS256, []byte(secret), "", claims))
			if err != nil {
				t.Fatalf("Verify: %v (%v)", err, errors.Unwrap(err))
			}
			if id.Tenant != "acme" || id.User != tc.user || !slices.Equal(id.Roles, tc.roles) {
				t.Errorf("got tenant=%q user=%q roles=%q, want acme %q %q", id.Tenant, id.User, id.Roles, tc.user, tc.roles)
			}
			if tc.noExpires != id.Expires.IsZero() {
				t.Errorf("Expires = %v", id.Expires)
			}
			if !tc.noExpires && !id.Expires.Equal(t0.Add(time.Hour)) {
				t.Errorf("Expires = %v, want %v", id.Expires, t0.Add(time.Hour))
			}
			if id.Claims["plan"] != "pro" {
				t.Errorf("Claims = %v, want plan", id.Claims)
			}
			rc := id.RequestClaims()
			if got, _ := rc[query.RolesClaimKey].([]string); !slices.Equal(got, tc.roles) && len(got)+len(tc.roles) > 0 {
				t.Errorf("RequestClaims()[%q] = %v, want %v", query.RolesClaimKey, rc[query.RolesClaimKey], tc.roles)
			}
			if rc["plan"] != "pro" {
				t.Errorf("RequestClaims lost the raw claims: %v", rc)
			}
		})
	}
}

// The identity's claims drive query's @requires guards end to end.
func TestIdentityFeedsRequires(t *testing.T) {
	s, err := query.LoadSchema("s.graphql", `type Query { q: String }
type T { id: ID }
type Subscription { audit: T @requires(role: "admin") }`)
	if err != nil {
		t.Fatal(err)
	}
	c := query.NewCompiler(s, query.Options{}, 0)
	v := newTestVerifier(t, Config{HS256Secret: secret, RolesClaim: "groups"})
	for _, tc := range []struct {
		groups any
		ok     bool
	}{{[]any{"admin"}, true}, {"admin", true}, {[]any{"user"}, false}} {
		id, err := v.Verify(mint(t, jwt.SigningMethodHS256, []byte(secret), "", good(jwt.MapClaims{"roles": nil, "groups": tc.groups})))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Compile(query.Request{Query: `subscription { audit { id } }`, Claims: id.RequestClaims()})
		if (err == nil) != tc.ok {
			t.Errorf("groups %v: Compile err = %v, want ok=%v", tc.groups, err, tc.ok)
		}
	}
}

func TestModeNone(t *testing.T) {
	for _, cfg := range []Config{{Mode: ModeNone}, {Mode: ModeNone, AnonymousTenant: "dev"}} {
		v := newTestVerifier(t, cfg)
		if v.Mode() != ModeNone {
			t.Errorf("Mode() = %q", v.Mode())
		}
		want := cfg.AnonymousTenant
		if want == "" {
			want = DefaultAnonymousTenant
		}
		for _, tok := range []string{"", "garbage", mint(t, jwt.SigningMethodHS256, []byte(secret), "", good(nil))} {
			id, err := v.Verify(tok)
			if err != nil || id.Tenant != want || id.User != "" || len(id.Roles) != 0 || id.Claims == nil {
				t.Errorf("Verify(%q) = %+v, %v; want anonymous in %q", tok, id, err, want)
			}
		}
	}
	if v := newTestVerifier(t, Config{HS256Secret: secret}); v.Mode() != ModeJWT {
		t.Errorf("default Mode() = %q", v.Mode())
	}
}

func TestErrorText(t *testing.T) {
	v := newTestVerifier(t, Config{HS256Secret: secret})
	_, err := v.Verify(mint(t, jwt.SigningMethodHS256, []byte(strings.Repeat("y", 32)), "", good(nil)))
	if err == nil || err.Error() != "bad signature" {
		t.Fatalf("err = %v", err)
	}
	if errors.Unwrap(err) == nil || !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Errorf("cause not kept: %v", errors.Unwrap(err))
	}
	if errors.Is(err, ErrExpired) {
		t.Error("bad signature matches ErrExpired")
	}
}

// ValidTenant must stay the subject layer's rule.
func TestValidTenantMatchesCluster(t *testing.T) {
	for _, s := range []string{"a", "acme", "A-b_9", strings.Repeat("x", 64), strings.Repeat("x", 65), "", "*", ">", "a.b", "a b", "é", "a\x00", "a/b", "%41"} {
		if got, want := ValidTenant(s), clusterValidTenant(s); got != want {
			t.Errorf("ValidTenant(%q) = %v, cluster says %v", s, got, want)
		}
	}
}

func TestPEMKeyForms(t *testing.T) {
	keys(t)
	dir := t.TempDir()
	tok := mint(t, jwt.SigningMethodRS256, rsaA, "", good(nil))
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"pkix.pem", pemBytes(t, &rsaA.PublicKey)},
		{"pkcs1.pem", pkcs1PEM(&rsaA.PublicKey)},
		{"cert.pem", certPEM(t, rsaA)},
	} {
		t.Run(f.name, func(t *testing.T) {
			v := newTestVerifier(t, Config{PublicKeyFiles: []string{writeFile(t, dir, f.name, f.data)}})
			if _, err := v.Verify(tok); err != nil {
				t.Fatalf("Verify: %v (%v)", err, errors.Unwrap(err))
			}
		})
	}
	// Several PEM keys are tried in order.
	v := newTestVerifier(t, Config{PublicKeyFiles: []string{writePEM(t, &rsaB.PublicKey), writePEM(t, &ecA.PublicKey), writePEM(t, &rsaA.PublicKey)}})
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("third key: %v", err)
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	v := newTestVerifier(t, Config{HS256SecretFile: writeFile(t, dir, "s", []byte(secret+"\n"))})
	if _, err := v.Verify(mint(t, jwt.SigningMethodHS256, []byte(secret), "", good(nil))); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, err := New(Config{HS256SecretFile: writeFile(t, dir, "short", []byte("short\n"))}, nil); err == nil || !strings.Contains(err.Error(), "auth.hs256_secret_file") {
		t.Errorf("short secret file: %v", err)
	}
	if _, err := New(Config{HS256SecretFile: filepath.Join(dir, "missing")}, nil); err == nil || !strings.Contains(err.Error(), "auth.hs256_secret_file") {
		t.Errorf("missing secret file: %v", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	keys(t)
	p := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, p, 0, jwkOf(t, "a", &rsaA.PublicKey))
	v, err := New(Config{JWKSFile: p, JWKSReload: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close()
	if _, err := v.Verify(mint(t, jwt.SigningMethodRS256, rsaA, "a", good(jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix(), "iat": nil}))); err != nil {
		t.Errorf("Verify after Close: %v", err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}
