package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fraiseql/subscriptions/cluster"
)

func clusterValidTenant(s string) bool { return cluster.ValidateTenant(s) == nil }

func pkcs1PEM(pub *rsa.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
}

func certPEM(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestJWKS(t *testing.T) {
	keys(t)
	p := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, p, 0, jwkOf(t, "rsa-a", &rsaA.PublicKey), jwkOf(t, "ec-a", &ecA.PublicKey))
	staticB := writePEM(t, &rsaB.PublicKey)
	v := newTestVerifier(t, Config{JWKSFile: p, PublicKeyFiles: []string{staticB}})
	v.jwks.setMissInterval(-1) // no reloads: this test is about lookups

	cases := []struct {
		name  string
		token string
		want  *Error
	}{
		{"RS256 by kid", mint(t, jwt.SigningMethodRS256, rsaA, "rsa-a", good(nil)), nil},
		{"ES256 by kid", mint(t, jwt.SigningMethodES256, ecA, "ec-a", good(nil)), nil},
		{"RS256 without kid", mint(t, jwt.SigningMethodRS256, rsaA, "", good(nil)), nil},
		{"ES256 without kid", mint(t, jwt.SigningMethodES256, ecA, "", good(nil)), nil},
		{"PEM key without kid", mint(t, jwt.SigningMethodRS256, rsaB, "", good(nil)), nil},
		{"PEM key with a kid the JWKS lacks", mint(t, jwt.SigningMethodRS256, rsaB, "pem", good(nil)), nil},
		{"unknown kid", mint(t, jwt.SigningMethodES256, ecB, "nope", good(nil)), ErrUnknownKeyID},
		{"unknown kid, RSA", mint(t, jwt.SigningMethodRS256, rsaA, "nope", good(nil)), ErrUnknownKeyID},
		{"kid of another key", mint(t, jwt.SigningMethodRS256, rsaB, "rsa-a", good(nil)), ErrBadSignature},
		{"kid of a key of another type", mint(t, jwt.SigningMethodES256, ecA, "rsa-a", good(nil)), ErrBadSignature},
		{"kid not a string", kidNumber(t), ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(tc.token)
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

// kidNumber is an ES256 token by an unknown key whose kid is a number.
func kidNumber(t *testing.T) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, good(nil))
	tok.Header["kid"] = 7
	s, err := tok.SignedString(ecB)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWKSReloadPoll rewrites the file with a new key: the poller picks it
// up within a bounded time, with kid-miss reloads off.
func TestJWKSReloadPoll(t *testing.T) {
	keys(t)
	p := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, p, 0, jwkOf(t, "a", &rsaA.PublicKey))
	v := newTestVerifier(t, Config{JWKSFile: p, JWKSReload: 100 * time.Millisecond})
	v.jwks.setMissInterval(-1)

	tokA := mint(t, jwt.SigningMethodRS256, rsaA, "a", good(nil))
	tokB := mint(t, jwt.SigningMethodES256, ecB, "b", good(nil))
	if _, err := v.Verify(tokA); err != nil {
		t.Fatalf("a: %v", err)
	}
	_, err := v.Verify(tokB)
	wantRefused(t, nil, err, ErrUnknownKeyID)

	writeJWKS(t, p, 2*time.Second, jwkOf(t, "a", &rsaA.PublicKey), jwkOf(t, "b", &ecB.PublicKey))
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		_, err := v.Verify(tokB)
		return err
	})

	// A file that does not parse leaves the keys in force, and is logged
	// once, not on every poll.
	writeFile(t, filepath.Dir(p), "jwks.json", []byte(`{"keys": [`))
	bump(t, p, 4*time.Second)
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if v.jwks.lastError() == "" {
			return errors.New("the broken file was not seen")
		}
		return nil
	})
	for _, tok := range []string{tokA, tokB} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("after a broken rewrite: %v", err)
		}
	}

	// Removing a key revokes it.
	writeJWKS(t, p, 6*time.Second, jwkOf(t, "a", &rsaA.PublicKey))
	checkFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if _, err := v.Verify(tokB); !errors.Is(err, ErrUnknownKeyID) {
			return errors.New("key b still accepted")
		}
		return nil
	})
}

// TestJWKSReloadOnKidMiss: an unknown kid rereads the file at once, but at
// most once per interval however many tokens miss.
func TestJWKSReloadOnKidMiss(t *testing.T) {
	keys(t)
	p := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, p, 0, jwkOf(t, "a", &rsaA.PublicKey))
	v := newTestVerifier(t, Config{JWKSFile: p, JWKSReload: time.Hour})
	v.jwks.setMissInterval(time.Hour) // the first miss reloads, later ones wait

	// Same size and mtime as far as a poll could tell: only the miss
	// reload can see the new key.
	writeJWKS(t, p, 0, jwkOf(t, "c", &rsaB.PublicKey))
	before := v.jwks.reloadCount()
	if _, err := v.Verify(mint(t, jwt.SigningMethodRS256, rsaB, "c", good(nil))); err != nil {
		t.Fatalf("new kid after rewrite: %v (%v)", err, errors.Unwrap(err))
	}
	if got := v.jwks.reloadCount(); got != before+1 {
		t.Fatalf("reloads %d, want %d", got, before+1)
	}
	for i := range 50 {
		_, err := v.Verify(mint(t, jwt.SigningMethodRS256, rsaB, "made-up-"+strings.Repeat("x", i), good(nil)))
		if !errors.Is(err, ErrUnknownKeyID) {
			t.Fatalf("made-up kid: %v", err)
		}
	}
	if got := v.jwks.reloadCount(); got != before+1 {
		t.Errorf("made-up kids caused %d reloads, want 0", got-before-1)
	}
	// Key a was removed by the rewrite.
	_, err := v.Verify(mint(t, jwt.SigningMethodRS256, rsaA, "a", good(nil)))
	wantRefused(t, nil, err, ErrUnknownKeyID)
}

func TestParseJWKS(t *testing.T) {
	keys(t)
	good := []map[string]any{jwkOf(t, "r", &rsaA.PublicKey), jwkOf(t, "e", &ecA.PublicKey)}
	with := func(base map[string]any, k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range base {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	skipCases := []struct {
		name string
		key  map[string]any
	}{
		{"oct", map[string]any{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}},
		{"encryption key", with(good[0], "use", "enc")},
		{"RS512 key", with(good[0], "alg", "RS512")},
		{"no kid", with(good[0], "kid", nil)},
		{"small RSA", jwkOf(t, "small", &rsaSmall.PublicKey)},
		{"even exponent", with(good[0], "e", "Ag")},
		{"bad base64", with(good[0], "n", "!!!")},
		{"P-384", with(good[1], "crv", "P-384")},
		{"point off the curve", with(good[1], "y", good[1]["x"])},
		{"short coordinate", with(good[1], "x", "AQ")},
		{"OKP", map[string]any{"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "AQ"}},
		{"duplicate kid", with(good[1], "kid", "r")},
	}
	for _, tc := range skipCases {
		t.Run(tc.name, func(t *testing.T) {
			ks, skipped, err := parseJWKS(jwksJSON(t, good[0], good[1], tc.key))
			if err != nil {
				t.Fatal(err)
			}
			if len(ks.list) != 2 || len(skipped) != 1 {
				t.Fatalf("kept %d keys, skipped %q; want 2 kept, 1 skipped", len(ks.list), skipped)
			}
		})
	}
	for _, doc := range []string{``, `[]`, `{}`, `{"keys": {}}`, `not json`} {
		if _, _, err := parseJWKS([]byte(doc)); err == nil {
			t.Errorf("parseJWKS(%q) succeeded", doc)
		}
	}
	if ks, _, err := parseJWKS([]byte(`{"keys": []}`)); err != nil || len(ks.list) != 0 {
		t.Errorf("empty set: %v", err)
	}
}
