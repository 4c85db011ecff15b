package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/backgate/backgate/backstage"
	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/policy"
	"github.com/backgate/backgate/proxy"
	"github.com/backgate/backgate/proxy/auth"
	"github.com/backgate/backgate/proxy/pages"
	"github.com/backgate/backgate/proxy/signer"
)

// Header the upstream sets on its answer when the request carried both of
// backgate's signed headers; the load generator counts a backgate response
// without it as an error.
const signedMark = "X-Bench-Signed"

// headersPath makes the upstream answer with the backgate headers it saw (as
// JSON), so the parent can verify one edge token and assertion in full.
const headersPath = "/_bench/headers"

// clientID and clientSecret register backgate at the benchmark's provider.
const (
	clientID     = "backgate-bench"
	clientSecret = "bench-client-secret-not-for-production"
)

// upstreamHandler is the small application behind both proxies: a fixed body
// of bodySize bytes.
func upstreamHandler(bodySize int) http.Handler {
	body := []byte(strings.Repeat("x", bodySize))
	size := fmt.Sprint(bodySize)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Header.Get(signer.HeaderEdge) != "" && r.Header.Get(signer.HeaderAssertion) != "" {
			h.Set(signedMark, "1")
		}
		if r.URL.Path == headersPath {
			h.Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{
				"edge": r.Header.Get(signer.HeaderEdge), "assertion": r.Header.Get(signer.HeaderAssertion),
				"cookie": r.Header.Get("Cookie"),
			})
			return
		}
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", size)
		_, _ = w.Write(body)
	})
}

// benchConfig is backgate's configuration with every default applied, as
// `backgate serve` would load it, for the bench's loopback addresses.
func benchConfig(external, issuer, dataDir string) *config.Config {
	cfg := &config.Config{
		Server:  config.Server{Listen: "127.0.0.1:0", ExternalURL: external},
		DataDir: dataDir,
		OIDC:    config.OIDC{Issuer: issuer, ClientID: clientID},
		Session: config.Session{CookieDomain: benchDomain, Insecure: true},
	}
	cfg.Defaults()
	return cfg
}

// bareProxy is the baseline: httputil.ReverseProxy with Rewrite (SetURL,
// SetXForwarded) and the transport backgate builds from the same defaults.
func bareProxy(upstream *url.URL, cfg *config.Config) http.Handler {
	u := cfg.Upstream
	tr := proxy.NewTransport(proxy.TransportOptions{MaxIdleConnsPerHost: u.MaxIdleConnsPerHost,
		DialTimeout: u.DialTimeout, ResponseHeaderTimeout: u.ResponseHeaderTimeout})
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
		Transport: tr,
		// The same copy-buffer pool as backgate, so the ratio measures
		// identity, policy and signing, not buffer allocation.
		BufferPool: proxy.NewBufferPool(),
		ErrorLog:   slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn),
	}
}

// backgateOptions are what the backgate child needs to know.
type backgateOptions struct {
	Upstream     *url.URL
	External     string // http://auth.bench.localhost:PORT
	Issuer       string
	DataDir      string
	RouteHost    string
	Catalog      catalogSize
	UniqueTokens bool
	// NoDecisionCache evaluates the policy for every request.
	NoDecisionCache bool
	DecisionLog     bool // write the decision log (to io.Discard)
	Log             io.Writer
	Now             func() time.Time
}

// staticSource serves one generated snapshot.
type staticSource struct{ snap *backstage.Snapshot }

func (s staticSource) Fetch(context.Context) (*backstage.Snapshot, error) { return s.snap, nil }

// staleGuard mirrors cmd/backgate: every decision fails closed while the
// catalog is stale.
type staleGuard struct {
	sy  *backstage.Syncer
	eng policy.Authorizer // the engine behind its decision cache, as serve runs it
	now func() time.Time
}

func (g staleGuard) Decide(ctx context.Context, in policy.Input) (policy.Decision, error) {
	if g.sy.Stale(g.now()) {
		return policy.Decision{}, errors.New("catalog is stale past catalog.max_staleness")
	}
	return g.eng.Decide(ctx, in)
}

// buildBackgate wires backgate the way cmd/backgate's buildApp does (keyring
// and signer, policy engine, pages, OIDC authenticator, transport, proxy,
// catalog syncer feeding the engine), with the configuration defaults, one
// route to the upstream and a generated catalog. It returns the handler and
// the http.Server settings backgate serves with.
func buildBackgate(ctx context.Context, o backgateOptions) (*http.Server, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	cfg := benchConfig(o.External, o.Issuer, o.DataDir)
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	log := slog.New(slog.NewJSONHandler(o.Log, &slog.HandlerOptions{Level: lvl}))

	kr, err := signer.OpenKeyring(signer.KeyringOptions{Dir: cfg.DataDir, Algorithm: cfg.Signing.Algorithm, Now: o.Now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	external := strings.TrimRight(cfg.Server.ExternalURL, "/")
	sg, err := signer.New(signer.Options{Keyring: kr, Issuer: external, TTL: min(cfg.Signing.AssertionTTL, cfg.Signing.EdgeTTL),
		UniqueTokens: o.UniqueTokens || cfg.Signing.UniqueTokens, Now: o.Now})
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	var dlog io.Writer
	if o.DecisionLog {
		dlog = io.Discard
	}
	eng, err := policy.New(policy.Options{Logger: log, Now: o.Now, DecisionLog: dlog})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	pg, err := pages.New(log)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	extURL, err := url.Parse(external)
	if err != nil {
		return nil, fmt.Errorf("external URL: %w", err)
	}
	au, err := auth.New(auth.Options{
		IssuerURL: cfg.OIDC.Issuer, ClientID: cfg.OIDC.ClientID, ClientSecret: clientSecret,
		CallbackURL: external + "/_backgate/callback", PostLogoutRedirectURL: cfg.OIDC.LogoutURL,
		Scopes: cfg.OIDC.Scopes, GroupsClaim: cfg.OIDC.GroupsClaim, AllowedAlgs: cfg.OIDC.AllowedAlgs,
		ClockSkew: cfg.OIDC.ClockSkew, SessionKeys: [][]byte{[]byte(hex.EncodeToString(key))}, CookieName: cfg.Session.CookieName,
		CookieDomain: cfg.Session.CookieDomain, InsecureCookies: cfg.Session.Insecure,
		SessionLifetime: cfg.Session.Lifetime, IdleTimeout: cfg.Session.IdleTimeout,
		RefreshInterval: cfg.Session.RefreshInterval,
		AllowReturnHost: func(h string) bool {
			host, port, err := net.SplitHostPort(h)
			return err == nil && port == extURL.Port() && (host == o.RouteHost || host == extURL.Hostname())
		},
		Logger: log, Now: o.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	u := cfg.Upstream
	tr, err := proxy.LoadTransport(proxy.TransportOptions{MaxIdleConnsPerHost: u.MaxIdleConnsPerHost,
		DialTimeout: u.DialTimeout, ResponseHeaderTimeout: u.ResponseHeaderTimeout})
	if err != nil {
		return nil, err
	}

	snap, err := genSnapshot(o.Catalog, o.Now())
	if err != nil {
		return nil, err
	}
	var catErr error
	sy, err := backstage.NewSyncer(backstage.SyncerOptions{
		Source: staticSource{snap}, DataDir: cfg.DataDir, Interval: time.Minute, MaxStaleness: cfg.Catalog.MaxStaleness,
		Now: o.Now, Logger: log,
		Build: backstage.BuildOptions{
			Identity: backstage.IdentityOptions{UserMatch: cfg.Catalog.IdentityMapping},
			Routes:   backstage.RouteOptions{LifecycleEnvironments: cfg.Catalog.Environments},
		},
		OnUpdate: func(c *backstage.Catalog) { catErr = eng.SetCatalog(c) },
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if err := sy.Init(ctx); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if catErr != nil {
		return nil, fmt.Errorf("catalog rejected by the policy engine: %w", catErr)
	}

	srv, err := proxy.New(proxy.Options{
		ExternalURL: extURL,
		Routes: []proxy.Route{{Name: "bench", Host: o.RouteHost, PathPrefix: "/", Service: benchService,
			Environment: benchEnv, Upstream: o.Upstream}},
		Sessions:    proxy.AuthSessions(au),
		Authorizer:  staleGuard{sy: sy, eng: authorizer(eng, o.NoDecisionCache, o.Now), now: o.Now},
		Signer:      proxy.SignerHeaders(sg),
		Strip:       signer.StripBackgateHeaders,
		JWKS:        sg.JWKSHandler(),
		Transport:   tr,
		CookieNames: []string{cfg.Session.CookieName},
		Pages:       pg,
		Logger:      log,
		Now:         o.Now,
	})
	if err != nil {
		return nil, err
	}
	s := cfg.Server
	return &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    s.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, nil
}

// authorizer is the engine behind a decision cache unless disabled, as
// cmd/backgate's buildApp wires it.
func authorizer(eng *policy.Engine, noCache bool, now func() time.Time) policy.Authorizer {
	if noCache {
		return eng
	}
	return policy.NewDecisionCache(eng, policy.CacheOptions{Now: now})
}
