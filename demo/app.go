package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/backgate/backgate/proxy/edgetoken"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// AssertionHeader carries backgate's signed identity assertion (a JWT) to
// the upstream.
const AssertionHeader = "X-Backgate-Assertion"

// Defaults of the demo app.
const (
	DefaultSkew           = 30 * time.Second
	DefaultStreamInterval = 100 * time.Millisecond
	DefaultJWKSTTL        = 5 * time.Minute
	maxAssertionLen       = 16 << 10
	maxStreamLines        = 1000
)

// Reasons a check fails without a verification error.
var (
	ErrMissing       = errors.New("header missing")
	ErrDuplicate     = errors.New("header sent more than once")
	ErrNotConfigured = errors.New("no keys configured to verify it")
)

// AppOptions configure a demo upstream app.
type AppOptions struct {
	// Name is shown on every page, e.g. "petstore". Required.
	Name string
	// JWKSURL is where backgate publishes the keys that sign assertions; the
	// app fetches it with HTTPClient and caches it for DefaultJWKSTTL,
	// fetching again at most every 10 s when a token does not verify.
	JWKSURL string
	// JWKS returns the assertion keys directly; when set, JWKSURL is unused.
	// If neither is set, assertions never verify.
	JWKS func(ctx context.Context) (jwk.Set, error)
	// HTTPClient fetches JWKSURL; nil means a client with a 5 s timeout.
	HTTPClient *http.Client
	// EdgeKeys looks up edge token secrets by key id; nil means edge tokens
	// never verify.
	EdgeKeys func(kid string) ([]byte, bool)
	// Issuer, when set, is the required "iss" of assertions.
	Issuer string
	// Skew is the clock skew allowed for both tokens; zero means DefaultSkew.
	Skew time.Duration
	// Now is the clock for token times and the JWKS cache; nil means time.Now.
	Now func() time.Time
	// Logger gets one record per request (never token values); nil discards.
	Logger *slog.Logger
	// StreamInterval is the pause between /stream lines; zero means
	// DefaultStreamInterval.
	StreamInterval time.Duration
}

// Report is what the app shows for a request, as HTML or as JSON.
type Report struct {
	App        string          `json:"app"`
	Method     string          `json:"method"`
	Host       string          `json:"host"`
	Path       string          `json:"path"`
	Query      string          `json:"query,omitempty"`
	RemoteAddr string          `json:"remote_addr"`
	Headers    []HeaderView    `json:"headers"`
	Edge       EdgeResult      `json:"edge"`
	Assertion  AssertionResult `json:"assertion"`
	// Verified is true only when both the edge token and the assertion verify.
	Verified bool `json:"verified"`
	// Reason says why Verified is false.
	Reason string `json:"reason,omitempty"`
	// Identity is the verified identity from the assertion, completed with
	// the edge token's fields; nil unless Verified.
	Identity *Identity `json:"identity,omitempty"`
}

// HeaderView is one received header; values that carry credentials are
// masked to their first few characters.
type HeaderView struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Masked bool   `json:"masked,omitempty"`
}

// Check is the outcome of verifying one token.
type Check struct {
	Present  bool   `json:"present"`
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
}

// EdgeResult is the edge token check and, when verified, its claims.
type EdgeResult struct {
	Check
	Claims *EdgeClaims `json:"claims,omitempty"`
}

// EdgeClaims are the fields of a verified edge token.
type EdgeClaims struct {
	KeyID       string    `json:"kid"`
	Host        string    `json:"host"`
	User        string    `json:"user"`
	Service     string    `json:"service"`
	Environment string    `json:"environment"`
	IssuedAt    time.Time `json:"iat"`
	Expiry      time.Time `json:"exp"`
}

// AssertionResult is the assertion check and, when verified, all its claims.
type AssertionResult struct {
	Check
	Claims map[string]any `json:"claims,omitempty"`
}

// Identity is who the request is for, as backgate asserted it.
type Identity struct {
	Subject     string    `json:"sub"`
	Email       string    `json:"email,omitempty"`
	Name        string    `json:"name,omitempty"`
	Username    string    `json:"preferred_username,omitempty"`
	Groups      []string  `json:"groups,omitempty"`
	UserRef     string    `json:"user_ref,omitempty"`
	Service     string    `json:"service,omitempty"`
	Environment string    `json:"environment,omitempty"`
	Expiry      time.Time `json:"exp"`
}

// Claim names read from the assertion for Identity. The first present name
// of each list wins, so the app follows whichever spelling backgate uses.
var (
	userRefClaims = []string{"backstage_user", "user_ref", "userRef", "backstage_user_ref"}
	serviceClaims = []string{"backstage_service", "service", "service_ref", "entity_ref"}
	envClaims     = []string{"environment", "env"}
)

type app struct {
	opts   AppOptions
	edge   edgetoken.Verifier
	keys   *keyCache
	logger *slog.Logger
	now    func() time.Time
	tmpl   *template.Template
}

// NewApp returns a demo upstream app standing in for "BIG-IP + the real
// app". For every path except /ws and /stream it shows a Report of the
// request: HTML, or JSON with ?format=json or Accept: application/json. The
// status is 200 when both identity tokens verify and 403 otherwise, as
// BIG-IP would refuse the request.
//
// /ws is a WebSocket echo (text messages back as sent) and /stream?n=5
// writes and flushes n lines, one every StreamInterval; neither checks the
// identity headers.
func NewApp(opts AppOptions) (http.Handler, error) {
	if strings.TrimSpace(opts.Name) == "" {
		return nil, fmt.Errorf("%w: option Name is required", ErrInvalidOptions)
	}
	if opts.JWKS == nil && opts.JWKSURL != "" {
		if err := checkAbsoluteURL(opts.JWKSURL); err != nil {
			return nil, fmt.Errorf("%w: option JWKSURL: %w", ErrInvalidOptions, err)
		}
	}
	a := &app{opts: opts, logger: opts.Logger, now: opts.Now}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.opts.Skew <= 0 {
		a.opts.Skew = DefaultSkew
	}
	if a.opts.StreamInterval <= 0 {
		a.opts.StreamInterval = DefaultStreamInterval
	}
	if opts.EdgeKeys != nil {
		a.edge = edgetoken.Verifier{Keys: opts.EdgeKeys, Skew: a.opts.Skew, Now: a.now}
	}
	if opts.JWKS == nil && opts.JWKSURL != "" {
		client := opts.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 5 * time.Second}
		}
		a.keys = &keyCache{url: opts.JWKSURL, client: client, now: a.now, ttl: DefaultJWKSTTL}
	}
	tmpl, err := template.New("app.html").Funcs(template.FuncMap{
		"join": strings.Join,
		"json": func(v any) (string, error) {
			b, err := json.MarshalIndent(v, "", "  ")
			return string(b), err
		},
		"unix": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	}).ParseFS(templateFS, "templates/app.html")
	if err != nil {
		return nil, fmt.Errorf("demo: parse app template: %w", err)
	}
	a.tmpl = tmpl

	mux := http.NewServeMux()
	mux.Handle("/ws", a.websocket())
	mux.HandleFunc("/stream", a.stream)
	mux.HandleFunc("/", a.report)
	return mux, nil
}

func (a *app) report(w http.ResponseWriter, r *http.Request) {
	rep := a.inspect(r)
	a.logger.Info("demo app request", "app", rep.App, "method", rep.Method, "host", rep.Host,
		"path", rep.Path, "verified", rep.Verified, "reason", rep.Reason)
	status := http.StatusOK
	if !rep.Verified {
		status = http.StatusForbidden
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			a.logger.Debug("demo app: write JSON", "error", err)
		}
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if err := a.tmpl.Execute(w, rep); err != nil {
		a.logger.Error("demo app: render page", "error", err)
	}
}

func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// inspect builds the report; it never fails, every problem becomes a reason.
func (a *app) inspect(r *http.Request) Report {
	rep := Report{
		App:        a.opts.Name,
		Method:     r.Method,
		Host:       r.Host,
		Path:       r.URL.Path,
		Query:      r.URL.RawQuery,
		RemoteAddr: r.RemoteAddr,
		Headers:    headerViews(r.Header),
	}
	rep.Edge = a.checkEdge(r)
	rep.Assertion = a.checkAssertion(r)
	switch {
	case !rep.Edge.Verified:
		rep.Reason = "edge token: " + rep.Edge.Error
	case !rep.Assertion.Verified:
		rep.Reason = "assertion: " + rep.Assertion.Error
	default:
		rep.Verified = true
		rep.Identity = identityFrom(rep.Assertion.Claims, rep.Edge.Claims)
	}
	return rep
}

// singleHeader returns the only value of header name.
func singleHeader(r *http.Request, name string) (string, error) {
	v := r.Header.Values(name)
	switch {
	case len(v) == 0 || (len(v) == 1 && v[0] == ""):
		return "", ErrMissing
	case len(v) > 1:
		return "", ErrDuplicate
	}
	return v[0], nil
}

func (a *app) checkEdge(r *http.Request) EdgeResult {
	var res EdgeResult
	tok, err := singleHeader(r, edgetoken.Header)
	res.Present = !errors.Is(err, ErrMissing)
	if err == nil && a.edge.Keys == nil {
		err = ErrNotConfigured
	}
	if err == nil {
		var c edgetoken.Claims
		c, err = a.edge.Verify(tok, r.Host)
		if err == nil {
			res.Verified = true
			res.Claims = &EdgeClaims{
				KeyID: c.KeyID, Host: c.Host, User: c.User, Service: c.Service,
				Environment: c.Environment, IssuedAt: c.IssuedAt.UTC(), Expiry: c.Expiry.UTC(),
			}
		}
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

func (a *app) checkAssertion(r *http.Request) AssertionResult {
	var res AssertionResult
	tok, err := singleHeader(r, AssertionHeader)
	res.Present = !errors.Is(err, ErrMissing)
	if err == nil && len(tok) > maxAssertionLen {
		err = fmt.Errorf("%d bytes, more than %d", len(tok), maxAssertionLen)
	}
	if err == nil {
		res.Claims, err = a.verifyAssertion(r.Context(), tok, r.Host)
		res.Verified = err == nil
	}
	if err != nil {
		res.Error = err.Error()
		res.Claims = nil
	}
	return res
}

// verifyAssertion checks the JWT's signature against the JWKS (fetching it
// again once if the cached set is stale enough), its times, issuer and that
// its audience names this host.
func (a *app) verifyAssertion(ctx context.Context, tok, host string) (map[string]any, error) {
	var set jwk.Set
	var err error
	switch {
	case a.opts.JWKS != nil:
		set, err = a.opts.JWKS(ctx)
	case a.keys != nil:
		set, err = a.keys.get(ctx, false)
	default:
		return nil, ErrNotConfigured
	}
	if err != nil {
		return nil, fmt.Errorf("get JWKS: %w", err)
	}
	claims, err := a.parseAssertion(tok, host, set)
	if err != nil && a.keys != nil && a.opts.JWKS == nil && a.keys.canRefetch() {
		if fresh, ferr := a.keys.get(ctx, true); ferr == nil {
			claims, err = a.parseAssertion(tok, host, fresh)
		}
	}
	return claims, err
}

func (a *app) parseAssertion(tok, host string, set jwk.Set) (map[string]any, error) {
	opts := []jwt.ParseOption{
		jwt.WithKeySet(set, jws.WithInferAlgorithmFromKey(true)),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(a.now)),
		jwt.WithAcceptableSkew(a.opts.Skew),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
	}
	if a.opts.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.opts.Issuer))
	}
	t, err := jwt.Parse([]byte(tok), opts...)
	if err != nil {
		return nil, err
	}
	want := []string{edgetoken.NormalizeHost(host), strings.ToLower(host)}
	if !slices.ContainsFunc(t.Audience(), func(aud string) bool { return slices.Contains(want, aud) }) {
		return nil, fmt.Errorf("audience %q does not name host %q", t.Audience(), want[0])
	}
	return t.AsMap(context.Background())
}

func identityFrom(claims map[string]any, edge *EdgeClaims) *Identity {
	id := &Identity{
		Subject:     claimString(claims, "sub"),
		Email:       claimString(claims, "email"),
		Name:        claimString(claims, "name"),
		Username:    claimString(claims, "preferred_username"),
		Groups:      claimStrings(claims, "groups"),
		UserRef:     firstClaim(claims, userRefClaims),
		Service:     firstClaim(claims, serviceClaims),
		Environment: firstClaim(claims, envClaims),
	}
	if exp, ok := claims[jwt.ExpirationKey].(time.Time); ok {
		id.Expiry = exp.UTC()
	}
	if edge != nil {
		if id.Service == "" {
			id.Service = edge.Service
		}
		if id.Environment == "" {
			id.Environment = edge.Environment
		}
		if id.Email == "" && strings.Contains(edge.User, "@") {
			id.Email = edge.User
		}
	}
	return id
}

func claimString(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func firstClaim(m map[string]any, names []string) string {
	for _, n := range names {
		if s := claimString(m, n); s != "" {
			return s
		}
	}
	return ""
}

func claimStrings(m map[string]any, k string) []string {
	switch v := m[k].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return []string{v}
	}
	return nil
}
