package edgetoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header is the HTTP request header that carries the edge token to BIG-IP.
const Header = "X-Backgate-Edge"

// Version is the first field of every token in this format.
const Version = "bg1"

// Limits of the format. A verifier refuses anything larger.
const (
	MaxTokenLen    = 4096 // bytes, whole token
	MaxKeyIDLen    = 32
	MaxEnvLen      = 32
	MaxFieldLen    = 1024 // encoded length of host, user and service
	MinSecretLen   = 32   // bytes of HMAC key
	NonceLen       = 16   // encoded length of the token id
	signatureLen   = 43   // base64url of 32 bytes, unpadded
	fieldCount     = 10
	maxUnixSeconds = 1<<40 - 1
)

// Errors returned by Verify and Parse. Callers branch with errors.Is.
var (
	ErrMalformed    = errors.New("edgetoken: malformed token")
	ErrUnknownKey   = errors.New("edgetoken: unknown key id")
	ErrBadSignature = errors.New("edgetoken: bad signature")
	ErrExpired      = errors.New("edgetoken: expired")
	ErrNotYetValid  = errors.New("edgetoken: issued in the future")
	ErrWrongHost    = errors.New("edgetoken: host does not match")
)

var b64 = base64.RawURLEncoding

// Key is one HMAC key with the id BIG-IP looks it up by.
type Key struct {
	ID     string
	Secret []byte
}

// Validate reports whether k can sign tokens.
func (k Key) Validate() error {
	if !validID(k.ID, MaxKeyIDLen) {
		return fmt.Errorf("edgetoken: key id %q must be 1-%d characters of [A-Za-z0-9_-]", k.ID, MaxKeyIDLen)
	}
	if len(k.Secret) < MinSecretLen {
		return fmt.Errorf("edgetoken: key %q: secret must be at least %d bytes, got %d", k.ID, MinSecretLen, len(k.Secret))
	}
	return nil
}

// Claims are the fields of a token.
type Claims struct {
	KeyID       string
	IssuedAt    time.Time // whole seconds
	Expiry      time.Time // whole seconds
	ID          string    // token id (nonce), 16 base64url characters; Mint fills it when empty
	Host        string    // lower-case host name without port
	User        string    // user identifier, usually the e-mail address
	Service     string    // Backstage entity ref, e.g. component:default/payments
	Environment string    // e.g. dev, staging, prod
}

// Mint returns the token for c signed with key. c.KeyID is set from key.
func Mint(key Key, c Claims) (string, error) {
	if err := key.Validate(); err != nil {
		return "", err
	}
	c.KeyID = key.ID
	if c.ID == "" {
		var n [12]byte
		if _, err := rand.Read(n[:]); err != nil {
			return "", fmt.Errorf("edgetoken: token id: %w", err)
		}
		c.ID = b64.EncodeToString(n[:])
	}
	if err := c.check(); err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.Grow(128 + b64.EncodedLen(len(c.Host)+len(c.User)+len(c.Service)))
	sb.WriteString(Version)
	sb.WriteByte('.')
	sb.WriteString(c.KeyID)
	sb.WriteByte('.')
	sb.WriteString(strconv.FormatInt(c.IssuedAt.Unix(), 10))
	sb.WriteByte('.')
	sb.WriteString(strconv.FormatInt(c.Expiry.Unix(), 10))
	sb.WriteByte('.')
	sb.WriteString(c.ID)
	for _, f := range []string{c.Host, c.User, c.Service} {
		sb.WriteByte('.')
		sb.WriteString(b64.EncodeToString([]byte(f)))
	}
	sb.WriteByte('.')
	sb.WriteString(c.Environment)
	mac := hmac.New(sha256.New, key.Secret)
	mac.Write([]byte(sb.String()))
	sb.WriteByte('.')
	sb.WriteString(b64.EncodeToString(mac.Sum(nil)))
	if sb.Len() > MaxTokenLen {
		return "", fmt.Errorf("%w: token would be %d bytes, more than %d", ErrMalformed, sb.Len(), MaxTokenLen)
	}
	return sb.String(), nil
}

func (c Claims) check() error {
	switch {
	case !validID(c.ID, NonceLen) || len(c.ID) != NonceLen:
		return fmt.Errorf("%w: token id %q", ErrMalformed, c.ID)
	case c.Host == "" || c.Host != strings.ToLower(c.Host) || strings.ContainsAny(c.Host, ":/ "):
		return fmt.Errorf("%w: host %q must be a lower-case host name without port", ErrMalformed, c.Host)
	case c.User == "":
		return fmt.Errorf("%w: empty user", ErrMalformed)
	case c.Service == "":
		return fmt.Errorf("%w: empty service", ErrMalformed)
	case !validEnv(c.Environment):
		return fmt.Errorf("%w: environment %q must be 1-%d characters of [a-z0-9-]", ErrMalformed, c.Environment, MaxEnvLen)
	case c.IssuedAt.Unix() <= 0 || c.Expiry.Unix() > maxUnixSeconds || !c.Expiry.After(c.IssuedAt):
		return fmt.Errorf("%w: expiry %d must be after issued-at %d", ErrMalformed, c.Expiry.Unix(), c.IssuedAt.Unix())
	}
	for _, f := range []string{c.Host, c.User, c.Service} {
		if b64.EncodedLen(len(f)) > MaxFieldLen {
			return fmt.Errorf("%w: field longer than %d encoded bytes", ErrMalformed, MaxFieldLen)
		}
	}
	return nil
}

// Parse splits a token into its claims, the signed bytes and the signature,
// checking every field's pattern but not the signature or the times.
func Parse(token string) (c Claims, signed string, sig []byte, err error) {
	if len(token) > MaxTokenLen {
		return c, "", nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(token), MaxTokenLen)
	}
	f := strings.Split(token, ".")
	if len(f) != fieldCount {
		return c, "", nil, fmt.Errorf("%w: %d fields, want %d", ErrMalformed, len(f), fieldCount)
	}
	if f[0] != Version {
		return c, "", nil, fmt.Errorf("%w: version %q", ErrMalformed, f[0])
	}
	if !validID(f[1], MaxKeyIDLen) {
		return c, "", nil, fmt.Errorf("%w: key id", ErrMalformed)
	}
	c.KeyID = f[1]
	iat, err1 := parseUnix(f[2])
	exp, err2 := parseUnix(f[3])
	if err1 != nil || err2 != nil {
		return c, "", nil, fmt.Errorf("%w: times", ErrMalformed)
	}
	c.IssuedAt, c.Expiry = time.Unix(iat, 0), time.Unix(exp, 0)
	if len(f[4]) != NonceLen || !validID(f[4], NonceLen) {
		return c, "", nil, fmt.Errorf("%w: token id", ErrMalformed)
	}
	c.ID = f[4]
	var dec [3]string
	for i := range dec {
		s := f[5+i]
		if s == "" || len(s) > MaxFieldLen || !validID(s, MaxFieldLen) {
			return c, "", nil, fmt.Errorf("%w: field %d", ErrMalformed, 5+i)
		}
		b, err := b64.Strict().DecodeString(s)
		if err != nil {
			return c, "", nil, fmt.Errorf("%w: field %d: %v", ErrMalformed, 5+i, err)
		}
		dec[i] = string(b)
	}
	c.Host, c.User, c.Service = dec[0], dec[1], dec[2]
	if !validEnv(f[8]) {
		return c, "", nil, fmt.Errorf("%w: environment", ErrMalformed)
	}
	c.Environment = f[8]
	// Accept only what Mint could have produced, so that every parsed token
	// re-mints to the same signed bytes (host lower-case without port,
	// expiry after issued-at).
	if err := c.check(); err != nil {
		return Claims{}, "", nil, err
	}
	if len(f[9]) != signatureLen {
		return c, "", nil, fmt.Errorf("%w: signature length", ErrMalformed)
	}
	sig, err = b64.Strict().DecodeString(f[9])
	if err != nil {
		return c, "", nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	return c, token[:len(token)-signatureLen-1], sig, nil
}

// Verifier checks tokens. Keys maps key ids to secrets; Skew bounds how far
// issued-at may lie in the future and how long past expiry a token still counts.
type Verifier struct {
	Keys func(kid string) ([]byte, bool)
	Skew time.Duration
	Now  func() time.Time // nil means time.Now
}

// Verify checks the token's format, signature, times, and that it was minted
// for host (compared lower-cased, with any port removed).
func (v Verifier) Verify(token, host string) (Claims, error) {
	c, signed, sig, err := Parse(token)
	if err != nil {
		return Claims{}, err
	}
	secret, ok := v.Keys(c.KeyID)
	if !ok {
		return Claims{}, fmt.Errorf("%w: %q", ErrUnknownKey, c.KeyID)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return Claims{}, ErrBadSignature
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if c.IssuedAt.After(now.Add(v.Skew)) {
		return Claims{}, ErrNotYetValid
	}
	if !now.Add(-v.Skew).Before(c.Expiry) {
		return Claims{}, ErrExpired
	}
	if c.Host != NormalizeHost(host) {
		return Claims{}, fmt.Errorf("%w: token for %q", ErrWrongHost, c.Host)
	}
	return c, nil
}

// NormalizeHost lower-cases host and removes a trailing port, as the iRule does.
func NormalizeHost(host string) string {
	h := strings.ToLower(host)
	if strings.HasPrefix(h, "[") { // IPv6 literal
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

func parseUnix(s string) (int64, error) {
	if s == "" || len(s) > 12 || (len(s) > 1 && s[0] == '0') {
		return 0, ErrMalformed
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrMalformed
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > maxUnixSeconds {
		return 0, ErrMalformed
	}
	return n, nil
}

func validID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validEnv(s string) bool {
	if s == "" || len(s) > MaxEnvLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
