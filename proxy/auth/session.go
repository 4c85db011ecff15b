package auth

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// ErrNoSession means the request carries no usable session: the cookie is
// missing, tampered, truncated, sealed with an unknown key, oversized,
// expired, idle for too long, or from another issuer.
var ErrNoSession = errors.New("no valid session")

// Session is the identity carried by the encrypted session cookie. Raw ID
// and access tokens are never stored; the refresh token, when the provider
// issued one and refresh is enabled, is kept in the cookie but not exported.
type Session struct {
	ID       string // random, new at every login
	Subject  string // "sub"
	Issuer   string // "iss"
	Email    string
	Name     string
	Username string // "preferred_username"
	Groups   []string

	IssuedAt    time.Time // login time
	LastSeen    time.Time // last idle-timeout bump (minute resolution)
	ExpiresAt   time.Time // IssuedAt + SessionLifetime
	RefreshedAt time.Time // last successful claims refresh (or login)

	refreshToken string
}

// CanRefresh reports whether the session holds a refresh token.
func (s *Session) CanRefresh() bool { return s.refreshToken != "" }

// Session decodes and checks the session cookie. It needs no network and
// never panics; every failure is ErrNoSession (wrapped with the reason).
func (a *Authenticator) Session(r *http.Request) (*Session, error) {
	s, err := a.session(r, a.cfg.now())
	if err != nil {
		return nil, err
	}
	return s.clone(), nil
}

// Current is Session followed by Touch, for a request that arrived at now
// (zero: the authenticator's clock). The session it returns may be shared
// with other requests carrying the same cookie: the caller must not modify
// it. Only when Touch has something to change is the session copied.
func (a *Authenticator) Current(w http.ResponseWriter, r *http.Request, now time.Time) (*Session, error) {
	if now.IsZero() {
		now = a.cfg.now()
	}
	s, err := a.session(r, now)
	if err != nil {
		return nil, err
	}
	return a.touch(w, r, s, now)
}

// session is Session without the copy: the result may be the cached
// session, which nobody may modify.
func (a *Authenticator) session(r *http.Request, now time.Time) (*Session, error) {
	value, ok := cookieValue(r, a.cfg.CookieName)
	if !ok {
		return nil, ErrNoSession
	}
	s, cached := a.cache.get(value)
	if !cached {
		var err error
		if s, err = a.decodeSession(value); err != nil {
			a.cfg.log.Debug("auth: session cookie rejected", "reason", err.Error(), "cookie_len", len(value))
			return nil, fmt.Errorf("%w: %w", ErrNoSession, err)
		}
	}
	if err := a.checkSession(s, now); err != nil {
		a.cfg.log.Debug("auth: session ended", "reason", err.Error(), "session", s.ID, "sub", s.Subject)
		return nil, fmt.Errorf("%w: %w", ErrNoSession, err)
	}
	if a.cache.isRevoked(s.ID) {
		a.cfg.log.Debug("auth: session ended", "reason", "signed out", "session", s.ID, "sub", s.Subject)
		return nil, fmt.Errorf("%w: session was signed out", ErrNoSession)
	}
	if !cached {
		a.cache.put(value, s)
	}
	return s, nil
}

func (a *Authenticator) decodeSession(value string) (*Session, error) {
	if len(value) > MaxCookieLen {
		return nil, fmt.Errorf("cookie value is %d bytes, limit %d", len(value), MaxCookieLen)
	}
	vals := make(map[any]any, 1)
	if err := securecookie.DecodeMulti(a.cfg.CookieName, value, &vals, a.sessions.Codecs...); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	s, ok := vals[sessionValueKey].(*Session)
	if !ok || s == nil {
		return nil, errors.New("decode: no session value")
	}
	return s, nil
}

func (a *Authenticator) checkSession(s *Session, now time.Time) error {
	switch {
	case s.Issuer != a.cfg.IssuerURL:
		return fmt.Errorf("issuer %q is not the configured issuer", s.Issuer)
	case s.Subject == "" || s.ID == "":
		return errors.New("session has no subject or id")
	case !now.Before(s.ExpiresAt):
		return fmt.Errorf("expired at %s", s.ExpiresAt.UTC().Format(time.RFC3339))
	case s.ExpiresAt.Sub(s.IssuedAt) > a.cfg.SessionLifetime:
		return errors.New("lifetime longer than configured")
	case now.Sub(s.LastSeen) >= a.cfg.IdleTimeout:
		return fmt.Errorf("idle since %s", s.LastSeen.UTC().Format(time.RFC3339))
	case s.IssuedAt.After(now.Add(a.cfg.ClockSkew)) || s.LastSeen.After(now.Add(a.cfg.ClockSkew)):
		return errors.New("issued in the future")
	}
	return nil
}

// saveSession writes s as the session cookie, sealed with the first key.
func (a *Authenticator) saveSession(w http.ResponseWriter, r *http.Request, s *Session) error {
	sess := sessions.NewSession(a.sessions, a.cfg.CookieName)
	opts := *a.sessions.Options
	// The browser may drop the cookie when the session ends; the server
	// enforces ExpiresAt regardless.
	if left := int(s.ExpiresAt.Sub(a.cfg.now()).Seconds()); left > 0 && left < opts.MaxAge {
		opts.MaxAge = left
	}
	sess.Options = &opts
	sess.Values[sessionValueKey] = s
	if err := a.sessions.Save(r, w, sess); err != nil {
		return fmt.Errorf("auth: save session cookie: %w", err)
	}
	return nil
}

// clearSession expires the session cookie.
func (a *Authenticator) clearSession(w http.ResponseWriter) {
	opts := *a.sessions.Options
	opts.MaxAge = -1
	http.SetCookie(w, sessions.NewCookie(a.cfg.CookieName, "", &opts))
}

// sessionValueKey is the one key of the gorilla session Values map.
const sessionValueKey = "s"

// Key derivation labels; changing them invalidates every cookie.
const (
	hkdfSessionHash = "backgate session hmac-sha256 v1"
	hkdfSessionBlk  = "backgate session aes-256 v1"
	hkdfLoginHash   = "backgate login hmac-sha256 v1"
	hkdfLoginBlk    = "backgate login aes-256 v1"
)

// newCodecs derives one securecookie codec per secret, in rotation order.
func newCodecs(secrets [][]byte, hashInfo, blockInfo string, maxAge time.Duration, sz securecookie.Serializer) ([]securecookie.Codec, error) {
	codecs := make([]securecookie.Codec, 0, len(secrets))
	for i, secret := range secrets {
		hk, err := hkdf.Key(sha256.New, secret, nil, hashInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("auth: SessionKeys[%d]: derive hash key: %w", i, err)
		}
		bk, err := hkdf.Key(sha256.New, secret, nil, blockInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("auth: SessionKeys[%d]: derive block key: %w", i, err)
		}
		sc := securecookie.New(hk, bk).SetSerializer(sz).MaxLength(MaxCookieLen)
		sc.MaxAge(int((maxAge + time.Minute).Seconds()))
		codecs = append(codecs, sc)
	}
	return codecs, nil
}

// sessionSerializer is a compact binary securecookie.Serializer for the
// gorilla Values map holding one *Session under sessionValueKey.
type sessionSerializer struct{}

func (sessionSerializer) Serialize(src any) ([]byte, error) {
	m, ok := src.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("session serializer: unexpected %T", src)
	}
	s, ok := m[sessionValueKey].(*Session)
	if !ok || len(m) != 1 {
		return nil, errors.New("session serializer: values must hold exactly one *Session")
	}
	return marshalSession(s), nil
}

func (sessionSerializer) Deserialize(b []byte, dst any) error {
	m, ok := dst.(*map[any]any)
	if !ok {
		return fmt.Errorf("session serializer: unexpected %T", dst)
	}
	s, err := unmarshalSession(b)
	if err != nil {
		return err
	}
	if *m == nil {
		*m = make(map[any]any, 1)
	}
	(*m)[sessionValueKey] = s
	return nil
}

// Binary session format, version 1:
//
//	0x01 | str ID | str Subject | str Issuer | str Email | str Name |
//	str Username | str refreshToken | uvarint nGroups | nGroups × str |
//	varint IssuedAt | varint LastSeen | varint ExpiresAt | varint RefreshedAt
//
// where str is uvarint length + UTF-8 bytes and times are Unix seconds.
const (
	sessionFormatV1 = 1
	maxGroups       = 512
	maxStrLen       = 2048
)

func marshalSession(s *Session) []byte {
	n := 1 + 4*binary.MaxVarintLen64 + binary.MaxVarintLen64
	strs := [...]string{s.ID, s.Subject, s.Issuer, s.Email, s.Name, s.Username, s.refreshToken}
	for _, v := range strs {
		n += binary.MaxVarintLen64 + len(v)
	}
	for _, g := range s.Groups {
		n += binary.MaxVarintLen64 + len(g)
	}
	b := make([]byte, 0, n)
	b = append(b, sessionFormatV1)
	for _, v := range strs {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Groups)))
	for _, g := range s.Groups {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	for _, t := range [...]time.Time{s.IssuedAt, s.LastSeen, s.ExpiresAt, s.RefreshedAt} {
		b = binary.AppendVarint(b, t.Unix())
	}
	return b
}

var errBadSessionEncoding = errors.New("malformed session encoding")

func unmarshalSession(b []byte) (*Session, error) {
	if len(b) == 0 || b[0] != sessionFormatV1 {
		return nil, fmt.Errorf("%w: unknown version", errBadSessionEncoding)
	}
	d := sessionDecoder{b: b[1:]}
	s := &Session{}
	for _, p := range [...]*string{&s.ID, &s.Subject, &s.Issuer, &s.Email, &s.Name, &s.Username, &s.refreshToken} {
		*p = d.str()
	}
	n := d.uvarint()
	if n > maxGroups {
		return nil, fmt.Errorf("%w: %d groups", errBadSessionEncoding, n)
	}
	if n > 0 && d.err == nil {
		s.Groups = make([]string, n)
		for i := range s.Groups {
			s.Groups[i] = d.str()
		}
	}
	for _, p := range [...]*time.Time{&s.IssuedAt, &s.LastSeen, &s.ExpiresAt, &s.RefreshedAt} {
		*p = time.Unix(d.varint(), 0).UTC()
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadSessionEncoding, len(d.b))
	}
	return s, nil
}

type sessionDecoder struct {
	b   []byte
	err error
}

func (d *sessionDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad uvarint", errBadSessionEncoding)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *sessionDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || v < 0 || v > 1<<40 {
		d.err = fmt.Errorf("%w: bad time", errBadSessionEncoding)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *sessionDecoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > maxStrLen || n > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: string length %d", errBadSessionEncoding, n)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	if !utf8.ValidString(s) {
		d.err = fmt.Errorf("%w: invalid UTF-8", errBadSessionEncoding)
		return ""
	}
	return s
}
