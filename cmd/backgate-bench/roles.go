package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/backgate/backgate/cmd/internal/app"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/backgate/backgate/backstage"
	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/proxy"
	"github.com/backgate/backgate/proxy/signer"
)

// Header the upstream sets on every answer: "1" when the request carried
// both of backgate's signed headers, else "0". The load generator counts a
// backgate response without "1" as an error. Both proxies relay the header
// (the same bytes either way), so it costs them alike.
const signedMark = "X-Bench-Signed"

var signedYes, signedNo = []string{"1"}, []string{"0"} // never modified

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
			h[signedMark] = signedYes
		} else {
			h[signedMark] = signedNo
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

// buildBackgate builds backgate exactly as `backgate serve` does
// (cmd/internal/app), from the configuration defaults plus one route to the
// upstream, with the generated catalog as its catalog source.
func buildBackgate(ctx context.Context, o backgateOptions) (*app.App, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	cfg := benchConfig(o.External, o.Issuer, o.DataDir)
	cfg.OIDC.ClientSecret = config.Secret{Env: "BACKGATE_BENCH_CLIENT_SECRET"}
	cfg.Routes = []config.Route{{Name: "bench", Host: o.RouteHost, PathPrefix: "/", Upstream: o.Upstream.String(),
		Service: benchService, Environment: benchEnv}}
	cfg.Signing.UniqueTokens = o.UniqueTokens
	cfg.Policy.NoDecisionCache = o.NoDecisionCache
	if o.DecisionLog {
		cfg.Policy.DecisionLog = "stdout" // Env.Stdout below discards it
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench configuration: %w", err)
	}
	snap, err := genSnapshot(o.Catalog, o.Now())
	if err != nil {
		return nil, err
	}
	env := &app.Env{Stdout: io.Discard, Stderr: o.Log, Getenv: func(k string) string {
		if k == "BACKGATE_BENCH_CLIENT_SECRET" {
			return clientSecret
		}
		return ""
	}}
	a, err := app.Build(ctx, cfg, env, app.Deps{Now: o.Now, Source: backstage.StaticSource{Snapshot: snap, Now: o.Now}})
	if err != nil {
		return nil, err
	}
	if a.Catalog() == nil {
		return nil, fmt.Errorf("catalog: the generated catalog did not load")
	}
	return a, nil
}
