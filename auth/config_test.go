package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string // parts of the error; none: valid
	}{
		{"secret", Config{HS256Secret: secret}, nil},
		{"secret file", Config{HS256SecretFile: "/s"}, nil},
		{"public keys", Config{PublicKeyFiles: []string{"/k.pem"}}, nil},
		{"jwks", Config{JWKSFile: "/j.json"}, nil},
		{"mode none", Config{Mode: ModeNone}, nil},
		{"explicit jwt", Config{Mode: ModeJWT, HS256Secret: secret}, nil},
		{"no key source", Config{}, []string{"auth.hs256_secret", "auth.jwks_file"}},
		{"unknown mode", Config{Mode: "JWT", HS256Secret: secret}, []string{"auth.mode"}},
		{"both secrets", Config{HS256Secret: secret, HS256SecretFile: "/s"}, []string{"auth.hs256_secret and auth.hs256_secret_file"}},
		{"short secret", Config{HS256Secret: "short"}, []string{"auth.hs256_secret:", "at least 32"}},
		{"empty key file name", Config{PublicKeyFiles: []string{"/k.pem", " "}}, []string{"auth.public_key_files[1]"}},
		{"fast reload", Config{JWKSFile: "/j", JWKSReload: time.Millisecond}, []string{"auth.jwks_reload"}},
		{"negative skew", Config{HS256Secret: secret, ClockSkew: -time.Second}, []string{"auth.clock_skew"}},
		{"huge skew", Config{HS256Secret: secret, ClockSkew: time.Hour}, []string{"auth.clock_skew"}},
		{"bad cookie", Config{HS256Secret: secret, Cookie: "a b"}, []string{"auth.cookie"}},
		{"bad anonymous tenant", Config{Mode: ModeNone, AnonymousTenant: "a.b"}, []string{"auth.anonymous_tenant"}},
		{"several problems", Config{Mode: "x", ClockSkew: -1, Cookie: "a;b"}, []string{"auth.mode", "auth.clock_skew", "auth.cookie"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	keys(t)
	dir := t.TempDir()
	rsaPriv, err := x509.MarshalPKCS8PrivateKey(rsaA)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string, data []byte) string { return writeFile(t, dir, name, data) }
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing key file", Config{PublicKeyFiles: []string{filepath.Join(dir, "nope.pem")}}, "auth.public_key_files[0]"},
		{"not PEM", Config{PublicKeyFiles: []string{file("x.pem", []byte("hello"))}}, "no PEM block"},
		{"private key", Config{PublicKeyFiles: []string{file("priv.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaPriv}))}}, "want PUBLIC KEY"},
		{"small RSA", Config{PublicKeyFiles: []string{file("small.pem", pemBytes(t, &rsaSmall.PublicKey))}}, "at least 2048"},
		{"P-384", Config{PublicKeyFiles: []string{file("p384.pem", pemBytes(t, &ecP384.PublicKey))}}, "only P-256"},
		{"Ed25519", Config{PublicKeyFiles: []string{file("ed.pem", pemBytes(t, edPub))}}, "not supported"},
		{"second file bad", Config{PublicKeyFiles: []string{file("ok.pem", pemBytes(t, &ecA.PublicKey)), file("bad.pem", nil)}}, "auth.public_key_files[1]"},
		{"missing JWKS", Config{JWKSFile: filepath.Join(dir, "nope.json")}, "auth.jwks_file"},
		{"broken JWKS", Config{JWKSFile: file("broken.json", []byte(`{"keys":`))}, "auth.jwks_file"},
		{"invalid config", Config{}, "key source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.cfg, nil)
			if err == nil {
				v.Close()
				t.Fatalf("New succeeded, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// The YAML keys are the documented snake_case names, durations included.
func TestConfigYAML(t *testing.T) {
	src := `
mode: jwt
hs256_secret_file: /run/secrets/jwt
public_key_files: [/a.pem, /b.pem]
jwks_file: /jwks.json
jwks_reload: 30s
issuer: https://id.example
audience: subs
clock_skew: 45s
allow_no_exp: true
tenant_claim: org
user_claim: uid
roles_claim: groups
cookie: fraiseql_token
anonymous_tenant: dev
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{Mode: "jwt", HS256SecretFile: "/run/secrets/jwt", PublicKeyFiles: []string{"/a.pem", "/b.pem"},
		JWKSFile: "/jwks.json", JWKSReload: 30 * time.Second, Issuer: "https://id.example", Audience: "subs",
		ClockSkew: 45 * time.Second, AllowNoExp: true, TenantClaim: "org", UserClaim: "uid", RolesClaim: "groups",
		Cookie: "fraiseql_token", AnonymousTenant: "dev"}
	if c.Mode != want.Mode || c.HS256SecretFile != want.HS256SecretFile || strings.Join(c.PublicKeyFiles, ",") != "/a.pem,/b.pem" ||
		c.JWKSFile != want.JWKSFile || c.JWKSReload != want.JWKSReload || c.Issuer != want.Issuer || c.Audience != want.Audience ||
		c.ClockSkew != want.ClockSkew || !c.AllowNoExp || c.TenantClaim != "org" || c.UserClaim != "uid" ||
		c.RolesClaim != "groups" || c.Cookie != want.Cookie || c.AnonymousTenant != "dev" {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
