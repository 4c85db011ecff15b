package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Route is one external host (and path prefix) that backgate serves.
type Route struct {
	Name        string
	Host        string // lower-case, no port
	PathPrefix  string // "/" or a clean prefix without trailing slash
	Service     string // Backstage entity ref
	Environment string
	Upstream    *url.URL
	// Transport reaches Upstream; nil means the server's default transport.
	Transport http.RoundTripper
}

// routeTable is an immutable lookup from host to its routes, longest prefix first.
type routeTable map[string][]*Route

func newRouteTable(routes []Route) routeTable {
	t := routeTable{}
	for i := range routes {
		r := routes[i]
		r.PathPrefix = strings.TrimSuffix(r.PathPrefix, "/")
		t[r.Host] = append(t[r.Host], &r)
	}
	for _, rs := range t {
		slices.SortStableFunc(rs, func(a, b *Route) int { return len(b.PathPrefix) - len(a.PathPrefix) })
	}
	return t
}

// match returns the route for host and path, or nil. A prefix matches whole
// path segments only: /api matches /api and /api/x, not /apix.
func (t routeTable) match(host, path string) *Route {
	for _, r := range t[host] {
		p := r.PathPrefix
		if p == "" || path == p || strings.HasPrefix(path, p) && path[len(p)] == '/' {
			return r
		}
	}
	return nil
}

func (t routeTable) hasHost(host string) bool { return len(t[host]) > 0 }
