package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/backgate/backgate/backstage"
	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/proxy"
)

func transportOptions(u config.Upstream, t config.UpstreamTLS) proxy.TransportOptions {
	return proxy.TransportOptions{CAFile: t.CAFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify,
		MaxIdleConnsPerHost: u.MaxIdleConnsPerHost, DialTimeout: u.DialTimeout, ResponseHeaderTimeout: u.ResponseHeaderTimeout}
}

// ConfigRoutes turns validated config routes into proxy routes, with a
// transport of their own where they override upstream.tls.
func ConfigRoutes(cfg *config.Config) ([]proxy.Route, error) {
	var out []proxy.Route
	for i, r := range cfg.Routes {
		u, err := url.Parse(r.Upstream)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].upstream: %w", i, err)
		}
		pr := proxy.Route{Name: r.Name, Host: r.Host, PathPrefix: r.PathPrefix, Service: strings.ToLower(r.Service),
			Environment: r.Environment, Upstream: u}
		if r.TLS != nil {
			t, err := proxy.LoadTransport(transportOptions(cfg.Upstream, *r.TLS))
			if err != nil {
				return nil, fmt.Errorf("routes[%d].tls: %w", i, err)
			}
			pr.Transport = t
		}
		out = append(out, pr)
	}
	return out, nil
}

// MergeRoutes adds the catalog's annotated routes to the config routes. A
// config route wins over a catalog route for the same host and prefix; an
// invalid catalog route is logged and skipped.
func MergeRoutes(log *slog.Logger, configRoutes []proxy.Route, annotated []backstage.AnnotatedRoute, def http.RoundTripper, rewrite func(string) string) []proxy.Route {
	out := append([]proxy.Route(nil), configRoutes...)
	taken := map[string]string{}
	for _, r := range configRoutes {
		taken[r.Host+" "+strings.TrimSuffix(r.PathPrefix, "/")] = r.Name
	}
	for _, ar := range annotated {
		up := ar.Upstream
		if rewrite != nil {
			up = rewrite(up)
		}
		cr := config.Route{Name: ar.Name, Host: ar.Host, PathPrefix: ar.PathPrefix, Upstream: up,
			Service: ar.Service, Environment: ar.Environment}
		if cr.PathPrefix == "" {
			cr.PathPrefix = "/"
		}
		if err := config.ValidateRoute(cr); err != nil {
			log.Warn("catalog route skipped", "route", ar.Name, "service", ar.Service, "err", err.Error())
			continue
		}
		key := cr.Host + " " + strings.TrimSuffix(cr.PathPrefix, "/")
		if by, dup := taken[key]; dup {
			log.Warn("catalog route skipped: host already routed", "route", ar.Name, "host", cr.Host, "by", by)
			continue
		}
		taken[key] = ar.Name
		u, _ := url.Parse(cr.Upstream)
		out = append(out, proxy.Route{Name: cr.Name, Host: cr.Host, PathPrefix: cr.PathPrefix, Service: cr.Service,
			Environment: cr.Environment, Upstream: u, Transport: def})
	}
	return out
}

// hostSet is the set of hosts a post-login return URL may point at: the
// route hosts and backgate's own.
type hostSet struct {
	p atomic.Pointer[map[string]bool]
}

func (h *hostSet) set(routes []proxy.Route) {
	m := map[string]bool{}
	for _, r := range routes {
		m[r.Host] = true
	}
	h.p.Store(&m)
}

// allowed reports whether hostport (as auth passes it: lower-case, with a
// port only when not the scheme's default) is a route host or backgate's own
// host; a port must be backgate's external port.
func (h *hostSet) allowed(hostport string, external *url.URL) bool {
	host, port := hostport, ""
	if hh, pp, err := net.SplitHostPort(hostport); err == nil {
		host, port = hh, pp
	}
	if port != "" && port != external.Port() {
		return false
	}
	if host == strings.ToLower(external.Hostname()) {
		return true
	}
	m := h.p.Load()
	return m != nil && (*m)[host]
}
