package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backgate/backgate/policy"
	"github.com/backgate/backgate/proxy/signer"
)

// testSessions reads the identity from a cookie "_backgate=<email>"; it
// stands in for proxy/auth, which has its own tests (and the end-to-end
// test in cmd/backgate uses the real thing).
type testSessions struct{ logins atomic.Int32 }

func (t *testSessions) Identify(_ http.ResponseWriter, r *http.Request, _ time.Time) (Identity, error) {
	c, err := r.Cookie("_backgate")
	if err != nil || c.Value == "" {
		return Identity{}, ErrNotLoggedIn
	}
	return Identity{Subject: "sub-" + c.Value, Email: c.Value, Groups: []string{"g1"}, Expiry: time.Now().Add(time.Hour)}, nil
}
func (t *testSessions) Login(w http.ResponseWriter, r *http.Request, returnTo string) {
	t.logins.Add(1)
	http.Redirect(w, r, "https://idp.example/authorize?rd="+url.QueryEscape(returnTo), http.StatusFound)
}
func (t *testSessions) Callback(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }
func (t *testSessions) Logout(w http.ResponseWriter, _ *http.Request)   { w.WriteHeader(205) }

type authzFunc func(policy.Input) (policy.Decision, error)

func (f authzFunc) Decide(_ context.Context, in policy.Input) (policy.Decision, error) { return f(in) }

type testSigner struct{}

func (testSigner) SignHeaders(r SignRequest) (http.Header, error) {
	return http.Header{"X-Backgate-Edge": {"signed:" + r.Identity.Email + ":" + r.Host + ":" + r.Environment}}, nil
}

type fixture struct {
	srv      *Server
	front    *httptest.Server
	upstream *httptest.Server
	seen     chan *http.Request
	logs     *bytes.Buffer
	sessions *testSessions
}

func allowAlice(in policy.Input) (policy.Decision, error) {
	return policy.Decision{ID: "d1", Allow: in.User.Email == "alice@example.com"}, nil
}

func newFixture(t *testing.T, authz policy.Authorizer, upstream http.Handler, mut func(*Options)) *fixture {
	t.Helper()
	f := &fixture{seen: make(chan *http.Request, 16), logs: &bytes.Buffer{}, sessions: &testSessions{}}
	if upstream == nil {
		upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.seen <- r.Clone(context.Background())
			http.SetCookie(w, &http.Cookie{Name: "_backgate", Value: "evil"})
			http.SetCookie(w, &http.Cookie{Name: "app", Value: "fine"})
			fmt.Fprintf(w, "upstream %s %s", r.Host, r.URL.RequestURI())
		})
	}
	f.upstream = httptest.NewServer(upstream)
	t.Cleanup(f.upstream.Close)
	up, _ := url.Parse(f.upstream.URL)
	opts := Options{
		ExternalURL: &url.URL{Scheme: "http", Host: "backgate.test"},
		Routes: []Route{
			{Name: "app", Host: "app.test", PathPrefix: "/", Service: "component:default/app", Environment: "staging", Upstream: up},
			{Name: "api", Host: "app.test", PathPrefix: "/api", Service: "component:default/api", Environment: "prod", Upstream: up},
		},
		Sessions:    f.sessions,
		Authorizer:  authz,
		Signer:      testSigner{},
		Strip:       signer.StripBackgateHeaders,
		CookieNames: []string{"_backgate"},
		Owners:      func(string) []string { return []string{"group:default/team-c"} },
		Logger:      slog.New(slog.NewJSONHandler(f.logs, nil)),
	}
	if mut != nil {
		mut(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.front = httptest.NewServer(srv)
	t.Cleanup(f.front.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path, user string, hdr http.Header) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, f.front.URL+path, nil)
	req.Host = "app.test"
	for k, v := range hdr {
		req.Header[k] = v
	}
	if user != "" {
		req.AddCookie(&http.Cookie{Name: "_backgate", Value: user})
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, r *http.Response) string {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAllowedRequestIsSignedAndScrubbed(t *testing.T) {
	f := newFixture(t, authzFunc(allowAlice), nil, nil)
	hdr := http.Header{
		"X-Backgate-Edge":      {"forged"},
		"X_backgate_edge":      {"forged2"},
		"X-BACKGATE-ASSERTION": {"forged3"},
		"Cookie":               {"app=1; _backgate_login_x=zz"},
		"Connection":           {"X-Drop-Me"},
		"X-Drop-Me":            {"hop"},
	}
	resp := f.do(t, "GET", "/some/page?q=1", "alice@example.com", hdr)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body(t, resp))
	}
	got := <-f.seen
	if v := got.Header.Values("X-Backgate-Edge"); len(v) != 1 || v[0] != "signed:alice@example.com:app.test:staging" {
		t.Fatalf("edge header = %q", v)
	}
	for k := range got.Header {
		if strings.Contains(strings.ToLower(k), "backgate") && k != "X-Backgate-Edge" {
			t.Errorf("client header %q reached the upstream", k)
		}
	}
	if c := got.Header.Get("Cookie"); c != "app=1" {
		t.Errorf("upstream Cookie = %q, want only the app's cookie", c)
	}
	if got.Header.Get("X-Drop-Me") != "" {
		t.Error("hop-by-hop header forwarded")
	}
	if got.Host != "app.test" || got.URL.RequestURI() != "/some/page?q=1" {
		t.Errorf("upstream saw host %q uri %q", got.Host, got.URL.RequestURI())
	}
	var names []string
	for _, c := range resp.Cookies() {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "app" {
		t.Errorf("client got cookies %v; upstream must not set backgate's", names)
	}
}

// TestAccessLogRecord: one access record per request, through slog or the
// direct encoder (Options.AccessLog), with the route, user and decision and
// without the query string, tokens or cookies.
func TestAccessLogRecord(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			var accessOut bytes.Buffer
			f := newFixture(t, authzFunc(allowAlice), nil, func(o *Options) {
				if direct {
					o.AccessLog = &accessOut
				}
			})
			req := httptest.NewRequest("GET", "http://app.test/p?code=SECRETCODE", nil)
			req.AddCookie(&http.Cookie{Name: "_backgate", Value: "alice@example.com"})
			req.Header.Set("Authorization", "Bearer SECRETTOKEN")
			f.srv.ServeHTTP(httptest.NewRecorder(), req)
			<-f.seen
			log, other := f.logs.String(), accessOut.String()
			if direct {
				log, other = other, log
			}
			for _, want := range []string{`"msg":"request"`, `"user":"alice@example.com"`, `"route":"app"`, `"allow":true`, `"status":200`, `"decision_id":"d1"`, `"path":"/p"`} {
				if !strings.Contains(log, want) {
					t.Errorf("access log lacks %s: %s", want, log)
				}
			}
			for _, secret := range []string{"SECRETCODE", "SECRETTOKEN", "Cookie"} {
				if strings.Contains(log, secret) {
					t.Errorf("access log leaks %s: %s", secret, log)
				}
			}
			if n := strings.Count(log, `"msg":"request"`); n != 1 {
				t.Errorf("%d access records, want 1", n)
			}
			if strings.Contains(other, `"msg":"request"`) {
				t.Errorf("access record written twice: %s", other)
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(log), &rec); err != nil {
				t.Errorf("access record is not one JSON object: %v: %s", err, log)
			}
		})
	}
}

func TestLongestPrefixRoute(t *testing.T) {
	var envs []string
	f := newFixture(t, authzFunc(func(in policy.Input) (policy.Decision, error) {
		envs = append(envs, in.Route.Environment+":"+in.Route.Service)
		return policy.Decision{Allow: true}, nil
	}), nil, nil)
	for _, p := range []string{"/api/v1", "/api", "/apix", "/"} {
		resp := f.do(t, "GET", p, "alice@example.com", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
		<-f.seen
	}
	want := "prod:component:default/api,prod:component:default/api,staging:component:default/app,staging:component:default/app"
	if strings.Join(envs, ",") != want {
		t.Fatalf("routes = %v", envs)
	}
}

func TestDeniedShowsPageAndNeverForwards(t *testing.T) {
	f := newFixture(t, authzFunc(allowAlice), nil, nil)
	resp := f.do(t, "GET", "/", "bob@example.com", nil)
	b := body(t, resp)
	if resp.StatusCode != 403 || !strings.Contains(b, "bob@example.com") || !strings.Contains(b, "group:default/team-c") || !strings.Contains(b, "component:default/app") {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
	select {
	case <-f.seen:
		t.Fatal("denied request reached the upstream")
	default:
	}
}

func TestDecisionFailureFailsClosed(t *testing.T) {
	tests := []struct {
		name  string
		authz authzFunc
	}{
		{"error", func(policy.Input) (policy.Decision, error) { return policy.Decision{Allow: true}, errors.New("boom") }},
		{"panic", func(policy.Input) (policy.Decision, error) { panic("engine exploded") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.authz, nil, nil)
			resp := f.do(t, "GET", "/", "alice@example.com", nil)
			if resp.StatusCode != 503 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if b := body(t, resp); strings.Contains(b, "boom") || strings.Contains(b, "exploded") {
				t.Fatal("internal error shown to the user")
			}
			select {
			case <-f.seen:
				t.Fatal("request reached the upstream")
			default:
			}
		})
	}
}

func TestNotLoggedIn(t *testing.T) {
	f := newFixture(t, authzFunc(allowAlice), nil, nil)
	resp := f.do(t, "GET", "/x?y=1", "", http.Header{"Accept": {"text/html"}})
	if resp.StatusCode != 302 || !strings.Contains(resp.Header.Get("Location"), url.QueryEscape("http://app.test/x?y=1")) {
		t.Fatalf("browser: status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = f.do(t, "POST", "/x", "", http.Header{"Accept": {"application/json"}})
	if resp.StatusCode != 401 {
		t.Fatalf("api: status %d", resp.StatusCode)
	}
}

func TestOddPathsRefused(t *testing.T) {
	f := newFixture(t, authzFunc(func(policy.Input) (policy.Decision, error) { return policy.Decision{Allow: true}, nil }), nil, nil)
	paths := []string{"/a/../admin", "/a/./b", "/%2e%2e/admin", "/a%2fb", "/a%2Fb", "/a%5cb", "/a\\b", "/a%00b", "/a%0ab", "/a%09", "//evil.example/x", "/.%2e/x"}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			conn, err := net.Dial("tcp", f.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: app.test\r\nCookie: _backgate=alice@example.com\r\nConnection: close\r\n\r\n", p)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
			select {
			case <-f.seen:
				t.Fatal("odd path reached the upstream")
			default:
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	ok := []string{"/", "/a/b", "/a%20b", "/a.b/c..d", "/%E2%82%AC", "/a/b/"}
	for _, p := range ok {
		if err := checkPath(p); err != nil {
			t.Errorf("checkPath(%q) = %v", p, err)
		}
	}
}

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e", "/a%2fb", "//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkPath(p) != nil {
			return
		}
		u, err := url.Parse("http://h" + p)
		if err != nil {
			return
		}
		// Whatever passes must mean the same path once decoded and cleaned.
		for _, seg := range strings.Split(u.Path, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("%q decodes to a dot segment", p)
			}
		}
		if strings.ContainsAny(u.Path, "\\\x00") || strings.Count(u.Path, "/") != strings.Count(p, "/") {
			t.Fatalf("%q decodes to a different path %q", p, u.Path)
		}
	})
}

func TestXForwardedTrust(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    string
		proto   string
	}{
		{"untrusted peer: client's header dropped", nil, "127.0.0.1", "http"},
		{"trusted peer: chain kept", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9, 127.0.0.1", "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, authzFunc(allowAlice), nil, func(o *Options) { o.TrustedProxies = tt.trusted })
			f.do(t, "GET", "/", "alice@example.com", http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"}})
			got := <-f.seen
			if xff := got.Header.Get("X-Forwarded-For"); xff != tt.want {
				t.Errorf("X-Forwarded-For = %q, want %q", xff, tt.want)
			}
			if p := got.Header.Get("X-Forwarded-Proto"); p != tt.proto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", p, tt.proto)
			}
			if h := got.Header.Get("X-Forwarded-Host"); h != "app.test" {
				t.Errorf("X-Forwarded-Host = %q", h)
			}
		})
	}
}

func TestUpstreamErrors(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		f := newFixture(t, authzFunc(allowAlice), nil, nil)
		f.upstream.Close()
		resp := f.do(t, "GET", "/", "alice@example.com", nil)
		if b := body(t, resp); resp.StatusCode != 502 || !strings.Contains(b, "could not be reached") {
			t.Fatalf("status %d body %s", resp.StatusCode, b)
		}
	})
	t.Run("slow", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		f := newFixture(t, authzFunc(allowAlice), slow, func(o *Options) {
			o.Transport = NewTransport(TransportOptions{ResponseHeaderTimeout: 50 * time.Millisecond})
		})
		resp := f.do(t, "GET", "/", "alice@example.com", nil)
		if b := body(t, resp); resp.StatusCode != 504 || !strings.Contains(b, "too long") {
			t.Fatalf("status %d body %s", resp.StatusCode, b)
		}
	})
}

func TestStreaming(t *testing.T) {
	next := make(chan struct{})
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "second\n")
	})
	f := newFixture(t, authzFunc(allowAlice), up, nil)
	resp := f.do(t, "GET", "/stream", "alice@example.com", nil)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	close(next)
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v (not streamed before the upstream finished)", line, err)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("X-Backgate-Edge") == "" {
			http.Error(w, "no upgrade or no identity", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		buf := make([]byte, 4)
		if _, err := io.ReadFull(brw, buf); err == nil {
			conn.Write(buf)
		}
	})
	f := newFixture(t, authzFunc(allowAlice), up, nil)
	conn, err := net.Dial("tcp", f.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: app.test\r\nCookie: _backgate=alice@example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprint(conn, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q %v", buf, err)
	}
}

func TestOwnHostEndpoints(t *testing.T) {
	ready := errors.New("catalog stale")
	f := newFixture(t, authzFunc(allowAlice), nil, func(o *Options) {
		o.Ready = func(context.Context) error { return ready }
		o.Status = func() string { return "policy_revision: p1\n" }
	})
	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest("GET", f.front.URL+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if c, _ := get("backgate.test", "/healthz"); c != 200 {
		t.Errorf("healthz %d", c)
	}
	if c, b := get("backgate.test", "/readyz"); c != 503 || !strings.Contains(b, "catalog stale") || !strings.Contains(b, "policy_revision: p1") {
		t.Errorf("readyz %d %q", c, b)
	}
	ready = nil
	if c, _ := get("app.test", "/_backgate/readyz"); c != 200 {
		t.Errorf("route-host readyz %d", c)
	}
	if c, b := get("app.test", "/_backgate/logout"); c != 200 || !strings.Contains(b, `method="post"`) {
		t.Errorf("logout without fetch metadata: %d, want the confirmation page", c)
	}
	if c, _ := get("unknown.test", "/x"); c != 404 {
		t.Errorf("unknown host %d", c)
	}
}

func TestSetRoutesSwaps(t *testing.T) {
	f := newFixture(t, authzFunc(allowAlice), nil, nil)
	f.srv.SetRoutes(nil)
	if resp := f.do(t, "GET", "/", "alice@example.com", nil); resp.StatusCode != 404 {
		t.Fatalf("after removing routes: %d", resp.StatusCode)
	}
}

// recordingSigner remembers what it was asked to sign.
type recordingSigner struct{ got chan SignRequest }

func (s recordingSigner) SignHeaders(r SignRequest) (http.Header, error) {
	s.got <- r
	return http.Header{"X-Backgate-Edge": {"signed"}}, nil
}

// TestSignedHeadersNeverOutliveGrantOrSession: the signer is told to stop at
// the earlier of the session's end and the temporary grant's.
func TestSignedHeadersNeverOutliveGrantOrSession(t *testing.T) {
	grantEnd := time.Now().Add(10 * time.Minute) // the test session lasts an hour
	tests := []struct {
		name string
		d    policy.Decision
		want time.Time
	}{
		{"grant ends first", policy.Decision{Allow: true, GrantID: "g1", GrantExpiry: grantEnd}, grantEnd},
		{"no grant: the session's end", policy.Decision{Allow: true}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := recordingSigner{got: make(chan SignRequest, 1)}
			f := newFixture(t, authzFunc(func(policy.Input) (policy.Decision, error) { return tt.d, nil }), nil,
				func(o *Options) { o.Signer = rs })
			f.do(t, "GET", "/", "alice@example.com", nil)
			<-f.seen
			got := (<-rs.got).NotAfter
			if tt.want.IsZero() {
				if d := time.Until(got); d < 59*time.Minute || d > time.Hour {
					t.Fatalf("NotAfter %v is not the session's end", got)
				}
				return
			}
			if !got.Equal(tt.want) {
				t.Fatalf("NotAfter = %v, want the grant's expiry %v", got, tt.want)
			}
		})
	}
}

// TestLogoutNeedsThePersonsAction: a logout happens only when the browser
// says the request comes from the same origin or from the person (typed
// address, bookmark), or, without fetch metadata, from a same-origin POST;
// a cross-site or same-site link, image or form gets a confirmation page
// whose button posts back, and no session is touched.
func TestLogoutNeedsThePersonsAction(t *testing.T) {
	f := newFixture(t, authzFunc(allowAlice), nil, nil)
	tests := []struct {
		name, method, site, origin string
		logout                     bool
	}{
		{"typed address", "GET", "none", "", true},
		{"sign-out link on the 403 page", "GET", "same-origin", "", true},
		{"confirmation button", "POST", "same-origin", "http://app.test", true},
		{"post, no fetch metadata, same origin", "POST", "", "http://app.test", true},
		{"link from another site", "GET", "cross-site", "", false},
		{"link from another internal host", "GET", "same-site", "", false},
		{"form from another site", "POST", "cross-site", "https://evil.example", false},
		{"post, no fetch metadata, same origin with its default port", "POST", "", "http://app.test:80", true},
		{"post, no fetch metadata, other origin", "POST", "", "https://evil.example", false},
		{"post, no fetch metadata, same host in another scheme", "POST", "", "ftp://app.test", false},
		{"post, no fetch metadata, same host on another port", "POST", "", "http://app.test:8080", false},
		{"post, no fetch metadata, null origin", "POST", "", "null", false},
		{"post, no metadata at all", "POST", "", "", false},
		{"get, no fetch metadata", "GET", "", "", false},
		{"put from the same origin", "PUT", "same-origin", "http://app.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://app.test/_backgate/logout", nil)
			if tt.site != "" {
				r.Header.Set("Sec-Fetch-Site", tt.site)
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			w := httptest.NewRecorder()
			f.srv.ServeHTTP(w, r)
			if loggedOut := w.Code == 205; loggedOut != tt.logout {
				t.Fatalf("status %d (205 = signed out), want signed out %v", w.Code, tt.logout)
			}
			if !tt.logout && (w.Code != 200 || !strings.Contains(w.Body.String(), `<form method="post" action="/_backgate/logout">`)) {
				t.Fatalf("status %d, body %s: want the confirmation form", w.Code, w.Body.String())
			}
		})
	}
}

// TestStripCookiesAsNetHTTPReadsThem: every spelling net/http (and the
// session lookup) reads as one of backgate's cookies is removed before the
// upstream, the application's cookies stay.
func TestStripCookiesAsNetHTTPReadsThem(t *testing.T) {
	own := []string{"_backgate"}
	for _, tc := range []struct{ in, want string }{
		{"_backgate=s; app=1", "app=1"},
		{"_backgate =s; app=1", "app=1"},
		{" _backgate\t=s;app=1", "app=1"},
		{"app=1; _backgate_login_x=zz", "app=1"},
		{"app=1;  _backgate", "app=1"},
		{"_backgate=s", ""},
		{"_BACKGATE=s; app=1", "_BACKGATE=s; app=1"}, // names are case-sensitive: not ours
		{"app=1; other=2", "app=1; other=2"},
	} {
		h := http.Header{"Cookie": {tc.in}}
		stripCookies(h, own)
		if got := h.Get("Cookie"); got != tc.want {
			t.Errorf("%q: upstream gets %q, want %q", tc.in, got, tc.want)
		}
		r := &http.Request{Header: h}
		if c, err := r.Cookie("_backgate"); err == nil {
			t.Errorf("%q: net/http still finds the session cookie %q after stripping", tc.in, c.Value)
		}
	}
}

// TestClientIP: the access record's client is the peer, unless the peer is
// a trusted proxy: then the right-most X-Forwarded-For hop that is not one.
func TestClientIP(t *testing.T) {
	s, err := New(Options{ExternalURL: &url.URL{Scheme: "http", Host: "backgate.test"}, Sessions: &testSessions{},
		Authorizer: authzFunc(allowAlice), Signer: testSigner{}, Strip: signer.StripBackgateHeaders,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ remote, xff, want string }{
		{"192.0.2.1:5000", "203.0.113.9", "192.0.2.1"},                          // untrusted peer: its header is ignored
		{"10.0.0.5:5000", "203.0.113.9", "203.0.113.9"},                         // trusted proxy
		{"10.0.0.5:5000", "198.51.100.7, 203.0.113.9, 10.0.0.6", "203.0.113.9"}, // right-most untrusted hop
		{"10.0.0.5:5000", "bogus", "10.0.0.5"},                                  // unparsable: the peer
		{"10.0.0.5:5000", "", "10.0.0.5"},
		{"[::ffff:192.0.2.1]:5000", "", "192.0.2.1"},
	} {
		r := httptest.NewRequest("GET", "http://app.test/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := s.ClientIP(r); got != tt.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %q, want %q", tt.remote, tt.xff, got, tt.want)
		}
	}
}

// TestRequestIDs: 16 base64url characters (96 bits), no repeats.
func TestRequestIDs(t *testing.T) {
	seen := make(map[string]bool)
	for range 10000 {
		id := newID()
		if len(id) != 16 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("request id %q is not 16 base64url characters", id)
		}
		if seen[id] {
			t.Fatalf("request id %q repeated", id)
		}
		seen[id] = true
	}
}

// sharedSigner hands every request the same header map, as the real signer
// does for every request its minted tokens are reused for.
type sharedSigner struct{ h http.Header }

func (s sharedSigner) SignHeaders(SignRequest) (http.Header, error) { return s.h, nil }

// TestSharedSignedHeadersAreNeverModified: requests that reuse one minted
// header set, sent at once and carrying forged copies of backgate's headers
// in every spelling, each reach the upstream with exactly the signed values,
// and the shared set is the same afterwards (under -race, nothing writes it).
func TestSharedSignedHeadersAreNeverModified(t *testing.T) {
	shared := http.Header{signer.HeaderEdge: {"edge-token"}, signer.HeaderAssertion: {"assertion-jwt"}}
	snapshot := http.Header{signer.HeaderEdge: {"edge-token"}, signer.HeaderAssertion: {"assertion-jwt"}}
	var mu sync.Mutex
	var bad []string
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, a := r.Header.Values(signer.HeaderEdge), r.Header.Values(signer.HeaderAssertion)
		if len(e) != 1 || e[0] != "edge-token" || len(a) != 1 || a[0] != "assertion-jwt" {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("edge %q assertion %q", e, a))
			mu.Unlock()
		}
	})
	f := newFixture(t, authzFunc(allowAlice), upstream, func(o *Options) { o.Signer = sharedSigner{shared} })
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				f.do(t, "GET", fmt.Sprintf("/p/%d/%d", i, j), "alice@example.com", http.Header{
					"X-Backgate-Edge":      {"forged", "forged-too"},
					"X-Backgate-Assertion": {"forged"},
					"X_backgate_edge":      {"forged"},
				})
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d requests reached the upstream without exactly the signed headers, first: %s", len(bad), bad[0])
	}
	if !reflect.DeepEqual(shared, snapshot) {
		t.Fatalf("the shared signed headers were modified: %v", shared)
	}
}

// TestCheckOrigin: an Origin names the request's host when it is an http(s)
// origin with the same host and port, a scheme's default port counting as
// absent; anything else is refused with an error naming the value.
func TestCheckOrigin(t *testing.T) {
	for _, tt := range []struct {
		origin, host string
		ok           bool
	}{
		{"https://a.example", "a.example", true},
		{"https://a.example", "a.example:443", true},
		{"https://a.example:443", "a.example", true},
		{"http://a.example:80", "a.example", true},
		{"https://A.Example", "a.example", true},
		{"https://a.example/", "a.example", true},
		{"https://a.example:8443", "a.example:8443", true},
		{"https://[::1]:8443", "[::1]:8443", true},
		{"https://a.example:8443", "a.example", false},
		{"http://a.example:443", "a.example", false}, // 443 is not http's default
		{"https://b.example", "a.example", false},
		{"https://a.example.evil", "a.example", false},
		{"ftp://a.example", "a.example", false},
		{"null", "a.example", false},
		{"a.example", "a.example", false},
		{"https://a.example/path", "a.example", false},
		{"https://a.example?x=1", "a.example", false},
		{"https://user@a.example", "a.example", false},
		{"https://", "a.example", false},
		{"https://a.example\x00", "a.example", false},
	} {
		err := CheckOrigin(tt.origin, tt.host)
		if (err == nil) != tt.ok {
			t.Errorf("CheckOrigin(%q, %q) = %v, want ok %v", tt.origin, tt.host, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Quote(tt.origin)) {
			t.Errorf("CheckOrigin(%q, %q) = %v: want the value named", tt.origin, tt.host, err)
		}
	}
}
