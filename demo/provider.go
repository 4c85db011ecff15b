package demo

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// Default lifetimes of the demo OpenID Provider.
const (
	DefaultIDTokenLifetime     = time.Hour
	DefaultAccessTokenLifetime = 15 * time.Minute
	DefaultRefreshLifetime     = 8 * time.Hour
	DefaultSessionLifetime     = 8 * time.Hour
	authRequestLifetime        = 10 * time.Minute
)

// Paths the provider serves besides zitadel's OpenID endpoints
// (/.well-known/openid-configuration, /authorize, /authorize/callback,
// /oauth/token, /userinfo, /keys, /end_session, /revoke, /oauth/introspect).
const (
	LoginPath     = "/login"
	LoggedOutPath = "/logged-out"
)

const (
	sessionCookie = "demo_idp_session"
	groupsClaim   = "groups"
)

// ErrInvalidOptions is wrapped by every error NewProvider and NewApp return
// for bad options.
var ErrInvalidOptions = errors.New("demo: invalid options")

// ProviderOptions configure the demo OpenID Provider.
type ProviderOptions struct {
	// Issuer is the provider's base URL without a path, e.g.
	// http://127.0.0.1:9000 or http://auth.localhost:9000. Required. http is
	// allowed: this provider is for the loopback demo only.
	Issuer string
	// Users who can sign in; empty means DefaultUsers().
	Users []DemoUser
	// Clients are the registered relying parties; at least one.
	Clients []DemoClient
	// Logger receives sign-in events (never passwords or tokens); nil discards.
	Logger *slog.Logger
	// Now is the clock for the provider's own expiries (auth requests,
	// access and refresh tokens, sign-in sessions); nil means time.Now.
	// ID token times come from the zitadel library, which uses time.Now.
	Now func() time.Time
	// IDTokenLifetime, AccessTokenLifetime and RefreshLifetime: zero means
	// the Default... constants.
	IDTokenLifetime     time.Duration
	AccessTokenLifetime time.Duration
	RefreshLifetime     time.Duration
	// SigningKey signs ID tokens (RS256); nil generates a 2048-bit key.
	SigningKey *rsa.PrivateKey
	// Random is the source of key material and ids; nil means crypto/rand.
	Random io.Reader
}

// NewProvider returns the demo OpenID Provider: zitadel's certified op
// package over an in-memory store, with an embedded login page that lists
// the demo users and their passwords. It supports the authorization code flow
// with PKCE (S256 only, required for every client), RS256 ID tokens carrying
// email, email_verified, name, preferred_username and groups, userinfo,
// refresh tokens (always issued, rotated on use) and end_session.
//
// The provider remembers a signed-in browser for DefaultSessionLifetime with
// a cookie, so a second app's login completes without the form unless the
// request says prompt=login; end_session and GET /logged-out forget it.
func NewProvider(opts ProviderOptions) (http.Handler, error) {
	iss, err := validateProviderOptions(&opts)
	if err != nil {
		return nil, err
	}
	rnd := opts.Random
	if rnd == nil {
		rnd = rand.Reader
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	key := opts.SigningKey
	if key == nil {
		key, err = rsa.GenerateKey(rnd, 2048)
		if err != nil {
			return nil, fmt.Errorf("demo: generate signing key: %w", err)
		}
	}
	var kidBytes [12]byte
	var cryptoKey [32]byte
	hashKey := make([]byte, 32)
	for _, b := range [][]byte{kidBytes[:], cryptoKey[:], hashKey} {
		if _, err := io.ReadFull(rnd, b); err != nil {
			return nil, fmt.Errorf("demo: random key material: %w", err)
		}
	}

	st := newStorage(storageConfig{
		users:        opts.Users,
		clients:      opts.Clients,
		now:          now,
		random:       rnd,
		idLifetime:   orDefault(opts.IDTokenLifetime, DefaultIDTokenLifetime),
		atLifetime:   orDefault(opts.AccessTokenLifetime, DefaultAccessTokenLifetime),
		rtLifetime:   orDefault(opts.RefreshLifetime, DefaultRefreshLifetime),
		signingKey:   key,
		signingKeyID: base64.RawURLEncoding.EncodeToString(kidBytes[:]),
	})

	config := &op.Config{
		CryptoKey:                cryptoKey,
		CryptoKeyId:              "demo",
		DefaultLogoutRedirectURI: LoggedOutPath,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedClaims:          append(append([]string(nil), op.DefaultSupportedClaims...), groupsClaim),
		SupportedScopes: []string{
			oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess, groupsClaim,
		},
	}
	provider, err := op.NewProvider(config, st, op.StaticIssuer(iss), op.WithAllowInsecure())
	if err != nil {
		return nil, fmt.Errorf("demo: create OpenID provider for issuer %q: %w", iss, err)
	}

	sc := securecookie.New(hashKey, nil)
	sc.MaxAge(int(DefaultSessionLifetime / time.Second))
	sc.SetSerializer(securecookie.JSONEncoder{})
	l, err := newLogin(loginConfig{
		store:    st,
		callback: op.AuthCallbackURL(provider),
		cookies:  sc,
		secure:   strings.HasPrefix(iss, "https://"),
		logger:   logger,
		now:      now,
	})
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle(LoginPath, op.NewIssuerInterceptor(provider.IssuerFromRequest).Handler(l))
	mux.HandleFunc(LoggedOutPath, l.loggedOut)
	endSession := provider.EndSessionEndpoint().Relative()
	mux.Handle(endSession, l.forgetSession(provider))
	mux.Handle("/", provider)
	return securityHeaders(mux), nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func validateProviderOptions(opts *ProviderOptions) (string, error) {
	var errs []error
	iss := opts.Issuer
	u, err := url.Parse(iss)
	switch {
	case iss == "":
		errs = append(errs, fmt.Errorf("option Issuer is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("option Issuer %q: %w", iss, err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("option Issuer %q: scheme must be http or https", iss))
	case u.Host == "" || u.User != nil:
		errs = append(errs, fmt.Errorf("option Issuer %q: must be scheme://host[:port]", iss))
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("option Issuer %q: must have no path, query or fragment", iss))
	}
	if len(opts.Users) == 0 {
		opts.Users = DefaultUsers()
	}
	seenUser := map[string]bool{}
	seenSub := map[string]bool{}
	for i, usr := range opts.Users {
		switch {
		case usr.Username == "":
			errs = append(errs, fmt.Errorf("option Users[%d].Username is required", i))
		case seenUser[usr.Username]:
			errs = append(errs, fmt.Errorf("option Users[%d].Username %q is a duplicate", i, usr.Username))
		case seenSub[usr.subject()]:
			errs = append(errs, fmt.Errorf("option Users[%d].Subject %q is a duplicate", i, usr.subject()))
		}
		seenUser[usr.Username] = true
		seenSub[usr.subject()] = true
		if usr.Password == "" {
			errs = append(errs, fmt.Errorf("option Users[%d] (%q): Password is required", i, usr.Username))
		}
		if !strings.Contains(usr.Email, "@") {
			errs = append(errs, fmt.Errorf("option Users[%d] (%q): Email %q is not an e-mail address", i, usr.Username, usr.Email))
		}
	}
	if len(opts.Clients) == 0 {
		errs = append(errs, fmt.Errorf("option Clients: at least one client is required"))
	}
	seenClient := map[string]bool{}
	for i, c := range opts.Clients {
		switch {
		case c.ID == "":
			errs = append(errs, fmt.Errorf("option Clients[%d].ID is required", i))
		case seenClient[c.ID]:
			errs = append(errs, fmt.Errorf("option Clients[%d].ID %q is a duplicate", i, c.ID))
		}
		seenClient[c.ID] = true
		if len(c.RedirectURIs) == 0 {
			errs = append(errs, fmt.Errorf("option Clients[%d] (%q): RedirectURIs: at least one is required", i, c.ID))
		}
		for j, raw := range c.RedirectURIs {
			if err := checkAbsoluteURL(raw); err != nil {
				errs = append(errs, fmt.Errorf("option Clients[%d].RedirectURIs[%d]: %w", i, j, err))
			}
		}
		for j, raw := range c.PostLogoutRedirectURIs {
			if err := checkAbsoluteURL(raw); err != nil {
				errs = append(errs, fmt.Errorf("option Clients[%d].PostLogoutRedirectURIs[%d]: %w", i, j, err))
			}
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
	}
	return iss, nil
}

func checkAbsoluteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("%q must be an absolute http(s) URL without fragment", raw)
	}
	return nil
}

// securityHeaders sets headers every provider response may carry.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
