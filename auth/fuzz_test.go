package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify: no input panics, and nothing the fuzzer makes verifies (it
// cannot sign with the test keys). The corpus is in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	keys(f)
	p := writeFile(f, f.TempDir(), "jwks.json", jwksJSON(f, jwkOf(f, "a", &rsaA.PublicKey), jwkOf(f, "e", &ecA.PublicKey)))
	v, err := newVerifier(Config{HS256Secret: secret, JWKSFile: p, JWKSReload: time.Hour}, nil, at(t0))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	v.jwks.setMissInterval(-1)

	// A valid token, to be mutated (its exact form is rejected below).
	valid := mint(f, jwt.SigningMethodHS256, []byte(secret), "", good(nil))
	f.Add(valid)
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(token)
		if token == valid {
			return
		}
		if err == nil {
			t.Fatalf("Verify(%q) = %+v, want a refusal", token, id)
		}
		if _, ok := err.(*Error); !ok {
			t.Fatalf("error %T is not *Error", err)
		}
		if id != nil {
			t.Fatalf("identity returned with an error")
		}
	})
}
