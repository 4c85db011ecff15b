package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/backgate/backgate/proxy/auth"
)

// TransportOptions tune the transport to BIG-IP.
type TransportOptions struct {
	CAFile                string // PEM bundle; empty: system roots
	ServerName            string // TLS server name; empty: the upstream's host
	InsecureSkipVerify    bool
	MaxIdleConnsPerHost   int           // default 256
	DialTimeout           time.Duration // default 5s
	ResponseHeaderTimeout time.Duration // default 60s
}

// NewTransport returns a transport tuned for a few busy upstreams: enough idle
// connections per host that a burst does not reconnect, HTTP/2 when the
// upstream offers it, bounded dial and header waits.
func NewTransport(o TransportOptions) *http.Transport {
	if o.MaxIdleConnsPerHost == 0 {
		o.MaxIdleConnsPerHost = 256
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ResponseHeaderTimeout == 0 {
		o.ResponseHeaderTimeout = 60 * time.Second
	}
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // never an environment proxy: BIG-IP is reached directly
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          o.MaxIdleConnsPerHost * 4,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			ServerName:         o.ServerName,
			InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // explicit, documented opt-in
		},
	}
}

// LoadTransport is NewTransport with the CA file read and checked.
func LoadTransport(o TransportOptions) (*http.Transport, error) {
	t := NewTransport(o)
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream CA %s: no PEM certificates found", o.CAFile)
		}
		t.TLSClientConfig.RootCAs = pool
	}
	return t, nil
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers instead of
// allocating one per request.
type bufferPool struct{ p *sync.Pool }

// NewBufferPool returns the copy-buffer pool backgate's ReverseProxy uses
// (exported so a benchmark baseline can use the same).
func NewBufferPool() httputil.BufferPool { return newBufferPool() }

func newBufferPool() bufferPool {
	return bufferPool{&sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b bufferPool) Get() []byte    { return *b.p.Get().(*[]byte) }
func (b bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// routeTransport sends each request through its route's transport.
type routeTransport struct{ def http.RoundTripper }

func (t routeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if rec := recordFrom(r.Context()); rec != nil && rec.route.Transport != nil {
		return rec.route.Transport.RoundTrip(r)
	}
	return t.def.RoundTrip(r)
}

// rewrite builds the outbound request. It never touches pr.In. ReverseProxy
// has already removed hop-by-hop and X-Forwarded-* headers from pr.Out.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	rec := recordFrom(pr.In.Context())
	pr.SetURL(rec.route.Upstream)
	pr.Out.Host = pr.In.Host // BIG-IP and the iRule see the external host name

	// Forwarding headers: believed only from configured proxies.
	trusted := s.trusted(rec.peer)
	if trusted {
		if xff := pr.In.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			pr.Out.Header["X-Forwarded-For"] = slices.Clone(xff)
		}
	}
	pr.SetXForwarded()
	if trusted {
		if p := pr.In.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			pr.Out.Header.Set("X-Forwarded-Proto", p)
		}
	}

	// Identity: nothing the client sent survives; then ours.
	s.opt.Strip(pr.Out.Header)
	for k, v := range rec.headers {
		pr.Out.Header[k] = v
	}
	stripCookies(pr.Out.Header, s.opt.CookieNames)
}

// modifyResponse keeps upstreams from setting backgate's own cookies.
func (s *Server) modifyResponse(resp *http.Response) error {
	sc := resp.Header.Values("Set-Cookie")
	if len(sc) == 0 {
		return nil
	}
	kept := sc[:0:0]
	for _, c := range sc {
		name, _, _ := strings.Cut(c, "=")
		if !ownCookie(strings.TrimSpace(name), s.opt.CookieNames) {
			kept = append(kept, c)
		}
	}
	if len(kept) != len(sc) {
		resp.Header["Set-Cookie"] = kept
	}
	return nil
}

func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	rec := recordFrom(r.Context())
	id, route := "", ""
	if rec != nil {
		id, route = rec.id, rec.route.Name
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; nobody is left to show a page to.
		s.log.Info("client closed request", "request_id", id, "route", route)
		w.WriteHeader(499)
		return
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		s.log.Warn("upstream timeout", "request_id", id, "route", route, "err", err)
		s.pages.Error(w, http.StatusGatewayTimeout, "The service took too long to answer",
			"backgate reached the service, but it did not answer in time. Try again shortly.", id)
		return
	}
	s.log.Warn("upstream error", "request_id", id, "route", route, "err", err)
	s.pages.Error(w, http.StatusBadGateway, "The service could not be reached",
		"backgate let you through, but the service behind it did not answer. Try again shortly; if it persists, tell the service's owners.", id)
}

func (s *Server) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range s.opt.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP is the address r came from: the peer, or, behind trusted
// proxies, the right-most X-Forwarded-For entry they did not add.
func (s *Server) ClientIP(r *http.Request) string {
	return addrString(s.clientAddr(peerAddr(r.RemoteAddr), r))
}

// clientAddr is the address the request came from (unmapped): the peer
// (r.RemoteAddr, parsed), or, behind trusted proxies, the right-most
// X-Forwarded-For entry they did not add. It is invalid when the peer is.
func (s *Server) clientAddr(peer netip.Addr, r *http.Request) netip.Addr {
	if !s.trusted(peer) {
		return peer.Unmap()
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break
		}
		if !s.trusted(a) {
			return a.Unmap()
		}
	}
	return peer.Unmap()
}

// addrString is a's text, or "" for the invalid address.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, _ := netip.ParseAddr(remote)
		return a
	}
	return ap.Addr()
}

func ownCookie(name string, own []string) bool {
	for _, o := range own {
		if name == o || strings.HasPrefix(name, o+"_") {
			return true
		}
	}
	return false
}

// stripCookies removes backgate's cookies from the Cookie header, keeping
// the application's own. A header without them is left as it is.
func stripCookies(h http.Header, own []string) {
	lines := h.Values("Cookie")
	if len(lines) == 0 || len(own) == 0 {
		return
	}
	var kept strings.Builder
	changed := false
	for _, line := range lines {
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			p := strings.TrimSpace(part)
			if p == "" {
				continue
			}
			if n := auth.CookieName(p); n != "" && ownCookie(n, own) {
				changed = true
				continue
			}
			if kept.Len() > 0 {
				kept.WriteString("; ")
			}
			kept.WriteString(p)
		}
	}
	if !changed {
		return
	}
	if kept.Len() == 0 {
		h.Del("Cookie")
		return
	}
	h.Set("Cookie", kept.String())
}
