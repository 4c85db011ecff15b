package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Options configures an Authenticator. Every field documents what its zero
// value means; New validates the whole struct without any network I/O.
type Options struct {
	// IssuerURL is the OpenID Provider's issuer identifier. Discovery fetches
	// IssuerURL + "/.well-known/openid-configuration" and the discovered
	// "issuer" must equal it exactly. Must be https, except on loopback hosts
	// (127.0.0.1, ::1, localhost, *.localhost) for tests and demos. Required.
	IssuerURL string
	// ClientID is the OAuth client id; ID tokens must carry it in "aud". Required.
	ClientID string
	// ClientSecret authenticates the client at the token endpoint. Empty means
	// a public client (PKCE still protects the code).
	ClientSecret string
	// CallbackURL is the absolute redirect_uri registered at the provider, e.g.
	// https://auth.corp.example/_backgate/callback. Its path is also the Path of
	// the short-lived login cookie. Required.
	CallbackURL string
	// PostLogoutRedirectURL, when set, is sent as post_logout_redirect_uri on
	// RP-initiated logout and is where Logout redirects when the provider has
	// no end_session_endpoint. Empty means the provider's default page, or a
	// local "signed out" page rendered through RenderError with status 200.
	PostLogoutRedirectURL string
	// Scopes requested at login. Empty means openid, email, profile. When set
	// it must contain "openid". Add "offline_access" only if the provider
	// needs it to issue refresh tokens.
	Scopes []string
	// GroupsClaim is the top-level claim holding the user's groups (a JSON
	// array of strings, or a single string). Empty means "groups".
	GroupsClaim string
	// AllowedAlgs is the ID token signing algorithm allow-list. Empty means
	// RS256, ES256. "none" and symmetric (HS*) algorithms are rejected.
	AllowedAlgs []string
	// ClockSkew is the leeway applied to exp, iat and nbf. Zero means 30s;
	// it must not be negative or exceed 5m.
	ClockSkew time.Duration
	// SessionKeys are secrets of at least 32 bytes each. The first encrypts and
	// authenticates new cookies; all of them are tried when decoding, so a key
	// can be rotated by prepending the new one. AES-256 and HMAC-SHA256 keys
	// are derived from each secret with HKDF-SHA256. Required.
	SessionKeys [][]byte
	// CookieName is the session cookie name. Empty means "_backgate". Login
	// cookies are named CookieName + "_login_" + a hash of the state.
	CookieName string
	// CookieDomain is the Domain attribute of the session and login cookies,
	// e.g. ".corp.example" so one login covers every route host and the
	// callback host. Empty means host-only cookies (then the CallbackURL host
	// must be the host users visit).
	CookieDomain string
	// InsecureCookies drops the Secure attribute. The zero value (false) sets
	// Secure on every cookie; set true only for the plain-http demo on
	// *.localhost.
	InsecureCookies bool
	// SessionLifetime is the absolute session lifetime. Zero means 12h.
	SessionLifetime time.Duration
	// IdleTimeout ends a session not seen for this long. Zero means 1h.
	IdleTimeout time.Duration
	// RefreshInterval is how often Touch uses the refresh token (when the
	// provider issued one) to re-read the user's claims. Zero means 5m; a
	// negative value disables refresh and no refresh token is stored.
	RefreshInterval time.Duration
	// AllowReturnHost reports whether a post-login return URL may point at
	// host (lower-case, with ":port" only when the port is not the scheme's
	// default). The proxy passes its configured route hosts. Nil means only
	// the CallbackURL's host is allowed.
	AllowReturnHost func(host string) bool
	// HTTPClient is used for every call to the provider. Nil means a client
	// with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives debug/warn lines; never tokens or cookie values. Nil
	// means discard.
	Logger *slog.Logger
	// Now is the clock for session expiry, idle timeout and token validation.
	// Nil means time.Now.
	Now func() time.Time
	// RenderError writes a user-facing page. Nil means a plain-text page.
	RenderError func(w http.ResponseWriter, r *http.Request, status int, title, detail string)
}

// Limits and defaults.
const (
	DefaultCookieName      = "_backgate"
	DefaultGroupsClaim     = "groups"
	DefaultClockSkew       = 30 * time.Second
	MaxClockSkew           = 5 * time.Minute
	DefaultSessionLifetime = 12 * time.Hour
	DefaultIdleTimeout     = time.Hour
	DefaultRefreshInterval = 5 * time.Minute
	// LoginTTL bounds how long a started login (state, nonce, PKCE verifier)
	// stays valid.
	LoginTTL = 10 * time.Minute
	// MinSessionKeyLen is the minimum length of each SessionKeys secret.
	MinSessionKeyLen = 32
	// MaxCookieLen is the MaxLength guard for encoded cookie values, both
	// when writing and before decoding.
	MaxCookieLen = 3800
	// touchInterval: Touch rewrites the cookie for the idle timeout at most
	// this often.
	touchInterval = time.Minute
	// discoveryRetry: after a failed discovery, Ready returns the cached
	// error for this long before trying again.
	discoveryRetry = 5 * time.Second
)

var (
	defaultScopes = []string{"openid", "email", "profile"}
	defaultAlgs   = []string{"RS256", "ES256"}
	// asymmetricAlgs is every JWS algorithm AllowedAlgs may name.
	asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

// config is Options with defaults applied; derived state lives here, never in
// the caller's Options.
type config struct {
	Options
	issuer       *url.URL
	callback     *url.URL
	loginPrefix  string
	allowHost    func(string) bool
	refreshOn    bool
	now          func() time.Time
	log          *slog.Logger
	client       *http.Client
	renderError  func(w http.ResponseWriter, r *http.Request, status int, title, detail string)
	loggedOutURL *url.URL
}

func (o Options) build() (*config, error) {
	c := &config{Options: o}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if o.IssuerURL == "" {
		add("auth: IssuerURL is required")
	} else if u, err := parseEndpoint(o.IssuerURL); err != nil {
		add("auth: IssuerURL %q: %w", o.IssuerURL, err)
	} else {
		c.issuer = u
	}
	if o.ClientID == "" {
		add("auth: ClientID is required")
	}
	if o.CallbackURL == "" {
		add("auth: CallbackURL is required")
	} else if u, err := parseEndpoint(o.CallbackURL); err != nil {
		add("auth: CallbackURL %q: %w", o.CallbackURL, err)
	} else if u.RawQuery != "" || u.Fragment != "" {
		add("auth: CallbackURL %q: must not have a query or fragment", o.CallbackURL)
	} else {
		c.callback = u
		if c.callback.Path == "" {
			c.callback.Path = "/"
		}
	}
	if o.PostLogoutRedirectURL != "" {
		u, err := url.Parse(o.PostLogoutRedirectURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			add("auth: PostLogoutRedirectURL %q: must be an absolute http(s) URL", o.PostLogoutRedirectURL)
		} else {
			c.loggedOutURL = u
		}
	}

	if len(o.Scopes) == 0 {
		c.Scopes = slices.Clone(defaultScopes)
	} else if !slices.Contains(o.Scopes, "openid") {
		add("auth: Scopes %q: must contain \"openid\"", o.Scopes)
	} else {
		c.Scopes = slices.Clone(o.Scopes)
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = DefaultGroupsClaim
	}
	if len(o.AllowedAlgs) == 0 {
		c.AllowedAlgs = slices.Clone(defaultAlgs)
	} else {
		for _, alg := range o.AllowedAlgs {
			if !slices.Contains(asymmetricAlgs, alg) {
				add("auth: AllowedAlgs: %q is not an allowed asymmetric JWS algorithm (allowed: %s)", alg, strings.Join(asymmetricAlgs, ", "))
			}
		}
		c.AllowedAlgs = slices.Clone(o.AllowedAlgs)
	}
	switch {
	case o.ClockSkew == 0:
		c.ClockSkew = DefaultClockSkew
	case o.ClockSkew < 0 || o.ClockSkew > MaxClockSkew:
		add("auth: ClockSkew %v: must be between 0 and %v", o.ClockSkew, MaxClockSkew)
	}

	if len(o.SessionKeys) == 0 {
		add("auth: SessionKeys: at least one key is required")
	}
	for i, k := range o.SessionKeys {
		if len(k) < MinSessionKeyLen {
			add("auth: SessionKeys[%d]: %d bytes, need at least %d", i, len(k), MinSessionKeyLen)
		}
	}
	if c.CookieName == "" {
		c.CookieName = DefaultCookieName
	} else if !validCookieName(c.CookieName) {
		add("auth: CookieName %q: not a valid cookie name", c.CookieName)
	}
	c.loginPrefix = c.CookieName + "_login_"
	if o.CookieDomain != "" && !validCookieDomain(o.CookieDomain) {
		add("auth: CookieDomain %q: not a valid domain", o.CookieDomain)
	}

	switch {
	case o.SessionLifetime == 0:
		c.SessionLifetime = DefaultSessionLifetime
	case o.SessionLifetime < time.Minute:
		add("auth: SessionLifetime %v: must be at least 1m", o.SessionLifetime)
	}
	switch {
	case o.IdleTimeout == 0:
		c.IdleTimeout = DefaultIdleTimeout
	case o.IdleTimeout < 2*touchInterval:
		add("auth: IdleTimeout %v: must be at least %v", o.IdleTimeout, 2*touchInterval)
	}
	switch {
	case o.RefreshInterval == 0:
		c.RefreshInterval = DefaultRefreshInterval
		c.refreshOn = true
	case o.RefreshInterval > 0:
		c.refreshOn = true
	}

	c.allowHost = o.AllowReturnHost
	if c.allowHost == nil && c.callback != nil {
		cbHost := normalizeHostPort(c.callback)
		c.allowHost = func(h string) bool { return h == cbHost }
	}
	c.client = o.HTTPClient
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Second}
	}
	c.log = o.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.now = o.Now
	if c.now == nil {
		c.now = time.Now
	}
	c.renderError = o.RenderError
	if c.renderError == nil {
		c.renderError = plainError
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// parseEndpoint accepts an absolute https URL, or http on a loopback host.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if u.Host == "" || u.User != nil || u.Opaque != "" {
		return nil, errors.New("must be an absolute URL without userinfo")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, errors.New("must use https (http is allowed only on loopback hosts)")
		}
	default:
		return nil, fmt.Errorf("scheme %q: must be https", u.Scheme)
	}
	return u, nil
}

func isLoopback(host string) bool {
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validCookieName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return s != ""
}

func validCookieDomain(s string) bool {
	d := strings.TrimPrefix(s, ".")
	if d == "" || len(d) > 253 || strings.HasSuffix(d, ".") {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.Contains(d, "..")
}

func plainError(w http.ResponseWriter, _ *http.Request, status int, title, detail string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s\n\n%s\n", title, detail)
}
