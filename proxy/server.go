package proxy

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/backgate/backgate/policy"
	"github.com/backgate/backgate/proxy/pages"
)

// Identity is the logged-in person, as the session holds it.
type Identity struct {
	Subject  string
	Issuer   string
	Email    string
	Name     string
	Username string
	Groups   []string
	// Expiry is when the session ends; signed headers never outlive it.
	Expiry time.Time
}

// ErrNotLoggedIn is returned by Sessions.Identify when the request carries no
// valid session (none, tampered, expired, ...).
var ErrNotLoggedIn = errors.New("not logged in")

// Sessions logs people in and out. Implementations are safe for concurrent use.
type Sessions interface {
	// Identify returns the session's identity, refreshing or bumping the
	// session through w when due. It needs no network for a valid session.
	// at is when the request arrived (zero: the implementation's clock).
	Identify(w http.ResponseWriter, r *http.Request, at time.Time) (Identity, error)
	// Login starts a login that returns to returnTo.
	Login(w http.ResponseWriter, r *http.Request, returnTo string)
	Callback(w http.ResponseWriter, r *http.Request)
	Logout(w http.ResponseWriter, r *http.Request)
}

// SignRequest is what the signed identity headers say.
type SignRequest struct {
	Host        string
	Identity    Identity
	UserRef     string
	Service     string
	Environment string
	NotAfter    time.Time
	At          time.Time // the request's time (when it arrived)
}

// HeaderSigner mints the signed identity headers for an allowed request.
type HeaderSigner interface {
	// SignHeaders returns the signed headers for req. The header may be
	// shared with other requests (minted headers are reused): the caller
	// copies its entries and never modifies it or its values.
	SignHeaders(req SignRequest) (http.Header, error)
}

// HeaderStripper removes every client-supplied copy of backgate's headers.
type HeaderStripper func(h http.Header)

// Options configure a Server. Zero values are documented per field.
type Options struct {
	// ExternalURL is backgate's own URL (required); its host serves the
	// login callback and the health endpoints.
	ExternalURL *url.URL
	Routes      []Route
	Sessions    Sessions          // required
	Authorizer  policy.Authorizer // required
	Signer      HeaderSigner      // required
	Strip       HeaderStripper    // required
	// JWKS serves the assertion JWT's public keys; nil serves 404.
	JWKS http.Handler
	// Transport is the default transport to upstreams.
	Transport http.RoundTripper
	// TrustedProxies are the peers whose X-Forwarded-For/-Proto/-Host are
	// believed. Empty: none, backgate is the edge.
	TrustedProxies []netip.Prefix
	// CookieNames are cookies backgate owns: they are removed from requests
	// to upstreams, and upstreams may not set them.
	CookieNames []string
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func(ctx context.Context) error
	// Status adds lines to /readyz (e.g. policy and catalog revisions); nil adds none.
	Status func() string
	// Owners returns who owns a service, for the 403 page; nil shows none.
	Owners func(service string) []string
	// AccessRequestURL returns the link the 403 page offers; nil offers none.
	AccessRequestURL func(r *http.Request, rt *Route) string
	// Access serves /_backgate/access/... on every host (temporary access
	// pages and API); nil serves 404 there.
	Access http.Handler
	Pages  *pages.Renderer // nil: built-in
	Logger *slog.Logger    // nil: discard
	// AccessLog, when set, receives the access records (one per request)
	// encoded directly as JSON lines in the layout of slog's JSONHandler
	// (time, level, msg, then the fields), instead of through Logger: the
	// record is on every request's path and the direct encoder costs a
	// fraction of slog's. Give it the writer of a JSON Logger at level info
	// or below, so both kinds of line look alike. It is written from many
	// goroutines, one whole line per Write, without a lock: it must take
	// that (a file such as stderr does).
	AccessLog io.Writer
	Now       func() time.Time
}

// Server is the proxy's http.Handler.
type Server struct {
	opt    Options
	routes atomic.Pointer[routeTable]
	rp     *httputil.ReverseProxy
	pages  *pages.Renderer
	log    *slog.Logger
	now    func() time.Time
}

// New checks opts and builds a Server.
func New(opts Options) (*Server, error) {
	var missing []string
	if opts.ExternalURL == nil {
		missing = append(missing, "ExternalURL")
	}
	if opts.Sessions == nil {
		missing = append(missing, "Sessions")
	}
	if opts.Authorizer == nil {
		missing = append(missing, "Authorizer")
	}
	if opts.Signer == nil {
		missing = append(missing, "Signer")
	}
	if opts.Strip == nil {
		missing = append(missing, "Strip")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("proxy: missing options: %s", strings.Join(missing, ", "))
	}
	s := &Server{opt: opts, log: opts.Logger, now: opts.Now, pages: opts.Pages}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.pages == nil {
		p, err := pages.New(s.log)
		if err != nil {
			return nil, err
		}
		s.pages = p
	}
	if s.opt.Transport == nil {
		s.opt.Transport = NewTransport(TransportOptions{})
	}
	s.SetRoutes(opts.Routes)
	s.rp = &httputil.ReverseProxy{
		Rewrite:   s.rewrite,
		Transport: routeTransport{def: s.opt.Transport},
		// FlushInterval 0: ReverseProxy still flushes at once for
		// text/event-stream and for responses without a Content-Length
		// (streams, long polls); buffered responses are not flushed per write.
		BufferPool:     newBufferPool(),
		ErrorHandler:   s.upstreamError,
		ModifyResponse: s.modifyResponse,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// SetRoutes replaces the routing table atomically; requests in flight keep
// the route they matched.
func (s *Server) SetRoutes(routes []Route) {
	t := newRouteTable(routes)
	s.routes.Store(&t)
}

type ctxKey struct{}

// recordFrom returns the record of the request being forwarded: Rewrite
// and the transport find the route, the signed headers and the peer there.
func recordFrom(ctx context.Context) *record { rec, _ := ctx.Value(ctxKey{}).(*record); return rec }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Host and peer are parsed once: routing, forwarding and the access
	// record all need them.
	rec := &record{ResponseWriter: w, start: s.now(), id: newID(), host: hostOnly(r.Host), peer: peerAddr(r.RemoteAddr)}
	defer s.logAccess(rec, r)
	s.serve(rec, r)
}

func (s *Server) serve(w *record, r *http.Request) {
	host := w.host
	path := r.URL.Path
	if strings.HasPrefix(path, "/_backgate/") {
		s.serveInternal(w, r, strings.TrimPrefix(path, "/_backgate"))
		return
	}
	table := *s.routes.Load()
	if !table.hasHost(host) {
		s.serveOwnHost(w, r)
		return
	}
	if escaped := r.URL.EscapedPath(); checkPath(escaped) != nil || r.URL.RawPath != "" && r.URL.RawPath != escaped {
		s.log.Info("refused request path", "request_id", w.id, "host", host, "reason", "non-canonical path")
		s.pages.Error(w, http.StatusBadRequest, "Bad request", "The address has an unusual encoding that backgate does not forward.", w.id)
		return
	}
	rt := table.match(host, path)
	if rt == nil {
		s.pages.Error(w, http.StatusNotFound, "Not found", "No service is configured at this address.", w.id)
		return
	}
	w.route = rt

	id, err := s.opt.Sessions.Identify(w, r, w.start)
	if err != nil {
		if !errors.Is(err, ErrNotLoggedIn) {
			s.log.Warn("session", "request_id", w.id, "err", err)
		}
		s.loginRequired(w, r)
		return
	}
	w.user = id.Email
	if w.user == "" {
		w.user = id.Subject
	}

	in := policy.Input{
		User: policy.User{Subject: id.Subject, Issuer: id.Issuer, Email: id.Email, Name: id.Name,
			Username: id.Username, Groups: id.Groups},
		Request: policy.Request{Method: r.Method, Host: host, Path: path},
		Route: policy.Route{Name: rt.Name, Host: rt.Host, PathPrefix: rt.PathPrefix, Service: rt.Service,
			Environment: rt.Environment},
		Time: w.start,
	}
	w.dec, err = s.decide(r.Context(), in)
	w.decided = true
	d := &w.dec
	if err != nil {
		s.log.Error("policy decision failed; denying", "request_id", w.id, "route", rt.Name, "err", err)
		s.pages.Error(w, http.StatusServiceUnavailable, "Access check unavailable",
			"backgate could not check your access right now, so it did not let the request through. Try again in a minute.", w.id)
		return
	}
	if !d.Allow {
		s.denied(w, r, rt)
		return
	}

	notAfter := id.Expiry
	if !d.GrantExpiry.IsZero() && (notAfter.IsZero() || d.GrantExpiry.Before(notAfter)) {
		notAfter = d.GrantExpiry
	}
	h, err := s.opt.Signer.SignHeaders(SignRequest{Host: rt.Host, Identity: id, UserRef: d.UserRef,
		Service: rt.Service, Environment: rt.Environment, NotAfter: notAfter, At: w.start})
	if err != nil {
		s.log.Error("sign identity headers", "request_id", w.id, "route", rt.Name, "err", err)
		s.pages.Error(w, http.StatusInternalServerError, "Internal error", "backgate could not sign your identity for this request.", w.id)
		return
	}
	w.headers = h
	s.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, w)))
}

// decide calls the authorizer, turning a panic into an error: fail closed.
func (s *Server) decide(ctx context.Context, in policy.Input) (d policy.Decision, err error) {
	defer func() {
		if p := recover(); p != nil {
			d, err = policy.Decision{}, fmt.Errorf("authorizer panicked: %v", p)
		}
	}()
	return s.opt.Authorizer.Decide(ctx, in)
}

func (s *Server) loginRequired(w *record, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && acceptsHTML(r) {
		s.opt.Sessions.Login(w, r, s.requestURL(r))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": "login required", "request_id": w.id})
}

func (s *Server) denied(w *record, r *http.Request, rt *Route) {
	p := pages.Page{Status: http.StatusForbidden, Title: "Access denied", User: w.user, Host: rt.Host,
		Service: rt.Service, Env: rt.Environment, RequestID: w.id, LogoutURL: "/_backgate/logout"}
	if s.opt.Owners != nil {
		p.Owners = s.opt.Owners(rt.Service)
	}
	if s.opt.AccessRequestURL != nil {
		if u := s.opt.AccessRequestURL(r, rt); u != "" {
			p.ActionURL, p.ActionText = u, "Request temporary access"
		}
	}
	s.pages.Render(w, "denied", p)
}

// logoutByUser reports whether a logout request is the person's own doing:
// the browser says it comes from this origin, or from the person typing or
// bookmarking the address (Sec-Fetch-Site: none); without fetch metadata,
// only a POST whose Origin is this host counts. Logout changes state, so a
// cross-site link, image or form must not trigger it.
func logoutByUser(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return r.Method == http.MethodGet || r.Method == http.MethodPost
	case "":
		if r.Method != http.MethodPost {
			return false
		}
		o := r.Header.Get("Origin")
		return o != "" && CheckOrigin(o, r.Host) == nil
	}
	return false // cross-site, same-site (another host under the same domain)
}

// serveInternal handles /_backgate/... on any host.
func (s *Server) serveInternal(w *record, r *http.Request, path string) {
	switch path {
	case "/callback":
		s.opt.Sessions.Callback(w, r)
	case "/logout":
		if !logoutByUser(r) {
			// A link or form from another site (or a client that says
			// nothing of where the request comes from) cannot sign anyone
			// out: the person confirms with a same-origin POST.
			s.pages.Render(w, "logout", pages.Page{Title: "Sign out", RequestID: w.id,
				ActionURL: "/_backgate/logout", ActionText: "Sign out"})
			return
		}
		s.opt.Sessions.Logout(w, r)
	case "/logged-out":
		s.pages.Render(w, "loggedout", pages.Page{Title: "Signed out", RequestID: w.id})
	case "/jwks.json":
		s.serveJWKS(w, r)
	case "/healthz":
		s.healthz(w, r)
	case "/readyz":
		s.readyz(w, r)
	default:
		if s.opt.Access != nil && (path == "/access" || strings.HasPrefix(path, "/access/")) {
			s.opt.Access.ServeHTTP(w, r)
			return
		}
		s.pages.Error(w, http.StatusNotFound, "Not found", "There is nothing at this address.", w.id)
	}
}

// serveOwnHost handles hosts that are not routes: backgate's own endpoints.
func (s *Server) serveOwnHost(w *record, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		s.healthz(w, r)
	case "/readyz":
		s.readyz(w, r)
	case "/.well-known/backgate/jwks.json":
		s.serveJWKS(w, r)
	default:
		s.pages.Error(w, http.StatusNotFound, "Not found", "No service is configured at this address.", w.id)
	}
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if s.opt.JWKS == nil {
		http.NotFound(w, r)
		return
	}
	s.opt.JWKS.ServeHTTP(w, r)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	status := ""
	if s.opt.Status != nil {
		status = s.opt.Status()
	}
	if s.opt.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.opt.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n%s", err, status)
			return
		}
	}
	_, _ = fmt.Fprintf(w, "ready\n%s", status)
}

func acceptsHTML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return a == "" || strings.Contains(a, "text/html") || strings.Contains(a, "*/*") && r.Header.Get("Sec-Fetch-Mode") == "navigate"
}

// requestURL reconstructs the URL the person asked for, to return to after
// login. Behind a trusted TLS-terminating proxy its X-Forwarded-Proto counts.
func (s *Server) requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || s.trusted(peerAddr(r.RemoteAddr)) && r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// newID is a request id: 96 random bits, base64url. It only names the
// request in logs and on error pages (it guards nothing), so it comes from
// the runtime's fast generator (ChaCha8, seeded by the OS) rather than a
// system call.
func newID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], mrand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], mrand.Uint32())
	var out [16]byte
	base64.RawURLEncoding.Encode(out[:], b[:])
	return string(out[:])
}
