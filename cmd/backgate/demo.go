package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/backgate/backgate/cmd/internal/app"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/demo"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// demoHostSuffix is the parent domain of every demo host. Browsers resolve
// *.localhost to loopback; a second label gives the session cookie a domain
// browsers accept for every demo host.
const demoHostSuffix = ".demo.localhost"

// demoCatalogUpstream is the upstream the embedded demo catalog gives its routes.
const demoCatalogUpstream = "http://127.0.0.1:9001"

type demoOptions struct {
	listen, idpListen, appListen string
	dataDir                      string
	logLevel                     string
	ready                        chan<- demoInfo // tests: told the addresses once serving
	now                          func() time.Time
	// Tests only: adjust the generated configuration and the provider.
	configure  func(*config.Config)
	idTokenTTL time.Duration
}

// demoInfo is what a running demo listens on.
type demoInfo struct {
	Proxy, IdP, App string // host:port
	External        string // backgate's external URL
	Routes          []string
}

func runDemo(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "demo", "demo [--listen 127.0.0.1:8080]")
	o := demoOptions{}
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "proxy address (loopback only)")
	fs.StringVar(&o.idpListen, "idp-listen", "127.0.0.1:9000", "demo OpenID Provider address (loopback only)")
	fs.StringVar(&o.appListen, "app-listen", "127.0.0.1:9001", "demo app (stands in for BIG-IP) address (loopback only)")
	fs.StringVar(&o.dataDir, "data-dir", "", "data directory (default: a new temporary directory)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return demoRun(ctx, e, o)
}

func loopbackListen(what, addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", what, addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%s %q: the demo listens on loopback addresses only", what, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ln, nil
}

func demoRun(ctx context.Context, e *env, o demoOptions) error {
	if o.now == nil {
		o.now = time.Now
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(e.Stderr, &slog.HandlerOptions{Level: lvl}))

	proxyLn, err := loopbackListen("--listen", o.listen)
	if err != nil {
		return err
	}
	defer proxyLn.Close()
	idpLn, err := loopbackListen("--idp-listen", o.idpListen)
	if err != nil {
		return err
	}
	defer idpLn.Close()
	appLn, err := loopbackListen("--app-listen", o.appListen)
	if err != nil {
		return err
	}
	defer appLn.Close()
	_, proxyPort, _ := net.SplitHostPort(proxyLn.Addr().String())

	if o.dataDir == "" {
		d, err := os.MkdirTemp("", "backgate-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dataDir = d
	}

	external := "http://backgate" + demoHostSuffix + ":" + proxyPort
	issuer := "http://" + idpLn.Addr().String()
	cfg := &config.Config{
		Server:  config.Server{Listen: proxyLn.Addr().String(), ExternalURL: external},
		DataDir: o.dataDir,
		OIDC:    config.OIDC{Issuer: issuer, ClientID: "backgate-demo", ClientSecret: config.Secret{Env: "BACKGATE_DEMO_CLIENT_SECRET"}},
		Session: config.Session{CookieDomain: strings.TrimPrefix(demoHostSuffix, "."), Insecure: true},
		Policy:  config.Policy{DecisionLog: ""},
		Log:     config.Log{Level: o.logLevel, Format: "text"},
	}
	if o.configure != nil {
		o.configure(cfg)
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	const clientSecret = "demo-client-secret-not-for-production"
	demoEnv := &env{Stdout: e.Stdout, Stderr: e.Stderr, Getenv: func(k string) string {
		if k == "BACKGATE_DEMO_CLIENT_SECRET" {
			return clientSecret
		}
		return e.Getenv(k)
	}}

	idp, err := demo.NewProvider(demo.ProviderOptions{
		Issuer: issuer,
		Clients: []demo.DemoClient{{ID: "backgate-demo", Secret: clientSecret,
			RedirectURIs:           []string{external + "/_backgate/callback"},
			PostLogoutRedirectURIs: []string{cfg.OIDC.LogoutURL}}},
		Logger:          log.With("component", "demo-idp"),
		Now:             o.now,
		IDTokenLifetime: o.idTokenTTL,
	})
	if err != nil {
		return fmt.Errorf("demo provider: %w", err)
	}
	idpSrv := &http.Server{Handler: idp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = idpSrv.Serve(idpLn) }()
	defer idpSrv.Close()

	// The demo catalog names http://127.0.0.1:9001 as every route's BIG-IP;
	// send those to the app this demo started, wherever it listens.
	appURL := "http://" + appLn.Addr().String()
	a, err := app.Build(ctx, cfg, demoEnv, app.Deps{Now: o.now, Upstream: func(u string) string {
		if u == demoCatalogUpstream {
			return appURL
		}
		return u
	}})
	if err != nil {
		return err
	}
	// The demo app stands in for BIG-IP and the real application: it checks
	// both signed headers with the proxy's own keys.
	app, err := demo.NewApp(demo.AppOptions{
		Name:     "demo app behind BIG-IP",
		JWKS:     func(context.Context) (jwk.Set, error) { return jwk.Parse(a.Signer().JWKS()) },
		EdgeKeys: a.Keyring().EdgeSecret,
		Issuer:   external,
		Now:      o.now,
		Logger:   log.With("component", "demo-app"),
	})
	if err != nil {
		return fmt.Errorf("demo app: %w", err)
	}
	appSrv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = appSrv.Serve(appLn) }()
	defer appSrv.Close()

	info := demoInfo{Proxy: proxyLn.Addr().String(), IdP: idpLn.Addr().String(), App: appLn.Addr().String(), External: external}
	if c := a.Catalog(); c != nil {
		for _, r := range c.Routes() {
			info.Routes = append(info.Routes, fmt.Sprintf("http://%s:%s%s  (%s, %s)", r.Host, proxyPort, strings.TrimSuffix(r.PathPrefix, "/"), r.Service, r.Environment))
		}
	}
	sort.Strings(info.Routes)
	printDemoBanner(e, info)
	if o.ready != nil {
		o.ready <- info
	}
	err = a.Run(ctx, proxyLn)
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func printDemoBanner(e *env, info demoInfo) {
	var b bytes.Buffer
	fmt.Fprintln(&b, "backgate demo is running (loopback only; Ctrl-C stops it).")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Open one of these in a browser (they resolve to 127.0.0.1):")
	for _, r := range info.Routes {
		fmt.Fprintln(&b, "  "+r)
	}
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Sign in as (the login page lists them too):")
	for _, u := range demo.DefaultUsers() {
		fmt.Fprintf(&b, "  %-6s password %-12s %s\n", u.Username, u.Password, u.About)
	}
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Demo OpenID Provider: http://%s   demo app (stands in for BIG-IP): http://%s\n", info.IdP, info.App)
	fmt.Fprintf(&b, "Sign out: %s/_backgate/logout   health: http://%s/readyz\n", info.External, info.Proxy)
	_, _ = e.Stdout.Write(b.Bytes())
}
