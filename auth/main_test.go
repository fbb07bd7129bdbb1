package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fixed "now" of the tests that inject a clock.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

// secret is a valid HS256 secret (32 bytes).
const secret = "0123456789abcdef0123456789abcdef"

// Test keys, generated once per run: RSA generation is slow under -race.
var (
	keysOnce     sync.Once
	rsaA, rsaB   *rsa.PrivateKey
	ecA, ecB     *ecdsa.PrivateKey
	rsaSmall     *rsa.PrivateKey
	ecP384       *ecdsa.PrivateKey
	testKeysErrs []error
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var errs [6]error
		rsaA, errs[0] = rsa.GenerateKey(rand.Reader, 2048)
		rsaB, errs[1] = rsa.GenerateKey(rand.Reader, 2048)
		ecA, errs[2] = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ecB, errs[3] = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		rsaSmall, errs[4] = rsa.GenerateKey(rand.Reader, 1024)
		ecP384, errs[5] = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		for _, err := range errs {
			if err != nil {
				testKeysErrs = append(testKeysErrs, err)
			}
		}
	})
	if len(testKeysErrs) > 0 {
		t.Fatal(testKeysErrs)
	}
}

// pemBytes returns the PKIX "PUBLIC KEY" PEM of pub.
func pemBytes(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// writeFile writes data to name in dir and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writePEM writes pub as a PEM file in a temporary directory.
func writePEM(t testing.TB, pub any) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "key.pem", pemBytes(t, pub))
}

// jwkOf returns the JWK of pub with kid.
func jwkOf(t testing.TB, kid string, pub any) map[string]any {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, err := k.Bytes() // 0x04 || x || y
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])}
	}
	t.Fatalf("no JWK for %T", pub)
	return nil
}

// jwksJSON returns a JWK Set of the keys.
func jwksJSON(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeJWKS (re)writes a JWKS file and moves its mtime forward by bump, so
// that pollers see a change even on file systems with coarse timestamps.
func writeJWKS(t testing.TB, path string, bump time.Duration, keys ...map[string]any) {
	t.Helper()
	if err := os.WriteFile(path, jwksJSON(t, keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	if bump != 0 {
		mt := time.Now().Add(bump)
		if err := os.Chtimes(path, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

// mint signs claims with method and key; kid, when set, goes in the header.
func mint(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// good returns claims valid at t0 for tenant acme; extra entries are added,
// and a nil value deletes the claim.
func good(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{
		"tenant": "acme",
		"sub":    "u1",
		"roles":  []any{"admin", "ops"},
		"iat":    t0.Add(-time.Minute).Unix(),
		"exp":    t0.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := newVerifier(cfg, nil, at(t0))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// checkFor polls f every tick until it returns nil or total elapses.
func checkFor(t testing.TB, total, tick time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(tick)
	}
}
