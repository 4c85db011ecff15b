package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gorilla/sessions"
	"golang.org/x/oauth2"
)

// ErrProviderUnavailable is wrapped by Ready (and surfaced as a 503 page by
// Login and Callback) when discovery or a provider call fails for transport
// or server-side reasons.
var ErrProviderUnavailable = errors.New("OpenID provider unavailable")

// Authenticator runs the OpenID Connect authorization code flow (PKCE S256,
// state, nonce) and manages encrypted cookie sessions. It is safe for
// concurrent use.
type Authenticator struct {
	cfg       *config
	sessions  *sessions.CookieStore // session cookie codecs + attributes
	logins    *sessions.CookieStore // login (state/nonce/PKCE) cookie codecs + attributes
	cache     *sessionCache
	refreshes *refreshGroup

	discoMu sync.Mutex // serialises discovery attempts
	mu      sync.Mutex // guards the fields below
	prov    *provider
	lastTry time.Time
	lastErr error
}

// provider is everything learnt from discovery.
type provider struct {
	oidc       *oidc.Provider
	oauth      *oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string
}

// New validates opts and builds an Authenticator. It does no network I/O;
// discovery happens on the first Ready, Login or Callback.
func New(opts Options) (*Authenticator, error) {
	cfg, err := opts.build()
	if err != nil {
		return nil, err
	}
	sc, err := newCodecs(cfg.SessionKeys, hkdfSessionHash, hkdfSessionBlk, cfg.SessionLifetime, sessionSerializer{})
	if err != nil {
		return nil, err
	}
	lc, err := newCodecs(cfg.SessionKeys, hkdfLoginHash, hkdfLoginBlk, LoginTTL, loginSerializer{})
	if err != nil {
		return nil, err
	}
	base := sessions.Options{
		Path:     "/",
		Domain:   cfg.CookieDomain,
		Secure:   !cfg.InsecureCookies,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	so := base
	so.MaxAge = int(cfg.SessionLifetime.Seconds())
	lo := base
	lo.Path = cfg.callback.Path
	lo.MaxAge = int(LoginTTL.Seconds())
	return &Authenticator{
		cfg:       cfg,
		sessions:  &sessions.CookieStore{Codecs: sc, Options: &so},
		logins:    &sessions.CookieStore{Codecs: lc, Options: &lo},
		cache:     newSessionCache(sessionCacheSize),
		refreshes: &refreshGroup{calls: map[[32]byte]*refreshCall{}},
	}, nil
}

// Ready loads the provider metadata (discovery) if it is not loaded yet and
// returns nil once it is. After a failure it returns the cached error for a
// few seconds before trying again, so an outage does not cause a stampede.
func (a *Authenticator) Ready(ctx context.Context) error {
	_, err := a.provider(ctx)
	return err
}

func (a *Authenticator) provider(ctx context.Context) (*provider, error) {
	a.mu.Lock()
	p := a.prov
	a.mu.Unlock()
	if p != nil {
		return p, nil
	}
	a.discoMu.Lock()
	defer a.discoMu.Unlock()
	a.mu.Lock()
	p, lastTry, lastErr := a.prov, a.lastTry, a.lastErr
	a.mu.Unlock()
	if p != nil {
		return p, nil
	}
	now := a.cfg.now()
	if lastErr != nil && now.Sub(lastTry) < discoveryRetry && !now.Before(lastTry) {
		return nil, lastErr
	}
	p, err := a.discover(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastTry = now
	if err != nil {
		a.lastErr = fmt.Errorf("%w: discovery at %s: %w", ErrProviderUnavailable, a.cfg.IssuerURL, err)
		a.cfg.log.Warn("auth: OIDC discovery failed", "issuer", a.cfg.IssuerURL, "err", err.Error())
		return nil, a.lastErr
	}
	a.prov, a.lastErr = p, nil
	a.cfg.log.Info("auth: OIDC provider metadata loaded", "issuer", a.cfg.IssuerURL, "end_session", p.endSession != "")
	return p, nil
}

func (a *Authenticator) discover(ctx context.Context) (*provider, error) {
	ctx = oidc.ClientContext(ctx, a.cfg.client)
	op, err := oidc.NewProvider(ctx, a.cfg.IssuerURL)
	if err != nil {
		return nil, err
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("read discovery metadata: %w", err)
	}
	if meta.EndSession != "" {
		if _, err := parseEndpoint(meta.EndSession); err != nil {
			return nil, fmt.Errorf("end_session_endpoint %q: %w", meta.EndSession, err)
		}
	}
	skew := a.cfg.ClockSkew
	return &provider{
		oidc: op,
		oauth: &oauth2.Config{
			ClientID:     a.cfg.ClientID,
			ClientSecret: a.cfg.ClientSecret,
			Endpoint:     op.Endpoint(),
			RedirectURL:  a.cfg.CallbackURL,
			Scopes:       a.cfg.Scopes,
		},
		// The verifier checks signature (alg allow-list), iss, aud and exp;
		// shifting its clock back by the skew gives exp a bounded leeway.
		verifier: op.Verifier(&oidc.Config{
			ClientID:             a.cfg.ClientID,
			SupportedSigningAlgs: a.cfg.AllowedAlgs,
			Now:                  func() time.Time { return a.cfg.now().Add(-skew) },
		}),
		endSession: meta.EndSession,
	}, nil
}

// clientCtx makes oauth2 and go-oidc use the configured HTTP client.
func (a *Authenticator) clientCtx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, a.cfg.client)
}
