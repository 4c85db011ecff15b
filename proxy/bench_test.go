package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backgate/backgate/backstage"
	"github.com/backgate/backgate/policy"
	"github.com/backgate/backgate/proxy/auth"
	"github.com/backgate/backgate/proxy/auth/authtest"
	"github.com/backgate/backgate/proxy/signer"
)

// The benchmarks here measure the proxy's own request path. The stages it
// calls have benchmarks in their packages: cookie decode
// (proxy/auth BenchmarkSessionDecode), decision (policy BenchmarkDecide*),
// token minting (proxy/signer BenchmarkSign*, proxy/edgetoken BenchmarkMint),
// header stripping alone (proxy/signer BenchmarkStripHeaders). Run them all:
//
//	go test -run '^$' -bench . -benchmem ./proxy/... ./policy/
//
// The load benchmark over loopback, backgate against a bare reverse proxy in
// separate processes, is cmd/backgate-bench.

const (
	benchRouteHost = "app.bench.localhost"
	benchBodySize  = 512
)

// benchSnapshot is a generated catalog: groups in a 5-ary tree under g0,
// users in leaf groups, components owned by leaf groups; u0 is in the leaf
// group that owns c0. (cmd/backgate-bench generates the same shape.)
func benchSnapshot(components, groups, users int) *backstage.Snapshot {
	firstLeaf := (groups-2)/5 + 1
	leaves := groups - firstLeaf
	leaf := func(i int) string { return fmt.Sprintf("g%d", firstLeaf+i%leaves) }
	mk := func(kind, name string, spec backstage.Spec) backstage.Entity {
		return backstage.Entity{APIVersion: "backstage.io/v1alpha1", Kind: kind,
			Metadata: backstage.Metadata{Name: name, Namespace: "default"}, Spec: spec}
	}
	var ents []backstage.Entity
	for i := range groups {
		sp := backstage.Spec{Type: "team"}
		if i > 0 {
			sp.Parent = fmt.Sprintf("g%d", (i-1)/5)
		}
		ents = append(ents, mk("Group", fmt.Sprintf("g%d", i), sp))
	}
	for i := range users {
		sp := backstage.Spec{Profile: backstage.Profile{Email: fmt.Sprintf("u%d@bench.example", i)},
			MemberOf: backstage.StringList{leaf(i)}}
		if i%3 == 0 && i > 0 {
			sp.MemberOf = append(sp.MemberOf, leaf(i*7+1))
		}
		ents = append(ents, mk("User", fmt.Sprintf("u%d", i), sp))
	}
	for i := range components {
		ents = append(ents, mk("Component", fmt.Sprintf("c%d", i),
			backstage.Spec{Type: "service", Lifecycle: "production", Owner: "group:" + leaf(i*13)}))
	}
	return &backstage.Snapshot{Source: "generated", FetchedAt: time.Now(), Entities: ents}
}

// benchUpstream is the application: a fixed 512-byte body.
func benchUpstream(tb testing.TB) *url.URL {
	body := bytes.Repeat([]byte("x"), benchBodySize)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body)
	}))
	tb.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	return u
}

// benchStack is backgate assembled as cmd/backgate does it: the real
// authenticator (with a session from a real login at authtest), the shipped
// policy over a generated catalog, the real signer, JSON access logs
// (discarded), and an in-process upstream over loopback.
type benchStack struct {
	srv    *Server
	cookie *http.Cookie
	up     *url.URL
}

func newBenchStack(b *testing.B, uniqueTokens bool) *benchStack {
	b.Helper()
	up := benchUpstream(b)

	front := httptest.NewUnstartedServer(nil)
	b.Cleanup(front.Close)
	_, port, _ := net.SplitHostPort(front.Listener.Addr().String())
	external := "http://auth.bench.localhost:" + port

	op := authtest.New(b, authtest.Options{})
	op.SetUser(authtest.User{Subject: "sub-u0", Email: "u0@bench.example", Name: "User 0", Username: "u0", Groups: []string{"bench"}})
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	au, err := auth.New(auth.Options{
		IssuerURL: op.Issuer(), ClientID: op.ClientID(), ClientSecret: op.ClientSecret(),
		CallbackURL: external + "/_backgate/callback", SessionKeys: [][]byte{[]byte("bench-session-key-0123456789abcdef")},
		CookieDomain: "bench.localhost", InsecureCookies: true, HTTPClient: op.Client(), Logger: log,
		AllowReturnHost: func(h string) bool { return h == benchRouteHost+":"+port },
	})
	if err != nil {
		b.Fatal(err)
	}
	eng, err := policy.New(policy.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	cat, err := backstage.Build(benchSnapshot(1000, 200, 2000), backstage.BuildOptions{
		Identity: backstage.IdentityOptions{UserMatch: []string{backstage.MatchEmail, backstage.MatchName}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := eng.SetCatalog(cat); err != nil {
		b.Fatal(err)
	}
	kr, err := signer.OpenKeyring(signer.KeyringOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	sg, err := signer.New(signer.Options{Keyring: kr, Issuer: external, TTL: 2 * time.Minute, UniqueTokens: uniqueTokens})
	if err != nil {
		b.Fatal(err)
	}
	extURL, _ := url.Parse(external)
	srv, err := New(Options{
		ExternalURL: extURL,
		Routes: []Route{{Name: "bench", Host: benchRouteHost, PathPrefix: "/", Service: "component:default/c0",
			Environment: "staging", Upstream: up}},
		Sessions:    AuthSessions(au),
		Authorizer:  policy.NewDecisionCache(eng, policy.CacheOptions{}), // as serve wires it
		Signer:      SignerHeaders(sg),
		Strip:       signer.StripBackgateHeaders,
		Transport:   NewTransport(TransportOptions{}),
		CookieNames: []string{"_backgate"},
		Logger:      log,
		AccessLog:   io.Discard, // as serve wires it with a JSON log
	})
	if err != nil {
		b.Fatal(err)
	}
	front.Config.Handler = srv
	front.Start()
	return &benchStack{srv: srv, cookie: benchLogin(b, front.Listener.Addr().String(), port), up: up}
}

// benchLogin follows the whole login from a protected URL through authtest
// and returns the session cookie.
func benchLogin(b *testing.B, frontAddr, port string) *http.Cookie {
	b.Helper()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if h, _, _ := net.SplitHostPort(addr); strings.HasSuffix(h, ".bench.localhost") {
			addr = frontAddr
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Jar: jar, Transport: tr, Timeout: 10 * time.Second}
	app := "http://" + benchRouteHost + ":" + port + "/"
	req, _ := http.NewRequest(http.MethodGet, app, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != app {
		b.Fatalf("login ended with %d at %s", resp.StatusCode, resp.Request.URL)
	}
	u, _ := url.Parse(app)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "_backgate" {
			return ck
		}
	}
	b.Fatal("no session cookie after login")
	return nil
}

// benchServe runs h on the same request every iteration and checks the
// answer is the upstream's 200. It reports CPU time per request besides
// wall time: on a shared machine cpu-ns/op is the steadier figure (it
// includes the in-process upstream and GC).
func benchServe(b *testing.B, h http.Handler, cookie *http.Cookie) {
	r := httptest.NewRequest(http.MethodGet, "http://"+benchRouteHost+"/some/page", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.AddCookie(cookie)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK || w.Body.Len() != benchBodySize {
		b.Fatalf("fixture request: %d %q", w.Code, w.Body.String())
	}
	runtime.GC()
	b.ReportAllocs()
	cpu := benchCPUTime()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.ReportMetric(float64(benchCPUTime()-cpu)/float64(b.N), "cpu-ns/op")
}

func benchCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandler is the whole backgate handler for an authenticated,
// authorized request (staging, owning group, 1,000-component catalog) that
// is signed and forwarded to a loopback upstream. "cached" reuses minted
// headers (the default), "unique" mints both tokens per request
// (signing.unique_tokens).
func BenchmarkHandler(b *testing.B) {
	for _, unique := range []bool{false, true} {
		name := "signer=cached"
		if unique {
			name = "signer=unique"
		}
		b.Run(name, func(b *testing.B) {
			st := newBenchStack(b, unique)
			benchServe(b, st.srv, st.cookie)
		})
	}
}

// BenchmarkBareProxy is the baseline for BenchmarkHandler: httputil's
// ReverseProxy with SetURL and SetXForwarded, the same transport and the
// same upstream, request and cookie.
func BenchmarkBareProxy(b *testing.B) {
	up := benchUpstream(b)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
		},
		Transport:  NewTransport(TransportOptions{}),
		BufferPool: NewBufferPool(), // as backgate's
	}
	benchServe(b, rp, &http.Cookie{Name: "_backgate", Value: strings.Repeat("c", 600)})
}

// stubSessions, stubAuthz and stubSigner cost nothing, to isolate the
// proxy's own work.
type stubSessions struct{ id Identity }

func (s stubSessions) Identify(http.ResponseWriter, *http.Request, time.Time) (Identity, error) {
	return s.id, nil
}
func (stubSessions) Login(http.ResponseWriter, *http.Request, string) {}
func (stubSessions) Callback(http.ResponseWriter, *http.Request)      {}
func (stubSessions) Logout(http.ResponseWriter, *http.Request)        {}

type stubAuthz struct{}

func (stubAuthz) Decide(context.Context, policy.Input) (policy.Decision, error) {
	return policy.Decision{ID: "d", Allow: true, UserRef: "user:default/u0"}, nil
}

type stubSigner struct{ h http.Header }

func newStubSigner(edge, assertion string) stubSigner {
	return stubSigner{http.Header{signer.HeaderEdge: {edge}, signer.HeaderAssertion: {assertion}}}
}

func (s stubSigner) SignHeaders(SignRequest) (http.Header, error) { return s.h, nil }

// cannedTransport answers every request in memory, without a network.
type cannedTransport struct{ body []byte }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: int64(len(c.body)),
		Body: io.NopCloser(bytes.NewReader(c.body)), Request: r}, nil
}

// BenchmarkHandlerOverhead is the proxy's own per-request work with free
// stages and an in-memory upstream: routing, the policy.Input build, the
// access-log record (JSON, discarded), Rewrite (X-Forwarded-*, header and
// cookie stripping) and ReverseProxy's copying. Compare with
// BenchmarkBareProxyOverhead.
func BenchmarkHandlerOverhead(b *testing.B) {
	ext, _ := url.Parse("http://auth.bench.localhost")
	up, _ := url.Parse("http://127.0.0.1:1")
	srv, err := New(Options{
		ExternalURL: ext,
		Routes:      []Route{{Name: "bench", Host: benchRouteHost, PathPrefix: "/", Service: "component:default/c0", Environment: "staging", Upstream: up}},
		Sessions: stubSessions{Identity{Subject: "sub-u0", Issuer: "http://idp", Email: "u0@bench.example", Name: "User 0",
			Username: "u0", Groups: []string{"bench"}, Expiry: time.Now().Add(time.Hour)}},
		Authorizer:  stubAuthz{},
		Signer:      newStubSigner(strings.Repeat("e", 200), strings.Repeat("a", 700)),
		Strip:       signer.StripBackgateHeaders,
		Transport:   cannedTransport{body: bytes.Repeat([]byte("x"), benchBodySize)},
		CookieNames: []string{"_backgate"},
		Logger:      slog.New(slog.NewJSONHandler(io.Discard, nil)),
		AccessLog:   io.Discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	benchServe(b, srv, &http.Cookie{Name: "_backgate", Value: strings.Repeat("c", 600)})
}

// BenchmarkBareProxyOverhead is ReverseProxy alone with the same in-memory upstream.
func BenchmarkBareProxyOverhead(b *testing.B) {
	up, _ := url.Parse("http://127.0.0.1:1")
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.SetXForwarded() },
		Transport: cannedTransport{body: bytes.Repeat([]byte("x"), benchBodySize)},
	}
	benchServe(b, rp, &http.Cookie{Name: "_backgate", Value: strings.Repeat("c", 600)})
}

// BenchmarkRewrite is the outbound request build as ReverseProxy runs it
// (clone of the inbound request, then Rewrite): X-Forwarded-*, deleting
// client-supplied X-Backgate-* headers however spelt, setting the signed
// headers and removing backgate's cookie while keeping the application's.
func BenchmarkRewrite(b *testing.B) {
	ext, _ := url.Parse("http://auth.bench.localhost")
	up, _ := url.Parse("http://127.0.0.1:1")
	srv, err := New(Options{ExternalURL: ext, Sessions: stubSessions{}, Authorizer: stubAuthz{}, Signer: stubSigner{},
		Strip: signer.StripBackgateHeaders, CookieNames: []string{"_backgate"}})
	if err != nil {
		b.Fatal(err)
	}
	rt := &Route{Name: "bench", Host: benchRouteHost, Upstream: up}
	signed := http.Header{signer.HeaderEdge: {strings.Repeat("e", 200)}, signer.HeaderAssertion: {strings.Repeat("a", 700)}}
	in := httptest.NewRequest(http.MethodGet, "http://"+benchRouteHost+"/p", nil)
	in.RemoteAddr = "192.0.2.1:40000"
	in.Header.Set("X-Backgate-Edge", "forged")
	in.Header["X_backgate_assertion"] = []string{"forged"}
	in.Header.Set("Accept", "text/html")
	in.Header.Set("User-Agent", "bench")
	in.Header.Set("Cookie", "_backgate="+strings.Repeat("c", 600)+"; app=1")
	in = in.WithContext(context.WithValue(in.Context(), ctxKey{}, &record{route: rt, headers: signed, peer: peerAddr(in.RemoteAddr)}))

	pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
	srv.rewrite(pr)
	if _, ok := pr.Out.Header["X_backgate_assertion"]; ok || pr.Out.Header.Get("Cookie") != "app=1" ||
		pr.Out.Header.Get(signer.HeaderEdge) != signed.Get(signer.HeaderEdge) || pr.Out.URL.Host != up.Host {
		b.Fatalf("rewrite fixture: %v %v", pr.Out.URL, pr.Out.Header)
	}
	b.ReportAllocs()
	for b.Loop() {
		pr := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
		srv.rewrite(pr)
	}
}
