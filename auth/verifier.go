package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxTokenBytes bounds the token Verify parses; longer ones are malformed.
const maxTokenBytes = 16 << 10

// rolesKey is the key under which RequestClaims puts the roles: the key
// query.RolesClaimKey names (a test keeps them equal).
const rolesKey = "roles"

// Identity is who a verified token says the connection is.
type Identity struct {
	// Tenant is the tenant claim, valid by ValidTenant: the tenant token
	// of every subject the connection subscribes to.
	Tenant string
	// User is the user claim as text ("" when absent).
	User string
	// Roles are the roles claim's strings.
	Roles []string
	// Claims are all the token's claims, numbers as json.Number. Callers
	// must not modify the map: use RequestClaims for a copy.
	Claims map[string]any
	// Expires is the token's exp; zero when it has none.
	Expires time.Time
}

// RequestClaims returns a copy of Claims with Roles under "roles"
// (query.RolesClaimKey) whatever claim they came from: the claims to put in
// query.Request.Claims for {claims.x} topics and @requires guards.
func (id *Identity) RequestClaims() map[string]any {
	m := make(map[string]any, len(id.Claims)+1)
	for k, v := range id.Claims {
		m[k] = v
	}
	m[rolesKey] = slices.Clone(id.Roles)
	return m
}

// Verifier verifies tokens against the configured keys. All its methods
// are safe for concurrent use.
type Verifier struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	parser *jwt.Parser // nil in mode none

	secret []byte      // HS256; nil: HS256 refused
	static []pubKey    // PEM keys, in configuration order
	jwks   *jwksSource // nil: no JWKS file

	stop      chan struct{}
	wg        sync.WaitGroup // the JWKS poll goroutine
	closeOnce sync.Once
}

// New validates cfg, reads its key files, and returns a Verifier. With a
// JWKS file it starts one goroutine that polls the file; Close stops it.
// log may be nil.
func New(cfg Config, log *slog.Logger) (*Verifier, error) {
	return newVerifier(cfg, log, time.Now)
}

// newVerifier is New with the clock that exp, nbf and iat are checked
// against.
func newVerifier(cfg Config, log *slog.Logger, now func() time.Time) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	v := &Verifier{cfg: cfg, log: log, now: now, stop: make(chan struct{})}
	if cfg.Mode == ModeNone {
		return v, nil
	}

	var methods []string
	switch {
	case cfg.HS256Secret != "":
		v.secret = []byte(cfg.HS256Secret)
	case cfg.HS256SecretFile != "":
		b, err := readSecret(cfg.HS256SecretFile)
		if err != nil {
			return nil, fmt.Errorf("auth.hs256_secret_file: %w", err)
		}
		if len(b) < minSecretBytes {
			return nil, fmt.Errorf("auth.hs256_secret_file: %s holds %d bytes; at least %d are needed (RFC 7518 §3.2)", cfg.HS256SecretFile, len(b), minSecretBytes)
		}
		v.secret = b
	}
	if v.secret != nil {
		methods = append(methods, algHS256)
	}
	for i, path := range cfg.PublicKeyFiles {
		k, err := loadPEMKey(path)
		if err != nil {
			return nil, fmt.Errorf("auth.public_key_files[%d]: %s: %w", i, path, err)
		}
		v.static = append(v.static, k)
		if !slices.Contains(methods, k.alg) {
			methods = append(methods, k.alg)
		}
	}
	if cfg.JWKSFile != "" {
		j, err := newJWKSSource(cfg.JWKSFile, log)
		if err != nil {
			return nil, fmt.Errorf("auth.jwks_file: %s: %w", cfg.JWKSFile, err)
		}
		v.jwks = j
		// The file may gain either kind of key on reload.
		for _, alg := range []string{algRS256, algES256} {
			if !slices.Contains(methods, alg) {
				methods = append(methods, alg)
			}
		}
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods), // never "none"; HS256 only with a secret
		jwt.WithLeeway(cfg.ClockSkew),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
		jwt.WithIssuedAt(),
		jwt.WithJSONNumber(),
		jwt.WithStrictDecoding(), // one encoding per token: no malleable padding bits
	}
	if !cfg.AllowNoExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)

	if v.jwks != nil {
		v.wg.Add(1)
		go func() { // owned: Close stops and waits for it
			defer v.wg.Done()
			v.pollJWKS()
		}()
	}
	log.Info("auth: verifier ready", "mode", cfg.Mode, "algorithms", methods,
		"issuer", cfg.Issuer, "audience", cfg.Audience, "tenant_claim", cfg.TenantClaim)
	return v, nil
}

func (v *Verifier) pollJWKS() {
	t := time.NewTicker(v.cfg.JWKSReload)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			v.jwks.poll()
		}
	}
}

// Close stops the JWKS poll goroutine and waits for it. It is idempotent;
// Verify keeps working after Close, with the keys last loaded.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() { close(v.stop) })
	v.wg.Wait()
}

// Mode returns "jwt" or "none".
func (v *Verifier) Mode() string { return v.cfg.Mode }

// ClockSkew returns the leeway Verify grants exp, nbf and iat (Config.ClockSkew
// with its default): a token is expired only ClockSkew after its exp.
func (v *Verifier) ClockSkew() time.Duration { return v.cfg.ClockSkew }

// Cookie returns the name of the upgrade request's cookie that may carry
// the token (Config.Cookie); "" when tokens never come from a cookie.
func (v *Verifier) Cookie() string { return v.cfg.Cookie }

// Verify checks token and returns the identity it carries, or an *Error
// whose Reason is fixed public text and whose cause (Unwrap) is for logs.
//
// In mode "none" every token, even an empty one, yields the anonymous
// identity: Tenant is Config.AnonymousTenant, User and Roles are empty.
//
// In mode "jwt" the token must be signed by a configured key with an
// algorithm that key serves, be within exp, nbf and iat (with the clock
// skew), carry exp unless AllowNoExp, match Issuer and Audience when set,
// and carry a valid tenant claim.
func (v *Verifier) Verify(token string) (*Identity, error) {
	if v.cfg.Mode == ModeNone {
		return &Identity{Tenant: v.cfg.AnonymousTenant, Claims: map[string]any{}}, nil
	}
	if token == "" {
		return nil, fail(ErrMissingToken, nil)
	}
	if len(token) > maxTokenBytes {
		return nil, fail(ErrMalformed, fmt.Errorf("token of %d bytes exceeds %d", len(token), maxTokenBytes))
	}
	claims := jwt.MapClaims{}
	var kidMiss bool
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		return v.keyFor(t, &kidMiss)
	})
	if err != nil {
		return nil, v.classify(err, claims, kidMiss)
	}
	return v.identity(claims)
}

var (
	errUnknownKID = errors.New("no key has the token's kid")
	errNoKey      = errors.New("no key serves the token's algorithm")
	errKeyAlg     = errors.New("the key with the token's kid serves another algorithm")
)

// keyFor is the jwt.Keyfunc: it runs after the parser has checked the
// algorithm against the allowed ones. HS256 gets the secret and nothing
// else; RS256 and ES256 get public keys of their own type only, so no
// token can make a public key serve as an HMAC secret.
//
// A kid is looked up in the JWKS (reloading it, rate-limited, on a miss).
// A token without kid, or whose kid no JWKS key has, is tried against the
// PEM keys in order, then (without kid) against every JWKS key of its
// algorithm. *kidMiss records that the kid was unknown.
func (v *Verifier) keyFor(t *jwt.Token, kidMiss *bool) (any, error) {
	alg := t.Method.Alg()
	if alg == algHS256 {
		if v.secret == nil {
			return nil, errNoKey
		}
		return v.secret, nil
	}
	var keys []jwt.VerificationKey
	kid, _ := t.Header["kid"].(string)
	if v.jwks != nil && kid != "" {
		k, ok := v.jwks.lookup(kid)
		if !ok && v.jwks.reloadOnMiss() {
			k, ok = v.jwks.lookup(kid)
		}
		if ok {
			if k.alg != alg {
				return nil, errKeyAlg
			}
			return k.key, nil
		}
		*kidMiss = true
	}
	for _, k := range v.static {
		if k.alg == alg {
			keys = append(keys, k.key)
		}
	}
	if v.jwks != nil && kid == "" {
		for _, k := range v.jwks.all() {
			if k.alg == alg {
				keys = append(keys, k.key)
			}
		}
	}
	if len(keys) == 0 {
		if *kidMiss {
			return nil, errUnknownKID
		}
		return nil, errNoKey
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// classify maps the parser's error to a refusal with a fixed reason. The
// signature is checked before any claim, so claim reasons are only ever
// given for tokens a configured key signed.
func (v *Verifier) classify(err error, claims jwt.MapClaims, kidMiss bool) *Error {
	absent := func(name string) bool {
		x, ok := claims[name]
		return !ok || x == nil || x == ""
	}
	switch {
	case errors.Is(err, errUnknownKID):
		return fail(ErrUnknownKeyID, err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail(ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && kidMiss:
		return fail(ErrUnknownKeyID, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return fail(ErrBadSignature, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail(ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fail(ErrNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fail(ErrWrongIssuer, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail(ErrWrongAudience, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case !v.cfg.AllowNoExp && absent("exp"):
			return fail(ErrNoExpiry, err)
		case v.cfg.Issuer != "" && absent("iss"):
			return fail(ErrWrongIssuer, err)
		case v.cfg.Audience != "" && absent("aud"):
			return fail(ErrWrongAudience, err)
		}
	}
	return fail(ErrMalformed, err)
}

// identity reads the verified claims.
func (v *Verifier) identity(claims jwt.MapClaims) (*Identity, error) {
	tv, ok := claims[v.cfg.TenantClaim]
	if !ok || tv == nil {
		return nil, fail(ErrMissingTenant, fmt.Errorf("claim %q is absent", v.cfg.TenantClaim))
	}
	tenant, ok := tv.(string)
	if !ok || !ValidTenant(tenant) {
		return nil, fail(ErrInvalidTenant, fmt.Errorf("claim %q: %q is not 1 to 64 bytes of [A-Za-z0-9_-]", v.cfg.TenantClaim, fmt.Sprint(tv)))
	}
	id := &Identity{
		Tenant: tenant,
		User:   claimText(claims[v.cfg.UserClaim]),
		Roles:  roles(claims[v.cfg.RolesClaim]),
		Claims: map[string]any(claims),
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		id.Expires = exp.Time
	}
	return id, nil
}

// claimText is a string claim as it is and a number as its JSON text; any
// other kind is "".
func claimText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

// roles reads a roles claim: a list (its strings) or one string of
// space-separated roles.
func roles(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
