package signer

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/backgate/backgate/proxy/edgetoken"
)

// Claim names of the assertion JWT besides the registered ones (iss, aud,
// sub, iat, exp, jti).
const (
	ClaimEmail            = "email"
	ClaimName             = "name"
	ClaimGroups           = "groups"
	ClaimBackstageUser    = "backstage_user"    // Backstage user entity ref
	ClaimBackstageService = "backstage_service" // Backstage entity ref of the route's service
	ClaimEnvironment      = "environment"
)

// DefaultTTL is the lifetime of minted tokens when Options.TTL is zero.
const DefaultTTL = 5 * time.Minute

// Bounds of Options.TTL.
const (
	MinTTL = 10 * time.Second
	MaxTTL = time.Hour
)

// Errors Sign returns; callers branch with errors.Is and must deny the request.
var (
	ErrInvalidRequest = errors.New("signer: invalid sign request")
	ErrExpired        = errors.New("signer: NotAfter leaves no time for a token")
)

// Options configure New.
type Options struct {
	// Keyring provides the keys; required.
	Keyring *Keyring
	// Issuer is backgate's external URL, the JWT "iss"; required, absolute http(s).
	Issuer string
	// TTL is the longest token lifetime; zero means DefaultTTL. Tokens never
	// outlive SignRequest.NotAfter nor the retirement of their keys.
	TTL time.Duration
	// CacheSize bounds the minted-headers cache; zero means DefaultCacheSize.
	CacheSize int
	// DisableCache mints fresh tokens for every request.
	DisableCache bool
	// UniqueTokens gives every request its own token id (edge token id and
	// JWT jti), as replay detection keyed on the id (for example a BIG-IP
	// table of seen ids) requires. It disables the cache, whose whole point
	// is to reuse a token, id included, across requests.
	UniqueTokens bool
	// JWKSMaxAge is the Cache-Control max-age of JWKSHandler; zero means
	// DefaultJWKSMaxAge.
	JWKSMaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate checks the options.
func (o Options) Validate() error {
	var errs []error
	if o.Keyring == nil {
		errs = append(errs, errors.New("signer: Keyring is nil"))
	}
	if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("signer: Issuer %q must be an absolute http(s) URL without user, query or fragment", o.Issuer))
	}
	if o.TTL != 0 && (o.TTL < MinTTL || o.TTL > MaxTTL) {
		errs = append(errs, fmt.Errorf("signer: TTL %s must be between %s and %s", o.TTL, MinTTL, MaxTTL))
	}
	if o.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("signer: CacheSize %d is negative", o.CacheSize))
	}
	if o.JWKSMaxAge < 0 {
		errs = append(errs, fmt.Errorf("signer: JWKSMaxAge %s is negative", o.JWKSMaxAge))
	}
	return errors.Join(errs...)
}

// Signer mints the identity headers for allowed requests. It is safe for
// concurrent use; Sign never blocks on key reloads.
type Signer struct {
	ring   *Keyring
	issuer string
	ttl    time.Duration
	maxAge time.Duration
	cache  *headerCache // nil when disabled
	now    func() time.Time
}

// New returns a Signer.
func New(opts Options) (*Signer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Signer{ring: opts.Keyring, issuer: opts.Issuer, ttl: opts.TTL, maxAge: opts.JWKSMaxAge, now: opts.Now}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.maxAge == 0 {
		s.maxAge = DefaultJWKSMaxAge
	}
	if s.now == nil {
		s.now = time.Now
	}
	if !opts.DisableCache && !opts.UniqueTokens {
		size := opts.CacheSize
		if size == 0 {
			size = DefaultCacheSize
		}
		s.cache = newHeaderCache(size)
	}
	return s, nil
}

// SignRequest is the identity and route one request's headers assert.
type SignRequest struct {
	Host        string   // route host; lower-cased and stripped of a port; JWT "aud"
	Subject     string   // IdP subject; required
	Email       string   // may be empty; the edge token's user falls back to Subject
	Name        string   // display name, may be empty
	Groups      []string // IdP groups, may be empty
	UserRef     string   // Backstage user entity ref, may be empty
	Service     string   // Backstage entity ref of the route; required
	Environment string   // [a-z0-9-]{1,32}; required
	// NotAfter bounds the tokens' expiry: the session's expiry, or a
	// temporary grant's if earlier. Required.
	NotAfter time.Time
	// At is the current time as the caller read it when the request
	// arrived (so one request reads the clock once); the tokens' issue time,
	// the key choice and the reuse of minted headers go by it. Zero means
	// the signer's clock.
	At time.Time
}

func (r *SignRequest) check(now time.Time) (host string, err error) {
	host = edgetoken.NormalizeHost(r.Host)
	switch {
	case host == "" || strings.ContainsAny(host, "/ \t\r\n") || len(host) > 253+2:
		return "", fmt.Errorf("%w: Host %q", ErrInvalidRequest, r.Host)
	case r.Subject == "":
		return "", fmt.Errorf("%w: Subject is empty", ErrInvalidRequest)
	case r.Service == "":
		return "", fmt.Errorf("%w: Service is empty", ErrInvalidRequest)
	case !validEnvironment(r.Environment):
		return "", fmt.Errorf("%w: Environment %q must be 1-%d characters of [a-z0-9-]", ErrInvalidRequest, r.Environment, edgetoken.MaxEnvLen)
	case r.NotAfter.IsZero():
		return "", fmt.Errorf("%w: NotAfter is not set", ErrInvalidRequest)
	case !r.NotAfter.After(now):
		return "", fmt.Errorf("%w: NotAfter %s is not after now", ErrExpired, r.NotAfter.UTC().Format(time.RFC3339))
	}
	return host, nil
}

func validEnvironment(s string) bool {
	if s == "" || len(s) > edgetoken.MaxEnvLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Sign returns the headers for req, signed with the newest active key of
// each kind. Both tokens carry the same id, issued-at and expiry: now plus
// the TTL, cut to NotAfter and to either key's retirement, in whole seconds.
// Any error means the request must be denied.
func (s *Signer) Sign(req SignRequest) (Headers, error) {
	now := req.At
	if now.IsZero() {
		now = s.now()
	}
	host, err := req.check(now)
	if err != nil {
		return Headers{}, err
	}
	ks := s.ring.snapshot()
	ek, jk := ks.edgeSigner(now), ks.jwtSigner(now)
	if ek == nil || ek.key.Secret == nil {
		return Headers{}, fmt.Errorf("%w: edge", ErrNoSigningKey)
	}
	if jk == nil || jk.priv == nil {
		return Headers{}, fmt.Errorf("%w: JWT", ErrNoSigningKey)
	}
	var kb []byte
	if s.cache != nil {
		var buf [512]byte
		kb = appendCacheKey(buf[:0], ks.gen, ek.id, jk.id, host, &req)
		s.cache.sync(ks.gen)
		if h, ok := s.cache.get(kb, now); ok {
			return h, nil
		}
	}
	iat := time.Unix(now.Unix(), 0)
	exp := now.Add(s.ttl)
	for _, limit := range []time.Time{req.NotAfter, ek.retireAt, jk.retireAt} {
		if !limit.IsZero() && limit.Before(exp) {
			exp = limit
		}
	}
	exp = time.Unix(exp.Unix(), 0) // whole seconds, rounded down: never past a limit
	if !exp.After(iat) {
		return Headers{}, fmt.Errorf("%w: expiry %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	var n [12]byte
	if _, err := rand.Read(n[:]); err != nil {
		return Headers{}, fmt.Errorf("signer: token id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(n[:])
	user := req.Email
	if user == "" {
		user = req.Subject
	}
	edge, err := edgetoken.Mint(ek.key, edgetoken.Claims{
		IssuedAt: iat, Expiry: exp, ID: id, Host: host, User: user,
		Service: req.Service, Environment: req.Environment,
	})
	if err != nil {
		return Headers{}, fmt.Errorf("%w: edge token: %w", ErrInvalidRequest, err)
	}
	assertion, err := s.assertion(jk, id, host, iat, exp, &req)
	if err != nil {
		return Headers{}, err
	}
	h := Headers{Assertion: assertion, Edge: edge, Expiry: exp}
	hdr := h.build()
	h.hdr = &hdr
	if s.cache != nil {
		s.cache.put(kb, h, iat)
	}
	return h, nil
}

func (s *Signer) assertion(k *jwtKey, id, host string, iat, exp time.Time, r *SignRequest) (string, error) {
	t := jwt.New()
	t.Options().Enable(jwt.FlattenAudience)
	claims := []struct {
		name string
		v    any
		skip bool
	}{
		{jwt.IssuerKey, s.issuer, false},
		{jwt.AudienceKey, host, false},
		{jwt.SubjectKey, r.Subject, false},
		{jwt.IssuedAtKey, iat, false},
		{jwt.ExpirationKey, exp, false},
		{jwt.JwtIDKey, id, false},
		{ClaimEmail, r.Email, r.Email == ""},
		{ClaimName, r.Name, r.Name == ""},
		{ClaimGroups, r.Groups, len(r.Groups) == 0},
		{ClaimBackstageUser, r.UserRef, r.UserRef == ""},
		{ClaimBackstageService, r.Service, false},
		{ClaimEnvironment, r.Environment, false},
	}
	for _, c := range claims {
		if c.skip {
			continue
		}
		if err := t.Set(c.name, c.v); err != nil {
			return "", fmt.Errorf("%w: claim %s: %w", ErrInvalidRequest, c.name, err)
		}
	}
	b, err := jwt.Sign(t, jwt.WithKey(k.alg, k.priv))
	if err != nil {
		return "", fmt.Errorf("signer: sign JWT with key %q: %w", k.id, err)
	}
	return string(b), nil
}

// JWKS returns the public JWT keys verifiers must accept now (see
// Keyring.JWKS).
func (s *Signer) JWKS() []byte {
	b, err := s.ring.JWKS()
	if err != nil {
		return []byte(`{"keys":[]}`)
	}
	return b
}

// JWKSHandler serves JWKS() at JWKSPath (GET and HEAD), with an ETag and
// Cache-Control max-age Options.JWKSMaxAge.
func (s *Signer) JWKSHandler() http.Handler {
	return jwksHandler{ring: s.ring, maxAge: s.maxAge}
}

// Keyring returns the signer's keyring.
func (s *Signer) Keyring() *Keyring { return s.ring }
