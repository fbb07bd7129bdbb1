package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"

	// maxKeyFileBytes bounds every key, secret and JWKS file read.
	maxKeyFileBytes = 1 << 20
	// maxJWKSKeys bounds the keys of one JWKS file; a token without kid
	// is tried against each of them.
	maxJWKSKeys = 100
	// kidMissInterval is the least time between two JWKS reloads that
	// unknown kids trigger, so that tokens with made-up kids cost at most
	// one file read a second.
	kidMissInterval = time.Second
)

// pubKey is one verification key and the one algorithm it serves.
type pubKey struct {
	kid string // "" for PEM keys
	alg string // algRS256 or algES256
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
}

// readLimited reads the file at path, refusing files over maxKeyFileBytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFileBytes)
	}
	return b, nil
}

// readSecret reads an HS256 secret file, dropping one trailing newline.
func readSecret(path string) ([]byte, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, nil
}

// loadPEMKey reads the first PEM block of the file at path: a public key or
// a certificate. Private keys are refused, so that a misplaced private key
// is noticed rather than quietly used.
func loadPEMKey(path string) (pubKey, error) {
	b, err := readLimited(path)
	if err != nil {
		return pubKey{}, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return pubKey{}, errors.New("no PEM block")
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return pubKey{}, fmt.Errorf("PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return pubKey{}, err
	}
	return checkKey(key)
}

// checkKey returns key as a pubKey, or an error for a key type, size or
// curve this package does not verify with.
func checkKey(key any) (pubKey, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return pubKey{}, fmt.Errorf("RSA key of %d bits; at least %d are needed", k.N.BitLen(), minRSABits)
		}
		return pubKey{alg: algRS256, key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return pubKey{}, fmt.Errorf("EC key on curve %s; only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return pubKey{alg: algES256, key: k}, nil
	}
	return pubKey{}, fmt.Errorf("%T keys are not supported; use RSA or EC P-256", key)
}

// jwk is the part of an RFC 7517 JSON Web Key this package reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// keySet is one loaded JWKS: immutable once built.
type keySet struct {
	list  []pubKey // file order
	byKid map[string]pubKey
}

// parseJWKS parses a JWK Set. Keys it cannot use (symmetric, encryption,
// other curves or algorithms, no kid, duplicate kid, bad numbers) are
// skipped, each with a reason; only a document that is not a JWK Set at
// all is an error.
func parseJWKS(data []byte) (*keySet, []string, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New("not a JWK Set: no \"keys\" array")
	}
	ks := &keySet{byKid: map[string]pubKey{}}
	var skipped []string
	for i, raw := range doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: %v", i, err))
			continue
		}
		if len(ks.list) == maxJWKSKeys {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): more than %d keys", i, j.Kid, maxJWKSKeys))
			continue
		}
		k, err := j.pubKey()
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): %v", i, j.Kid, err))
			continue
		case j.Kid == "":
			skipped = append(skipped, fmt.Sprintf("keys[%d]: no kid", i))
			continue
		}
		if _, dup := ks.byKid[k.kid]; dup {
			skipped = append(skipped, fmt.Sprintf("keys[%d]: duplicate kid %q", i, j.Kid))
			continue
		}
		ks.byKid[k.kid] = k
		ks.list = append(ks.list, k)
	}
	return ks, skipped, nil
}

// pubKey builds the key from its JWK parameters with the standard library
// (golang-jwt parses PEM but not JWK).
func (j *jwk) pubKey() (pubKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return pubKey{}, fmt.Errorf("use %q is not \"sig\"", j.Use)
	}
	var k pubKey
	switch j.Kty {
	case "RSA":
		n, err := b64(j.N, "n")
		if err != nil {
			return pubKey{}, err
		}
		e, err := b64(j.E, "e")
		if err != nil {
			return pubKey{}, err
		}
		e = bytes.TrimLeft(e, "\x00")
		if len(e) == 0 || len(e) > 4 {
			return pubKey{}, errors.New("bad RSA exponent")
		}
		ev := new(big.Int).SetBytes(e).Int64()
		if ev < 3 || ev%2 == 0 {
			return pubKey{}, errors.New("bad RSA exponent")
		}
		if k, err = checkKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ev)}); err != nil {
			return pubKey{}, err
		}
	case "EC":
		if j.Crv != "P-256" {
			return pubKey{}, fmt.Errorf("curve %q; only P-256 (ES256) is supported", j.Crv)
		}
		x, err := b64(j.X, "x")
		if err != nil {
			return pubKey{}, err
		}
		y, err := b64(j.Y, "y")
		if err != nil {
			return pubKey{}, err
		}
		if len(x) != 32 || len(y) != 32 {
			return pubKey{}, errors.New("P-256 coordinates must be 32 bytes")
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return pubKey{}, err
		}
		k = pubKey{alg: algES256, key: pk}
	case "oct":
		return pubKey{}, errors.New("symmetric keys are not read from a JWKS; use hs256_secret")
	default:
		return pubKey{}, fmt.Errorf("kty %q is not supported", j.Kty)
	}
	if j.Alg != "" && j.Alg != k.alg {
		return pubKey{}, fmt.Errorf("alg %q; only %s is supported for kty %s", j.Alg, k.alg, j.Kty)
	}
	k.kid = j.Kid
	return k, nil
}

func b64(s, name string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("parameter %s is not base64url", name)
	}
	return b, nil
}

// fileStamp identifies a version of a file as polling sees it.
type fileStamp struct {
	mod  time.Time
	size int64
}

// jwksSource is the JWKS file and the keys last loaded from it. Lookups
// read an atomic pointer and take no lock; reloads are serialized by mu.
type jwksSource struct {
	path string
	log  *slog.Logger

	keys atomic.Pointer[keySet]

	mu           sync.Mutex    // serializes reloads; guards the fields below
	stamp        fileStamp     // of the file keys came from
	sum          [32]byte      // SHA-256 of that file
	badStamp     fileStamp     // of the last version that failed to load, and
	badMsg       string        // its error: each failure is returned (logged) once
	lastMiss     time.Time     // when an unknown kid last triggered a reload
	missInterval time.Duration // kidMissInterval; negative: never (tests)
	reloads      int           // files parsed, for tests
}

// newJWKSSource loads the file at path; it must hold a JWK Set.
func newJWKSSource(path string, log *slog.Logger) (*jwksSource, error) {
	j := &jwksSource{path: path, log: log, missInterval: kidMissInterval}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.loadLocked(true); err != nil {
		return nil, err
	}
	return j, nil
}

// lookup returns the key with kid.
func (j *jwksSource) lookup(kid string) (pubKey, bool) {
	k, ok := j.keys.Load().byKid[kid]
	return k, ok
}

// all returns every key of the set, in file order.
func (j *jwksSource) all() []pubKey { return j.keys.Load().list }

// poll reloads the file if its mtime or size changed.
func (j *jwksSource) poll() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.loadLocked(false); err != nil {
		j.log.Error("auth: JWKS reload failed; the previous keys stay in force", "file", j.path, "err", err)
	}
}

// reloadOnMiss rereads the file for a token whose kid is unknown, at most
// once per missInterval across all callers. It reports whether it reread.
func (j *jwksSource) reloadOnMiss() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now()
	if j.missInterval < 0 || !j.lastMiss.IsZero() && now.Sub(j.lastMiss) < j.missInterval {
		return false
	}
	j.lastMiss = now
	if err := j.loadLocked(true); err != nil {
		j.log.Error("auth: JWKS reload failed; the previous keys stay in force", "file", j.path, "err", err)
	}
	return true
}

// loadLocked reads and parses the file when it changed since the last
// load (always when force). A version that fails returns its error once;
// the keys in force stay. j.mu must be held.
func (j *jwksSource) loadLocked(force bool) error {
	st, err := os.Stat(j.path)
	if err != nil {
		return j.failedLocked(fileStamp{}, err)
	}
	stamp := fileStamp{mod: st.ModTime(), size: st.Size()}
	if !force && (stamp == j.stamp || stamp == j.badStamp) {
		return nil
	}
	data, err := readLimited(j.path)
	if err != nil {
		return j.failedLocked(stamp, err)
	}
	sum := sha256.Sum256(data)
	if j.keys.Load() != nil && sum == j.sum {
		j.stamp, j.badStamp, j.badMsg = stamp, fileStamp{}, ""
		return nil
	}
	j.reloads++
	ks, skipped, err := parseJWKS(data)
	if err != nil {
		return j.failedLocked(stamp, err)
	}
	j.keys.Store(ks)
	j.stamp, j.sum, j.badStamp, j.badMsg = stamp, sum, fileStamp{}, ""
	for _, s := range skipped {
		j.log.Warn("auth: JWKS key skipped", "file", j.path, "reason", s)
	}
	kids := make([]string, len(ks.list))
	for i, k := range ks.list {
		kids[i] = k.kid
	}
	j.log.Info("auth: JWKS loaded", "file", j.path, "kids", kids)
	if len(ks.list) == 0 {
		j.log.Warn("auth: JWKS holds no usable key; RS256 and ES256 tokens with a kid are refused", "file", j.path)
	}
	return nil
}

// failedLocked records a failed load of the version stamp and returns err
// the first time that version fails, nil after. j.mu must be held.
func (j *jwksSource) failedLocked(stamp fileStamp, err error) error {
	if j.keys.Load() != nil && stamp == j.badStamp && err.Error() == j.badMsg {
		return nil
	}
	j.badStamp, j.badMsg = stamp, err.Error()
	return err
}
