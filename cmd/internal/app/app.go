package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/backgate/backgate/backstage"
	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/configs"
	"github.com/backgate/backgate/policy"
	"github.com/backgate/backgate/proxy"
	proxyaccess "github.com/backgate/backgate/proxy/access"
	"github.com/backgate/backgate/proxy/auth"
	"github.com/backgate/backgate/proxy/pages"
	"github.com/backgate/backgate/proxy/signer"
)

// App is a fully built backgate: every part constructed from one Config,
// nothing listening yet.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	handler  *proxy.Server
	auth     *auth.Authenticator
	engine   *policy.Engine
	authz    policy.Authorizer // the engine, behind its decision cache unless disabled
	syncer   *backstage.Syncer
	keyring  *signer.Keyring
	signer   *signer.Signer
	access   *accessParts // nil when access.disabled
	hosts    *hostSet
	external *url.URL
	closers  []io.Closer
	now      func() time.Time
	getenv   func(string) string
}

// allowHost is the post-login and access-form return host check.
func (a *App) allowHost(h string) bool { return a.hosts.allowed(h, a.external) }

// Env is what the app may touch of its process: streams and the
// environment (secrets given as {env: NAME}).
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Deps are what tests, the demo and the load benchmark may replace; zero
// values mean the real thing.
type Deps struct {
	Now        func() time.Time // nil: time.Now
	HTTPClient *http.Client     // for the OIDC provider and Backstage; nil: defaults
	// Upstream rewrites catalog route upstreams; the demo uses it to point
	// the demo catalog's fixed address at the app it actually started.
	Upstream func(string) string
	// Source replaces the catalog source the configuration names (the load
	// benchmark's generated catalog).
	Source backstage.Source
}

// newLogger is the process logger the configuration asks for.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

// accessLogWriter is where the proxy writes access records directly: the
// log writer, when the log is JSON (the layout the direct encoder writes),
// info records are on, and the writer takes whole lines from several
// goroutines at once without a lock of ours (a file such as stderr, or
// io.Discard); nil otherwise, and records then go through slog, whose
// handler serialises its writes. log is the logger writing to w (made by
// newLogger); its handler tells the format and whether info is on.
func accessLogWriter(log *slog.Logger, w io.Writer) io.Writer {
	if _, isJSON := log.Handler().(*slog.JSONHandler); !isJSON || !log.Enabled(context.Background(), slog.LevelInfo) {
		return nil
	}
	if _, isFile := w.(*os.File); isFile || w == io.Discard {
		return w
	}
	return nil
}

// Build wires every package from cfg. It reads secrets and keys and loads
// the catalog (from the data directory if the source is down) but opens no
// listener. It logs to e.Stderr as cfg.Log asks (newLogger), which is also
// where the proxy writes its access records directly: one writer, one
// format, chosen here once.
func Build(ctx context.Context, cfg *config.Config, e *Env, d Deps) (*App, error) {
	if d.Now == nil {
		d.Now = time.Now
	}
	log := newLogger(cfg.Log, e.Stderr)
	a := &App{cfg: cfg, log: log, now: d.Now, getenv: e.Getenv}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}

	// Keys and signer.
	kr, err := signer.OpenKeyring(signer.KeyringOptions{Dir: cfg.DataDir, Algorithm: cfg.Signing.Algorithm,
		EdgeKeyFiles: KeyFiles(cfg.Signing.EdgeKeys), JWTKeyFiles: KeyFiles(cfg.Signing.JWTKeys), Now: d.Now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	a.keyring = kr
	external := strings.TrimRight(cfg.Server.ExternalURL, "/")
	sg, err := signer.New(signer.Options{Keyring: kr, Issuer: external, TTL: min(cfg.Signing.AssertionTTL, cfg.Signing.EdgeTTL),
		UniqueTokens: cfg.Signing.UniqueTokens, Now: d.Now})
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	a.signer = sg
	strip, err := signer.NewHeaderStripper(cfg.Signing.StripHeaders...)
	if err != nil {
		return nil, fmt.Errorf("signing.strip_headers: %w", err)
	}

	// Policy engine.
	var dlog io.Writer
	switch dl := cfg.Policy.DecisionLog; dl {
	case "":
	case "stdout":
		dlog = e.Stdout
	default:
		f, err := os.OpenFile(dl, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("policy.decision_log: %w", err)
		}
		a.closers = append(a.closers, f)
		dlog = f
	}
	eng, err := policy.New(policy.Options{PolicyDir: cfg.Policy.Dir, Logger: log, Now: d.Now, DecisionLog: dlog,
		TopdownOnly: cfg.Policy.Evaluator == "topdown"})
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	a.engine = eng
	a.authz = eng
	if !cfg.Policy.NoDecisionCache {
		a.authz = policy.NewDecisionCache(eng, policy.CacheOptions{TTL: cfg.Policy.DecisionCacheTTL, Now: d.Now})
	}

	// Pages and login.
	pg, err := pages.New(log)
	if err != nil {
		return nil, err
	}
	secret := ""
	if !cfg.OIDC.ClientSecret.IsZero() {
		if secret, err = cfg.OIDC.ClientSecret.Read(e.Getenv); err != nil {
			return nil, fmt.Errorf("oidc.client_secret: %w", err)
		}
	}
	sessionKeys, err := loadSessionKeys(cfg, e)
	if err != nil {
		return nil, fmt.Errorf("session.keys: %w", err)
	}
	extURL, _ := url.Parse(external)
	routeHosts := &hostSet{}
	a.hosts, a.external = routeHosts, extURL
	au, err := auth.New(auth.Options{
		IssuerURL: cfg.OIDC.Issuer, ClientID: cfg.OIDC.ClientID, ClientSecret: secret,
		CallbackURL: external + "/_backgate/callback", PostLogoutRedirectURL: cfg.OIDC.LogoutURL,
		Scopes: cfg.OIDC.Scopes, GroupsClaim: cfg.OIDC.GroupsClaim, AllowedAlgs: cfg.OIDC.AllowedAlgs,
		ClockSkew: cfg.OIDC.ClockSkew, SessionKeys: sessionKeys, CookieName: cfg.Session.CookieName,
		CookieDomain: cfg.Session.CookieDomain, InsecureCookies: cfg.Session.Insecure,
		SessionLifetime: cfg.Session.Lifetime, IdleTimeout: cfg.Session.IdleTimeout,
		RefreshInterval: cfg.Session.RefreshInterval,
		AllowReturnHost: func(h string) bool { return routeHosts.allowed(h, extURL) },
		HTTPClient:      d.HTTPClient, Logger: log, Now: d.Now,
		RenderError: func(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
			if status == http.StatusOK && r.URL.Path == "/_backgate/logout" {
				pg.Render(w, "loggedout", pages.Page{Title: title, Message: detail})
				return
			}
			pg.Error(w, status, title, detail, "")
		},
	})
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	a.auth = au

	// Transports.
	defTransport, err := proxy.LoadTransport(transportOptions(cfg.Upstream, cfg.Upstream.TLS))
	if err != nil {
		return nil, fmt.Errorf("upstream.tls: %w", err)
	}
	configRoutes, err := ConfigRoutes(cfg)
	if err != nil {
		return nil, err
	}

	var accessHandler http.Handler
	var accessURL func(*http.Request, *proxy.Route) string
	if !cfg.Access.Disabled {
		// The handler is built after the proxy (it needs the proxy's
		// client-address lookup); the proxy reaches it through a.access.
		accessHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.access.handler.ServeHTTP(w, r) })
		accessURL = func(r *http.Request, rt *proxy.Route) string {
			return proxyaccess.RequestURL(proxyaccess.DefaultBasePath, rt.Service, rt.Environment, r.URL.RequestURI())
		}
	}
	srv, err := proxy.New(proxy.Options{
		Access:           accessHandler,
		AccessRequestURL: accessURL,
		ExternalURL:      extURL,
		Routes:           configRoutes,
		Sessions:         proxy.AuthSessions(au),
		Authorizer:       staleGuard{a},
		Signer:           proxy.SignerHeaders(sg),
		Strip:            strip.Strip,
		JWKS:             sg.JWKSHandler(),
		Transport:        defTransport,
		TrustedProxies:   cfg.TrustedProxyPrefixes(),
		CookieNames:      []string{cfg.Session.CookieName},
		Ready:            a.ready,
		Status:           a.status,
		Owners:           a.owners,
		Pages:            pg,
		Logger:           log,
		AccessLog:        accessLogWriter(log, e.Stderr),
		Now:              d.Now,
	})
	if err != nil {
		return nil, err
	}
	a.handler = srv
	routeHosts.set(configRoutes)
	if !cfg.Access.Disabled {
		if a.access, err = buildAccess(ctx, a, e, e.Stderr); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, a.access.store)
	}

	// Catalog: the source, then the syncer that feeds the engine and routes.
	src := d.Source
	if src == nil {
		if src, err = CatalogSource(cfg, e, d, log); err != nil {
			return nil, err
		}
	}
	interval := time.Minute
	if b := cfg.Catalog.Backstage; b != nil {
		interval = b.RefreshInterval
	}
	sy, err := backstage.NewSyncer(backstage.SyncerOptions{
		Source: src, DataDir: cfg.DataDir, Interval: interval, MaxStaleness: cfg.Catalog.MaxStaleness,
		Now: d.Now, Logger: log,
		Build: backstage.BuildOptions{
			Identity: backstage.IdentityOptions{UserMatch: cfg.Catalog.IdentityMapping},
			Routes:   backstage.RouteOptions{LifecycleEnvironments: cfg.Catalog.Environments},
		},
		OnUpdate: func(c *backstage.Catalog) {
			if err := eng.SetCatalog(c); err != nil {
				log.Error("catalog rejected by the policy engine; keeping the previous one", "revision", c.Revision(), "err", err)
				return
			}
			routes := configRoutes
			if *cfg.Catalog.Routes {
				routes = MergeRoutes(log, configRoutes, c.Routes(), defTransport, d.Upstream)
			}
			srv.SetRoutes(routes)
			routeHosts.set(routes)
			for _, p := range c.Problems() {
				log.Warn("catalog problem", "problem", fmt.Sprint(p))
			}
			log.Info("routes updated from the catalog", "catalog_revision", c.Revision(), "routes", len(routes))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	a.syncer = sy
	if err := sy.Init(ctx); err != nil {
		// Not fatal: /readyz says so and every request is denied until a
		// catalog arrives.
		log.Error("no catalog yet; denying every request until one loads", "err", err)
	}
	return a, nil
}

// Run starts the background loops (catalog refresh, policy and key watches)
// and serves on ln until ctx is done, then shuts down gracefully.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	applyGC(a.cfg.Server, a.getenv, a.log)
	go func() { _ = a.syncer.Run(ctx) }()
	go a.keyring.Watch(ctx, signer.DefaultWatchInterval)
	if a.cfg.Policy.Dir != "" && *a.cfg.Policy.Watch {
		go func() {
			_ = a.engine.Watch(ctx, time.Second, func(rev string, err error) {
				if err != nil {
					a.log.Error("policy change refused; the last good policy keeps serving", "err", err)
					return
				}
				a.log.Info("policy reloaded", "policy_revision", rev)
			})
		}()
	}
	if a.access != nil {
		go func() { _ = a.access.service.RunGrantSync(ctx, a.cfg.Access.SyncInterval, pushGrants(a.log, a.engine)) }()
		if a.access.webhook != nil {
			defer a.access.webhook.Close(context.WithoutCancel(ctx))
		}
	}
	go func() { // warm OIDC discovery so /readyz turns green without a login
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := a.auth.Ready(wctx); err != nil {
			a.log.Warn("OIDC discovery not done yet", "err", err)
		}
	}()

	s := a.cfg.Server
	hs := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    s.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		// Requests must outlive ctx: Shutdown lets in-flight ones finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() {
		if s.TLS != nil {
			errc <- hs.ServeTLS(ln, s.TLS.CertFile, s.TLS.KeyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	a.log.Info("backgate serving", "addr", ln.Addr().String(), "external_url", a.cfg.Server.ExternalURL,
		"policy_revision", a.engine.Revision(), "catalog_revision", a.engine.CatalogRevision())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "grace", s.ShutdownTimeout.String())
	sctx, scancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer scancel()
	err := hs.Shutdown(sctx)
	for _, c := range a.closers {
		_ = c.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// ready is /readyz: OIDC discovery done, keys and policy loaded, catalog fresh.
func (a *App) ready(ctx context.Context) error {
	var errs []error
	if err := a.auth.Ready(ctx); err != nil {
		errs = append(errs, fmt.Errorf("oidc: %w", err))
	}
	if err := a.engine.Ready(); err != nil {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	if a.syncer.Stale(a.now()) {
		st := a.syncer.Status(a.now())
		errs = append(errs, fmt.Errorf("catalog: stale (last success %s, last error %q)", st.LastSuccess.Format(time.RFC3339), st.LastError))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// status is the revisions /readyz shows.
func (a *App) status() string {
	st := a.syncer.Status(a.now())
	out := fmt.Sprintf("policy_revision: %s\npolicy_evaluator: %s\ncatalog_revision: %s\ncatalog_source: %s\ncatalog_last_success: %s\n",
		a.engine.Revision(), a.engine.Evaluator(), a.engine.CatalogRevision(), st.Source, st.LastSuccess.UTC().Format(time.RFC3339))
	if err := a.engine.LastError(); err != nil {
		// The last good policy keeps serving; say why the change was refused.
		out += fmt.Sprintf("policy_refused: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return out
}

// owners names who owns a service, for the 403 page.
func (a *App) owners(service string) []string {
	c := a.syncer.Current()
	if c == nil {
		return nil
	}
	if o, ok := c.Entity(service); ok && o.Owner != "" {
		return []string{o.Owner}
	}
	return nil
}

// staleGuard fails every decision closed while the catalog is stale.
type staleGuard struct{ a *App }

func (g staleGuard) Decide(ctx context.Context, in policy.Input) (policy.Decision, error) {
	now := in.Time // the request's arrival, read once by the proxy
	if now.IsZero() {
		now = g.a.now()
	}
	if g.a.syncer.Stale(now) {
		return policy.Decision{}, errors.New("catalog is stale past catalog.max_staleness")
	}
	return g.a.authz.Decide(ctx, in)
}

func KeyFiles(ks []config.KeyFile) []signer.KeyFile {
	var out []signer.KeyFile
	for _, k := range ks {
		out = append(out, signer.KeyFile{ID: k.ID, Path: k.File})
	}
	return out
}

// loadSessionKeys reads session.keys (one secret per line, newest first), or
// generates data_dir/session-keys on first start.
func loadSessionKeys(cfg *config.Config, e *Env) ([][]byte, error) {
	text, err := secretOrGenerated(cfg.Session.Keys, filepath.Join(cfg.DataDir, "session-keys"), e)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < 32 {
			return nil, fmt.Errorf("line %d: a session key needs at least 32 characters", i+1)
		}
		keys = append(keys, []byte(line))
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	return keys, nil
}

func CatalogSource(cfg *config.Config, e *Env, d Deps, log *slog.Logger) (backstage.Source, error) {
	if b := cfg.Catalog.Backstage; b != nil {
		tok, err := b.Token.Read(e.Getenv)
		if err != nil {
			return nil, fmt.Errorf("catalog.backstage.token: %w", err)
		}
		return &backstage.RESTSource{BaseURL: strings.TrimRight(b.URL, "/") + "/api/catalog", Token: tok,
			Client: d.HTTPClient, PageSize: b.PageSize, Timeout: b.Timeout, Now: d.Now, Logger: log}, nil
	}
	if len(cfg.Catalog.Files) > 0 {
		return &multiFileSource{files: cfg.Catalog.Files, now: d.Now}, nil
	}
	sub, err := fs.Sub(configs.Catalog, "catalog")
	if err != nil {
		return nil, err
	}
	return &backstage.FileSource{FS: sub, Name: "embedded:configs/catalog", Now: d.Now}, nil
}

// multiFileSource reads catalog files from several places on disk, each file
// with its directory as the root for its Location targets.
type multiFileSource struct {
	files []string
	now   func() time.Time
}

func (m *multiFileSource) Fetch(ctx context.Context) (*backstage.Snapshot, error) {
	var out *backstage.Snapshot
	for _, f := range m.files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		src := &backstage.FileSource{FS: os.DirFS(filepath.Dir(abs)), Roots: []string{filepath.Base(abs)}, Name: "file:" + abs, Now: m.now}
		s, err := src.Fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("catalog.files %s: %w", f, err)
		}
		if out == nil {
			out = s
			continue
		}
		out.Entities = append(out.Entities, s.Entities...)
		out.Problems = append(out.Problems, s.Problems...)
	}
	if out == nil {
		return nil, errors.New("catalog.files: none given")
	}
	return out, nil
}

// Signer is the identity-header signer (its JWKS is what apps verify with).
func (a *App) Signer() *signer.Signer { return a.signer }

// Keyring holds the signing keys (edge secrets for a verifier).
func (a *App) Keyring() *signer.Keyring { return a.keyring }

// Catalog is the current catalog, nil until one loaded.
func (a *App) Catalog() *backstage.Catalog { return a.syncer.Current() }
