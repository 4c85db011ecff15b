package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backgate/backgate/proxy/auth"
	"github.com/backgate/backgate/proxy/auth/authtest"
)

// fakeClock is an injectable clock shared by the relying party and the
// provider.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a provider, a relying party (the Authenticator behind a small mux
// on two *.corp.localhost host names) and a browser with a cookie jar.
type env struct {
	t       *testing.T
	op      *authtest.Provider
	a       *auth.Authenticator
	opts    auth.Options
	rp      *httptest.Server
	clock   *fakeClock
	client  *http.Client
	jar     *cookiejar.Jar
	logs    *syncBuffer
	appURL  string        // http://app.corp.localhost:port
	authURL string        // http://auth.corp.localhost:port
	opSkew  time.Duration // provider clock minus relying party clock
}

var testKey1 = []byte("0123456789abcdef0123456789abcdef-key-one")

func newEnv(t *testing.T, opOpts authtest.Options, mutate func(*auth.Options)) *env {
	t.Helper()
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	e := &env{t: t, clock: clock, logs: &syncBuffer{}}
	opOpts.Now = func() time.Time { return clock.Now().Add(e.opSkew) }
	op := authtest.New(t, opOpts)
	e.op = op
	op.SetUser(authtest.User{
		Subject: "user:default/alice", Email: "alice@corp.example", Name: "Alice",
		Username: "alice", Groups: []string{"group:default/team-a"},
	})

	mux := http.NewServeMux()
	e.rp = httptest.NewServer(mux)
	t.Cleanup(e.rp.Close)
	_, port, _ := net.SplitHostPort(e.rp.Listener.Addr().String())
	e.appURL = "http://app.corp.localhost:" + port
	e.authURL = "http://auth.corp.localhost:" + port

	e.opts = auth.Options{
		IssuerURL:             op.Issuer(),
		ClientID:              op.ClientID(),
		ClientSecret:          op.ClientSecret(),
		CallbackURL:           e.authURL + "/_backgate/callback",
		PostLogoutRedirectURL: e.authURL + "/_backgate/signed-out",
		SessionKeys:           [][]byte{testKey1},
		CookieDomain:          "corp.localhost",
		InsecureCookies:       true,
		AllowReturnHost: func(h string) bool {
			return h == "app.corp.localhost:"+port || h == "auth.corp.localhost:"+port
		},
		HTTPClient: op.Client(),
		Logger:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        clock.Now,
	}
	if mutate != nil {
		mutate(&e.opts)
	}
	a, err := auth.New(e.opts)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	e.a = a

	mux.HandleFunc("/_backgate/callback", a.Callback)
	mux.HandleFunc("/_backgate/logout", a.Logout)
	mux.HandleFunc("/_backgate/signed-out", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "signed-out page")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s, err := a.Current(w, r, time.Time{}) // as the proxy reads it
		if err != nil {
			if !errors.Is(err, auth.ErrNoSession) {
				t.Errorf("Current error is not ErrNoSession: %v", err)
			}
			a.Login(w, r, r.URL.RequestURI())
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": s.ID, "sub": s.Subject, "email": s.Email, "name": s.Name,
			"username": s.Username, "groups": s.Groups, "path": r.URL.RequestURI(),
		})
	})

	e.jar, _ = cookiejar.New(nil)
	rpAddr := e.rp.Listener.Addr().String()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if h, _, _ := net.SplitHostPort(addr); strings.HasSuffix(h, ".corp.localhost") {
			addr = rpAddr
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	e.client = &http.Client{
		Jar:           e.jar,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	return e
}

// get performs one request without following redirects.
func (e *env) get(u string) (*http.Response, string) {
	e.t.Helper()
	resp, err := e.client.Get(u)
	if err != nil {
		e.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// follow performs a request and follows up to 10 redirects.
func (e *env) follow(u string) (*http.Response, string, []string) {
	e.t.Helper()
	var visited []string
	for range 10 {
		visited = append(visited, u)
		resp, body := e.get(u)
		if resp.StatusCode/100 != 3 {
			return resp, body, visited
		}
		next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			e.t.Fatalf("bad Location %q: %v", resp.Header.Get("Location"), err)
		}
		u = next.String()
	}
	e.t.Fatalf("too many redirects: %v", visited)
	return nil, "", nil
}

type whoami struct {
	ID, Sub, Email, Name, Username, Path string
	Groups                               []string
}

// login runs the whole flow from a protected URL and returns the identity
// the app saw.
func (e *env) login(path string) whoami {
	e.t.Helper()
	resp, body, visited := e.follow(e.appURL + path)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("login flow ended with %d %q via %v\nlogs:\n%s", resp.StatusCode, body, visited, e.logs)
	}
	var w whoami
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		e.t.Fatalf("app response %q: %v (via %v)", body, err, visited)
	}
	return w
}

// startLogin visits a protected URL and the provider, and returns the
// callback URL (with code and state) without visiting it.
func (e *env) startLogin(path string) *url.URL {
	e.t.Helper()
	resp, body := e.get(e.appURL + path)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("protected URL: want 302 to provider, got %d %q", resp.StatusCode, body)
	}
	authz := resp.Header.Get("Location")
	if !strings.HasPrefix(authz, e.op.Issuer()+"/authorize?") {
		e.t.Fatalf("login redirect %q is not the provider's authorize endpoint", authz)
	}
	resp, body = e.get(authz)
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize: want 302, got %d %q", resp.StatusCode, body)
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	return cb
}

func (e *env) sessionCookie() *http.Cookie {
	u, _ := url.Parse(e.appURL)
	for _, c := range e.jar.Cookies(u) {
		if c.Name == "_backgate" {
			return c
		}
	}
	return nil
}

func findSetCookie(resp *http.Response, prefix string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name+"=", prefix) {
			return c
		}
	}
	return nil
}

func TestLoginHappyPath(t *testing.T) {
	e := newEnv(t, authtest.Options{}, nil)

	// Step by step first, to inspect the redirects and cookies.
	resp, _ := e.get(e.appURL + "/docs/page?q=1")
	authz, _ := url.Parse(resp.Header.Get("Location"))
	q := authz.Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(k) == "" {
			t.Errorf("authorize URL lacks %s: %s", k, authz)
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("redirect_uri") != e.opts.CallbackURL || q.Get("scope") != "openid email profile" {
		t.Errorf("authorize URL params wrong: %s", authz)
	}
	lc := findSetCookie(resp, "_backgate_login_")
	if lc == nil || lc.Domain != "corp.localhost" || lc.Path != "/_backgate/callback" || !lc.HttpOnly ||
		lc.SameSite != http.SameSiteLaxMode || lc.MaxAge != 600 {
		t.Fatalf("login cookie attributes wrong: %+v", lc)
	}
	resp, _ = e.get(authz.String())
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, e.authURL+"/_backgate/callback?") {
		t.Fatalf("provider redirected to %q", cb)
	}
	resp, body := e.get(cb)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != e.appURL+"/docs/page?q=1" {
		t.Fatalf("callback: %d Location=%q body=%q\nlogs:\n%s", resp.StatusCode, resp.Header.Get("Location"), body, e.logs)
	}
	sc := findSetCookie(resp, "_backgate=")
	if sc == nil || sc.Name != "_backgate" || sc.Domain != "corp.localhost" || sc.Path != "/" || !sc.HttpOnly ||
		sc.SameSite != http.SameSiteLaxMode || sc.Secure {
		t.Fatalf("session cookie attributes wrong: %+v", sc)
	}
	if del := findSetCookie(resp, "_backgate_login_"); del == nil || del.MaxAge >= 0 {
		t.Errorf("callback did not delete the login cookie: %+v", del)
	}
	w := e.login("/docs/page?q=1")
	want := whoami{Sub: "user:default/alice", Email: "alice@corp.example", Name: "Alice", Username: "alice",
		Groups: []string{"group:default/team-a"}, Path: "/docs/page?q=1", ID: w.ID}
	if !equalWhoami(w, want) || w.ID == "" {
		t.Fatalf("session = %+v, want %+v", w, want)
	}

	// A second login gets a new session id (no fixation).
	e.jar, _ = cookiejar.New(nil)
	e.client.Jar = e.jar
	w2 := e.login("/")
	if w2.ID == "" || w2.ID == w.ID {
		t.Errorf("second login reused session id %q", w2.ID)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func equalWhoami(a, b whoami) bool {
	return a.ID == b.ID && a.Sub == b.Sub && a.Email == b.Email && a.Name == b.Name &&
		a.Username == b.Username && a.Path == b.Path && slices.Equal(a.Groups, b.Groups)
}

func TestConcurrentLoginsInTabs(t *testing.T) {
	e := newEnv(t, authtest.Options{}, nil)
	cb1 := e.startLogin("/tab-one")
	cb2 := e.startLogin("/tab-two")
	resp, _ := e.get(cb1.String())
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != e.appURL+"/tab-one" {
		t.Fatalf("tab one callback: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = e.get(cb2.String())
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != e.appURL+"/tab-two" {
		t.Fatalf("tab two callback: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestCallbackRejects(t *testing.T) {
	tests := []struct {
		name   string
		mis    authtest.Misbehavior
		tamper func(e *env, cb *url.URL) // change the callback URL or the jar
		want   int
		log    string
	}{
		{name: "wrong nonce", mis: authtest.WrongNonce, want: 401, log: "nonce"},
		{name: "expired id token", mis: authtest.ExpiredIDToken, want: 401, log: "expired"},
		{name: "wrong audience", mis: authtest.WrongAudience, want: 401, log: "audience"},
		{name: "wrong issuer", mis: authtest.WrongIssuer, want: 401, log: "different provider"},
		{name: "alg none", mis: authtest.AlgNone, want: 401, log: "malformed jwt"},
		{name: "HS256 with public key", mis: authtest.HS256WithPublicKey, want: 401, log: "malformed jwt"},
		{name: "unknown kid", mis: authtest.UnknownKID, want: 401, log: "verify"},
		{name: "iat in the future", mis: authtest.FutureIssuedAt, want: 401, log: "iat"},
		{name: "wrong state", want: 400, log: "no login cookie", tamper: func(e *env, cb *url.URL) {
			q := cb.Query()
			q.Set("state", q.Get("state")+"x")
			cb.RawQuery = q.Encode()
		}},
		{name: "missing state", want: 400, log: "missing or oversized state", tamper: func(e *env, cb *url.URL) {
			q := cb.Query()
			q.Del("state")
			cb.RawQuery = q.Encode()
		}},
		{name: "state of another login", want: 400, log: "no login cookie", tamper: func(e *env, cb *url.URL) {
			other := e.startLogin("/other")
			e.jar, _ = cookiejar.New(nil) // keep no login cookie for either
			e.client.Jar = e.jar
			q := cb.Query()
			q.Set("state", other.Query().Get("state"))
			cb.RawQuery = q.Encode()
		}},
		{name: "login cookie expired", want: 400, log: "outside", tamper: func(e *env, cb *url.URL) {
			e.clock.Advance(auth.LoginTTL + time.Minute)
		}},
		{name: "provider error", want: 403, log: "access_denied", tamper: func(e *env, cb *url.URL) {
			q := cb.Query()
			q.Del("code")
			q.Set("error", "access_denied")
			cb.RawQuery = q.Encode()
		}},
		{name: "iss parameter of another provider", want: 400, log: "iss parameter mismatch", tamper: func(e *env, cb *url.URL) {
			q := cb.Query()
			q.Set("iss", "https://evil.example")
			cb.RawQuery = q.Encode()
		}},
		{name: "wrong code", want: 401, log: "rejected", tamper: func(e *env, cb *url.URL) {
			q := cb.Query()
			q.Set("code", "forged")
			cb.RawQuery = q.Encode()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, authtest.Options{}, nil)
			e.op.SetMisbehavior(tc.mis)
			cb := e.startLogin("/x")
			if tc.tamper != nil {
				tc.tamper(e, cb)
			}
			resp, body := e.get(cb.String())
			if resp.StatusCode != tc.want {
				t.Fatalf("callback status = %d (%q), want %d\nlogs:\n%s", resp.StatusCode, body, tc.want, e.logs)
			}
			if c := findSetCookie(resp, "_backgate="); c != nil && c.MaxAge >= 0 {
				t.Fatalf("a session cookie was set on failure: %+v", c)
			}
			if e.sessionCookie() != nil {
				t.Fatal("browser holds a session cookie after a failed login")
			}
			if !strings.Contains(e.logs.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, e.logs)
			}
		})
	}
}

func TestReplayedCode(t *testing.T) {
	e := newEnv(t, authtest.Options{}, nil)
	cb := e.startLogin("/x")
	loginCookies := e.jar.Cookies(mustURL(e.authURL + "/_backgate/callback"))
	if resp, _ := e.get(cb.String()); resp.StatusCode != http.StatusFound {
		t.Fatalf("first callback: %d", resp.StatusCode)
	}
	// Replaying the callback URL alone fails: the login cookie is single use.
	if resp, _ := e.get(cb.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed callback without login cookie: %d, want 400", resp.StatusCode)
	}
	// Even with the login cookie restored, the provider refuses the used code.
	e.jar, _ = cookiejar.New(nil)
	e.client.Jar = e.jar
	e.jar.SetCookies(mustURL(e.authURL+"/_backgate/callback"), loginCookies)
	resp, body := e.get(cb.String())
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed code: %d %q, want 401\nlogs:\n%s", resp.StatusCode, body, e.logs)
	}
	if e.sessionCookie() != nil {
		t.Fatal("replayed code produced a session")
	}
}

func TestProviderDownAtLogin(t *testing.T) {
	e := newEnv(t, authtest.Options{}, nil)
	e.op.SetDown(true)
	resp, body := e.get(e.appURL + "/x")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "unavailable") {
		t.Fatalf("login with provider down: %d %q, want 503 page", resp.StatusCode, body)
	}
	if !strings.Contains(e.logs.String(), "discovery") || !strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("no error log line about discovery:\n%s", e.logs)
	}
	if err := e.a.Ready(context.Background()); !errors.Is(err, auth.ErrProviderUnavailable) {
		t.Errorf("Ready = %v, want ErrProviderUnavailable", err)
	}
	// Back up: after the retry delay discovery succeeds and login works.
	e.op.SetDown(false)
	e.clock.Advance(10 * time.Second)
	if w := e.login("/x"); w.Sub != "user:default/alice" {
		t.Fatalf("login after recovery: %+v", w)
	}
}

func TestProviderDownDuringCallback(t *testing.T) {
	e := newEnv(t, authtest.Options{}, nil)
	cb := e.startLogin("/x")
	e.op.SetDown(true)
	resp, body := e.get(cb.String())
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("callback with provider down: %d %q, want 503", resp.StatusCode, body)
	}
}

func TestProviderDownAfterLogin(t *testing.T) {
	e := newEnv(t, authtest.Options{}, nil)
	e.login("/")
	e.op.Close()
	if w := e.login("/still-works"); w.Sub != "user:default/alice" {
		t.Fatalf("session after provider stopped: %+v", w)
	}
	// A refresh is due but the provider is unreachable: the session stays.
	e.clock.Advance(6 * time.Minute)
	if w := e.login("/after-refresh-attempt"); w.Sub != "user:default/alice" {
		t.Fatalf("session after failed refresh attempt: %+v", w)
	}
	if !strings.Contains(e.logs.String(), "refresh postponed") {
		t.Errorf("no log line about the postponed refresh:\n%s", e.logs)
	}
}

func TestRefreshPicksUpChangedGroups(t *testing.T) {
	for _, opOpts := range []authtest.Options{{}, {RotateRefreshTokens: true}, {GroupsOnlyInUserInfo: true}} {
		e := newEnv(t, opOpts, nil)
		if w := e.login("/"); !slices.Equal(w.Groups, []string{"group:default/team-a"}) || w.Email != "alice@corp.example" {
			t.Fatalf("%+v: initial session %+v", opOpts, w)
		}
		e.op.SetUser(authtest.User{Subject: "user:default/alice", Email: "alice@corp.example", Name: "Alice",
			Username: "alice", Groups: []string{"group:default/team-a", "group:default/admins"}})
		e.clock.Advance(4 * time.Minute)
		if w := e.login("/"); len(w.Groups) != 1 {
			t.Fatalf("%+v: refreshed before the interval: %+v", opOpts, w)
		}
		e.clock.Advance(2 * time.Minute)
		w := e.login("/")
		if !slices.Equal(w.Groups, []string{"group:default/team-a", "group:default/admins"}) {
			t.Fatalf("%+v: groups after refresh = %v", opOpts, w.Groups)
		}
		if n := e.op.Refreshes(); n != 1 {
			t.Errorf("%+v: provider saw %d refreshes, want 1", opOpts, n)
		}
		// Rotation: the second refresh must use the rotated token.
		e.clock.Advance(6 * time.Minute)
		if w := e.login("/"); w.Sub == "" {
			t.Fatalf("%+v: second refresh failed", opOpts)
		}
		if n := e.op.Refreshes(); n != 2 {
			t.Errorf("%+v: provider saw %d refreshes, want 2", opOpts, n)
		}
	}
}

func TestRefreshRejectedEndsSession(t *testing.T) {
	e := newEnv(t, authtest.Options{}, nil)
	e.login("/")
	e.op.RevokeRefreshTokens()
	e.clock.Advance(6 * time.Minute)
	resp, _ := e.get(e.appURL + "/")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.op.Issuer()) {
		t.Fatalf("after revoked refresh: %d Location=%q, want redirect to provider", resp.StatusCode, resp.Header.Get("Location"))
	}
	if e.sessionCookie() != nil {
		t.Fatal("session cookie not cleared after refresh rejection")
	}
	if !strings.Contains(e.logs.String(), "refresh rejected") {
		t.Errorf("no log line:\n%s", e.logs)
	}
}

func TestLogout(t *testing.T) {
	t.Run("rp-initiated", func(t *testing.T) {
		e := newEnv(t, authtest.Options{}, nil)
		e.login("/")
		resp, _ := e.get(e.appURL + "/_backgate/logout")
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), e.op.Issuer()+"/end_session?") {
			t.Fatalf("logout: %d Location=%q, want provider end_session", resp.StatusCode, resp.Header.Get("Location"))
		}
		if loc.Query().Get("client_id") != e.opts.ClientID || loc.Query().Get("post_logout_redirect_uri") != e.opts.PostLogoutRedirectURL {
			t.Errorf("end_session params: %v", loc.Query())
		}
		if e.sessionCookie() != nil {
			t.Fatal("session cookie survives logout")
		}
		final, body, _ := e.follow(loc.String())
		if final.StatusCode != 200 || body != "signed-out page" {
			t.Fatalf("after end_session: %d %q", final.StatusCode, body)
		}
		if n := len(e.op.EndSessionCalls()); n != 1 {
			t.Errorf("provider saw %d end_session calls", n)
		}
		if resp, _ := e.get(e.appURL + "/"); resp.StatusCode != http.StatusFound {
			t.Errorf("protected page after logout: %d, want redirect to login", resp.StatusCode)
		}
	})
	t.Run("local", func(t *testing.T) {
		e := newEnv(t, authtest.Options{NoEndSession: true}, func(o *auth.Options) { o.PostLogoutRedirectURL = "" })
		e.login("/")
		resp, body := e.get(e.appURL + "/_backgate/logout")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed out") {
			t.Fatalf("local logout: %d %q", resp.StatusCode, body)
		}
		if e.sessionCookie() != nil {
			t.Fatal("session cookie survives logout")
		}
		if n := len(e.op.EndSessionCalls()); n != 0 {
			t.Errorf("provider saw %d end_session calls", n)
		}
	})
}

func TestIdleTimeoutAndLifetime(t *testing.T) {
	e := newEnv(t, authtest.Options{NoRefreshTokens: true}, nil)
	e.login("/")
	// Active use keeps the session past the idle timeout...
	for range 3 {
		e.clock.Advance(50 * time.Minute)
		if resp, body := e.get(e.appURL + "/"); resp.StatusCode != 200 {
			t.Fatalf("active session rejected: %d %q\nlogs:\n%s", resp.StatusCode, body, e.logs)
		}
	}
	// ...but an hour without requests ends it.
	e.clock.Advance(61 * time.Minute)
	if resp, _ := e.get(e.appURL + "/"); resp.StatusCode != http.StatusFound {
		t.Fatalf("idle session accepted: %d", resp.StatusCode)
	}
	if !strings.Contains(e.logs.String(), "idle since") {
		t.Errorf("no debug log for idle session:\n%s", e.logs)
	}

	// The absolute lifetime ends even an active session.
	e.login("/")
	start := e.clock.Now()
	for e.clock.Now().Sub(start) < 12*time.Hour-40*time.Minute {
		e.clock.Advance(40 * time.Minute)
		if resp, _ := e.get(e.appURL + "/"); resp.StatusCode != 200 {
			t.Fatalf("session rejected at +%v", e.clock.Now().Sub(start))
		}
	}
	e.clock.Advance(12*time.Hour - e.clock.Now().Sub(start))
	if resp, _ := e.get(e.appURL + "/"); resp.StatusCode != http.StatusFound {
		t.Fatalf("session accepted at its expiry: %d", resp.StatusCode)
	}
	if !strings.Contains(e.logs.String(), "expired at") {
		t.Errorf("no debug log for expired session:\n%s", e.logs)
	}
}

func TestLoginRejectsBadReturnURL(t *testing.T) {
	e := newEnv(t, authtest.Options{}, nil)
	req := httptest.NewRequest("GET", e.appURL+"/x", nil)
	rec := httptest.NewRecorder()
	e.a.Login(rec, req, "https://evil.example/")
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Set-Cookie") != "" {
		t.Fatalf("Login with foreign return URL: %d, cookies %q", rec.Code, rec.Header().Get("Set-Cookie"))
	}
	// A request on a host that is not allowed cannot use a relative target.
	req = httptest.NewRequest("GET", "http://evil.corp.localhost/x", nil)
	rec = httptest.NewRecorder()
	e.a.Login(rec, req, "/x")
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("Login relative on foreign host: %d", rec.Code)
	}
}

func TestClockSkewIsBounded(t *testing.T) {
	const ttl = 5 * time.Minute
	tests := []struct {
		name   string
		opSkew time.Duration
		ok     bool
	}{
		{"in sync", 0, true},
		{"exp 20s ago, within 30s skew", -(ttl + 20*time.Second), true},
		{"exp 40s ago, beyond skew", -(ttl + 40*time.Second), false},
		{"iat 20s ahead, within skew", 20 * time.Second, true},
		{"iat 40s ahead, beyond skew", 40 * time.Second, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, authtest.Options{IDTokenTTL: ttl, SigningAlg: "ES256"}, nil)
			e.opSkew = tc.opSkew
			resp, body := e.get(e.startLogin("/").String())
			if got := resp.StatusCode == http.StatusFound; got != tc.ok {
				t.Fatalf("callback %d %q, want success=%v\nlogs:\n%s", resp.StatusCode, body, tc.ok, e.logs)
			}
		})
	}
}

// The requests of one page arrive together with the same cookie; with a
// provider that rotates refresh tokens they must share one refresh instead
// of presenting the same token several times (and being logged out).
func TestConcurrentRefreshSharesOneGrant(t *testing.T) {
	e := newEnv(t, authtest.Options{RotateRefreshTokens: true}, nil)
	e.login("/")
	e.op.SetUser(authtest.User{Subject: "user:default/alice", Groups: []string{"group:default/new"}})
	e.clock.Advance(6 * time.Minute)
	cookie := e.sessionCookie()
	const n = 8
	var wg sync.WaitGroup
	codes := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", e.appURL+"/asset", nil)
			req.AddCookie(cookie)
			resp, err := (&http.Client{Transport: e.client.Transport, CheckRedirect: e.client.CheckRedirect}).Do(req)
			if err != nil {
				codes <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes <- fmt.Sprintf("%d %t", resp.StatusCode, strings.Contains(string(b), "group:default/new"))
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != "200 true" {
			t.Errorf("parallel request: %s\nlogs:\n%s", c, e.logs)
		}
	}
	if got := e.op.Refreshes(); got != 1 {
		t.Errorf("provider saw %d refresh grants, want 1", got)
	}
	// A late request with the pre-refresh cookie also reuses the result.
	req, _ := http.NewRequest("GET", e.appURL+"/late", nil)
	req.AddCookie(cookie)
	resp, err := (&http.Client{Transport: e.client.Transport, CheckRedirect: e.client.CheckRedirect}).Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("late request with old cookie: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := e.op.Refreshes(); got != 1 {
		t.Errorf("provider saw %d refresh grants after the late request, want 1", got)
	}
}
