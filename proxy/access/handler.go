package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	acc "github.com/backgate/backgate/access"
	"github.com/backgate/backgate/proxy"
)

// DefaultBasePath is where the pages and the API live when Options.BasePath
// is empty.
const DefaultBasePath = "/_backgate/access"

// Service is what the handler needs from *access.Service.
type Service interface {
	// Request asks for access; the bool reports that an existing pending
	// request of the same person for the same service and environment was
	// returned instead of a new one.
	Request(ctx context.Context, actor acc.Actor, service, env string, d time.Duration, reason string) (acc.Request, bool, error)
	Approve(ctx context.Context, actor acc.Actor, id string) (acc.Request, error)
	Deny(ctx context.Context, actor acc.Actor, id, reason string) (acc.Request, error)
	Revoke(ctx context.Context, actor acc.Actor, id, reason string) (acc.Request, error)
	Cancel(ctx context.Context, actor acc.Actor, id string) (acc.Request, error)
	Get(ctx context.Context, id string) (acc.Request, error)
	Mine(ctx context.Context, actor acc.Actor) ([]acc.Request, error)
	ToDecide(ctx context.Context, actor acc.Actor) ([]acc.Request, error)
	MaxDuration(ctx context.Context, service, env string) (time.Duration, error)
}

// *access.Service is what the integrator plugs in.
var _ Service = (*acc.Service)(nil)

// Options configure the handler. Service, Identify, ResolveUser, CSRFKey and
// Login are required.
type Options struct {
	Service Service
	// Identify is the proxy's session lookup (proxy.Sessions.Identify); it
	// returns proxy.ErrNotLoggedIn when there is no valid session.
	Identify func(w http.ResponseWriter, r *http.Request) (proxy.Identity, error)
	// ResolveUser maps an identity to its Backstage user ref. For delegated
	// service-token calls it receives an Identity with only Email set.
	ResolveUser func(id proxy.Identity) (userRef string, ok bool)
	// Login starts a login returning to returnTo (a path on the same host).
	Login func(w http.ResponseWriter, r *http.Request, returnTo string)
	// ServiceTokens maps a token's name to its secret (at least 32 bytes).
	ServiceTokens map[string]string
	// Delegating names the tokens that may act on behalf of users
	// ("on_behalf_of"); the others may only read a request by id.
	Delegating []string
	// CSRFKey keys the CSRF tokens (at least 32 bytes; keep it secret and
	// shared between replicas).
	CSRFKey []byte
	// CSRFTTL is how long a CSRF token (an open form) stays valid; 0: 12h.
	CSRFTTL time.Duration
	// Owners returns who owns a service, shown on the request form; nil
	// shows none.
	Owners func(service string) []string
	// AllowReturnHost reports whether the request form may link back to an
	// absolute URL on host (lower-case, ":port" only when not default).
	// nil: only the host the form is served on. Paths are always allowed.
	AllowReturnHost func(host string) bool
	// ClientAddr returns the client's address for the audit; nil: the host
	// part of r.RemoteAddr. Pass the proxy's trusted-proxy-aware lookup.
	ClientAddr func(r *http.Request) string
	Logger     *slog.Logger // nil: discard
	Now        func() time.Time
	// BasePath is the path prefix of every page and API endpoint; "" is
	// DefaultBasePath. It must start with "/".
	BasePath string
}

// Handler serves the temporary-access pages and JSON API under BasePath.
type Handler struct {
	opt    Options
	base   string
	log    *slog.Logger
	now    func() time.Time
	csrf   csrfSigner
	tokens []serviceToken
	tmpl   *renderer
}

type serviceToken struct {
	name       string
	sum        [32]byte // SHA-256 of the secret: fixed length for constant-time comparison
	delegating bool
}

// minSecretLen bounds the CSRF key and service tokens from below.
const minSecretLen = 32

// NewHandler checks opts and builds the handler.
func NewHandler(opts Options) (*Handler, error) {
	var missing []string
	if opts.Service == nil {
		missing = append(missing, "Service")
	}
	if opts.Identify == nil {
		missing = append(missing, "Identify")
	}
	if opts.ResolveUser == nil {
		missing = append(missing, "ResolveUser")
	}
	if opts.Login == nil {
		missing = append(missing, "Login")
	}
	if len(opts.CSRFKey) == 0 {
		missing = append(missing, "CSRFKey")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("proxy/access: missing options: %s", strings.Join(missing, ", "))
	}
	if len(opts.CSRFKey) < minSecretLen {
		return nil, fmt.Errorf("proxy/access: CSRFKey is %d bytes, need at least %d", len(opts.CSRFKey), minSecretLen)
	}
	base := opts.BasePath
	if base == "" {
		base = DefaultBasePath
	}
	base = strings.TrimRight(base, "/")
	if !strings.HasPrefix(base, "/") || strings.HasPrefix(base, "//") || strings.ContainsAny(base, "?#%\\ ") {
		return nil, fmt.Errorf("proxy/access: BasePath %q must be an absolute path without query or escapes", opts.BasePath)
	}
	h := &Handler{opt: opts, base: base, log: opts.Logger, now: opts.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	ttl := opts.CSRFTTL
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	h.csrf = csrfSigner{key: slices.Clone(opts.CSRFKey), ttl: ttl}
	for _, name := range opts.Delegating {
		if _, ok := opts.ServiceTokens[name]; !ok {
			return nil, fmt.Errorf("proxy/access: Delegating names token %q, which is not in ServiceTokens", name)
		}
	}
	names := make([]string, 0, len(opts.ServiceTokens))
	for name := range opts.ServiceTokens {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		secret := opts.ServiceTokens[name]
		if name == "" || strings.ContainsAny(name, " \t\r\n") {
			return nil, fmt.Errorf("proxy/access: service token name %q is empty or has spaces", name)
		}
		if len(secret) < minSecretLen {
			return nil, fmt.Errorf("proxy/access: service token %q is %d bytes, need at least %d", name, len(secret), minSecretLen)
		}
		h.tokens = append(h.tokens, serviceToken{name: name, sum: sha256.Sum256([]byte(secret)),
			delegating: slices.Contains(opts.Delegating, name)})
	}
	t, err := newRenderer(h.log)
	if err != nil {
		return nil, fmt.Errorf("proxy/access: %w", err)
	}
	h.tmpl = t
	return h, nil
}

// RequestURL is the link to the request form for service in env, returning
// to returnTo afterwards; base "" is DefaultBasePath. Use it for
// proxy.Options.AccessRequestURL.
func RequestURL(base, service, env, returnTo string) string {
	if base == "" {
		base = DefaultBasePath
	}
	q := url.Values{}
	q.Set("service", service)
	if env != "" {
		q.Set("env", env)
	}
	if returnTo != "" {
		q.Set("return", returnTo)
	}
	return strings.TrimRight(base, "/") + "/request?" + q.Encode()
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := newID()
	path := r.URL.Path
	if path != h.base && !strings.HasPrefix(path, h.base+"/") {
		h.tmpl.errorPage(w, http.StatusNotFound, "Not found", "There is nothing at this address.", rid)
		return
	}
	rest := strings.TrimPrefix(path, h.base)
	if rest == "/api" || strings.HasPrefix(rest, "/api/") {
		h.serveAPI(w, r, strings.TrimPrefix(rest, "/api"), rid)
		return
	}
	h.servePages(w, r, rest, rid)
}

// caller is who makes a call.
type caller struct {
	id      proxy.Identity // session callers only
	session bool
	token   *serviceToken // service-token callers only
	actor   acc.Actor     // set once the caller acts as a user
}

// matchToken returns the service token whose secret is secret, comparing
// every configured token in constant time.
func (h *Handler) matchToken(secret string) *serviceToken {
	sum := sha256.Sum256([]byte(secret))
	var found *serviceToken
	for i := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], h.tokens[i].sum[:]) == 1 {
			found = &h.tokens[i]
		}
	}
	return found
}

// actorFor builds the actor of a session identity.
func (h *Handler) actorFor(r *http.Request, id proxy.Identity, via string) (acc.Actor, bool) {
	ref, ok := h.opt.ResolveUser(id)
	if !ok || ref == "" {
		return acc.Actor{}, false
	}
	return acc.Actor{UserRef: ref, Email: id.Email, Groups: slices.Clone(id.Groups), Address: h.clientAddr(r), Via: via}, true
}

func (h *Handler) clientAddr(r *http.Request) string {
	if h.opt.ClientAddr != nil {
		return h.opt.ClientAddr(r)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// sameOrigin refuses requests a browser marks as cross-site or
// cross-origin: Sec-Fetch-Site must be same-origin (or none: typed by the
// person), Origin must name this host. Absent headers pass (old clients,
// non-browsers); the CSRF token is the check that always applies.
func sameOrigin(r *http.Request) error {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return fmt.Errorf("header Sec-Fetch-Site is %q", s)
	}
	if o := r.Header.Get("Origin"); o != "" {
		return proxy.CheckOrigin(o, r.Host)
	}
	return nil
}

// checkCSRF verifies a cookie-authenticated state change.
func (h *Handler) checkCSRF(r *http.Request, id proxy.Identity, formToken string) error {
	if err := sameOrigin(r); err != nil {
		return err
	}
	tok := r.Header.Get("X-CSRF-Token")
	if tok == "" {
		tok = formToken
	}
	if tok == "" {
		return errors.New("no CSRF token")
	}
	return h.csrf.verify(tok, id.Issuer, id.Subject, h.now())
}

// validID accepts request ids of URL-safe characters only.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// errStatus maps the Service's sentinel errors to an HTTP status, an API
// code and a message safe to show. ok is false for internal errors.
func errStatus(err error) (status int, code, msg string, ok bool) {
	switch {
	case errors.Is(err, acc.ErrInvalid), errors.Is(err, acc.ErrDurationTooLong):
		// These name the bad field or value; the sentinel convention makes
		// their text safe to show.
		return http.StatusBadRequest, "invalid", err.Error(), true
	case errors.Is(err, acc.ErrSelfApproval):
		return http.StatusForbidden, "forbidden", acc.ErrSelfApproval.Error(), true
	case errors.Is(err, acc.ErrUnknownUser):
		return http.StatusForbidden, "forbidden", acc.ErrUnknownUser.Error(), true
	case errors.Is(err, acc.ErrForbidden):
		return http.StatusForbidden, "forbidden", acc.ErrForbidden.Error(), true
	case errors.Is(err, acc.ErrNotFound):
		return http.StatusNotFound, "not_found", acc.ErrNotFound.Error(), true
	case errors.Is(err, acc.ErrNotPending):
		return http.StatusConflict, "conflict", acc.ErrNotPending.Error(), true
	case errors.Is(err, acc.ErrNotActive):
		return http.StatusConflict, "conflict", acc.ErrNotActive.Error(), true
	case errors.Is(err, acc.ErrConflict):
		return http.StatusConflict, "conflict", "the request changed meanwhile; reload and try again", true
	}
	return http.StatusInternalServerError, "internal", "", false
}

// involved reports whether user asked for, approved, decided or revoked req.
func involved(user string, req acc.Request) bool {
	return req.Requester == user || req.DecidedBy == user || req.RevokedBy == user ||
		slices.ContainsFunc(req.Approvals, func(a acc.Approval) bool { return a.By == user })
}

// visible reports whether actor may see req: they are involved in it, or it
// is among the requests they may decide.
func (h *Handler) visible(ctx context.Context, actor acc.Actor, req acc.Request) (bool, error) {
	if involved(actor.UserRef, req) {
		return true, nil
	}
	list, err := h.opt.Service.ToDecide(ctx, actor)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(list, func(x acc.Request) bool { return x.ID == req.ID }), nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
