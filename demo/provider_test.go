package demo

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const (
	testRedirect   = "http://app.localhost:8080/.backgate/callback"
	testPostLogout = "http://app.localhost:8080/.backgate/signed-out"
	testClientID   = "backgate"
	testSecret     = "backgate-demo-secret"
)

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// fakeClock is an injectable clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testIdP struct {
	issuer   string
	srv      *httptest.Server
	provider *oidc.Provider
	oauth    *oauth2.Config
	ctx      context.Context
	clock    *fakeClock
}

// startIdP runs the provider on a loopback port and discovers it with go-oidc.
func startIdP(t *testing.T, secret string) *testIdP {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	clock := &fakeClock{t: time.Now()}
	h, err := NewProvider(ProviderOptions{
		Issuer: issuer,
		Clients: []DemoClient{{
			ID: testClientID, Secret: secret,
			RedirectURIs:           []string{testRedirect},
			PostLogoutRedirectURIs: []string{testPostLogout},
		}},
		Now:        clock.Now,
		SigningKey: testKey(),
	})
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)

	ctx := oidc.ClientContext(context.Background(), srv.Client())
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &testIdP{
		issuer: issuer, srv: srv, provider: p, ctx: ctx, clock: clock,
		oauth: &oauth2.Config{
			ClientID: testClientID, ClientSecret: secret, Endpoint: p.Endpoint(),
			RedirectURL: testRedirect, Scopes: []string{oidc.ScopeOpenID, "profile", "email"},
		},
	}
}

// browser is an HTTP client with a cookie jar that stops at the relying
// party's URLs, as a browser would hand them to the app.
func (idp *testIdP) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == "app.localhost:8080" || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type authStart struct {
	verifier, state, nonce string
	loginURL               *url.URL // final URL after /authorize, the login page
	resp                   *http.Response
}

func (idp *testIdP) authorize(t *testing.T, b *http.Client, extra ...oauth2.AuthCodeOption) authStart {
	t.Helper()
	s := authStart{verifier: oauth2.GenerateVerifier(), state: "st-" + rand.Text(), nonce: "n-" + rand.Text()}
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(s.verifier), oidc.Nonce(s.nonce)}, extra...)
	resp, err := b.Get(idp.oauth.AuthCodeURL(s.state, opts...))
	if err != nil {
		t.Fatalf("GET authorize: %v", err)
	}
	s.resp, s.loginURL = resp, resp.Request.URL
	return s
}

func postLogin(t *testing.T, b *http.Client, idp *testIdP, id, user, pass string) *http.Response {
	t.Helper()
	resp, err := b.PostForm(idp.issuer+LoginPath, url.Values{"id": {id}, "username": {user}, "password": {pass}})
	if err != nil {
		t.Fatalf("POST login: %v", err)
	}
	return resp
}

// codeFrom checks that resp redirects to the relying party and returns the code.
func codeFrom(t *testing.T, resp *http.Response, state string) string {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302 to the app; body: %s", resp.StatusCode, readBody(t, resp))
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirect {
		t.Fatalf("redirected to %q, want %q", got, testRedirect)
	}
	q := loc.Query()
	if q.Get("error") != "" {
		t.Fatalf("authorization error %q: %q", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != state {
		t.Fatalf("state %q, want %q", q.Get("state"), state)
	}
	if q.Get("code") == "" {
		t.Fatal("no code in redirect")
	}
	return q.Get("code")
}

type idClaims struct {
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	Username      string   `json:"preferred_username"`
	Groups        []string `json:"groups"`
}

func TestProviderCodeFlow(t *testing.T) {
	for _, tc := range []struct {
		name, secret string
	}{
		{name: "confidential client", secret: testSecret},
		{name: "public client with PKCE", secret: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idp := startIdP(t, tc.secret)
			b := idp.browser(t)

			// 1. /authorize lands on the login page, which lists the demo users.
			start := idp.authorize(t, b)
			page := readBody(t, start.resp)
			if start.resp.StatusCode != http.StatusOK || start.loginURL.Path != LoginPath {
				t.Fatalf("authorize ended at %s with %d, want the login page", start.loginURL, start.resp.StatusCode)
			}
			for _, u := range DefaultUsers() {
				for _, want := range []string{u.Username, u.Password, u.Email, u.About} {
					if !strings.Contains(page, want) {
						t.Errorf("login page lacks %q", want)
					}
				}
			}
			id := start.loginURL.Query().Get("authRequestID")

			// 2. A wrong password keeps the user on the page with an error.
			resp := postLogin(t, b, idp, id, "alice", "bob-demo")
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong username or password") ||
				!strings.Contains(body, `name="password"`) {
				t.Fatalf("wrong password: status %d, body lacks the error or the form", resp.StatusCode)
			}
			resp = postLogin(t, b, idp, id, "mallory", "alice-demo")
			if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong username or password") {
				t.Fatalf("unknown user: status %d", resp.StatusCode)
			}

			// 3. The right password redirects to the app with a code.
			code := codeFrom(t, postLogin(t, b, idp, id, "alice", "alice-demo"), start.state)

			// 4. The code is redeemed with the PKCE verifier; a wrong verifier fails first.
			if _, err := idp.oauth.Exchange(idp.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
				t.Fatal("exchange with a wrong code_verifier succeeded")
			}
			tok, err := idp.oauth.Exchange(idp.ctx, code, oauth2.VerifierOption(start.verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if _, err := idp.oauth.Exchange(idp.ctx, code, oauth2.VerifierOption(start.verifier)); err == nil {
				t.Fatal("a code was redeemed twice")
			}

			// 5. The ID token verifies with go-oidc against the JWKS and carries the claims.
			rawID, _ := tok.Extra("id_token").(string)
			verifier := idp.provider.Verifier(&oidc.Config{ClientID: testClientID})
			idt, err := verifier.Verify(idp.ctx, rawID)
			if err != nil {
				t.Fatalf("verify ID token: %v", err)
			}
			if idt.Nonce != start.nonce || idt.Subject != "alice" || idt.Issuer != idp.issuer {
				t.Errorf("ID token nonce=%q sub=%q iss=%q", idt.Nonce, idt.Subject, idt.Issuer)
			}
			var c idClaims
			if err := idt.Claims(&c); err != nil {
				t.Fatal(err)
			}
			want := idClaims{Email: "alice@example.com", EmailVerified: true, Name: "Alice Anders", Username: "alice", Groups: []string{"team-c"}}
			if !equalClaims(c, want) {
				t.Errorf("ID token claims %+v, want %+v", c, want)
			}
			tampered := rawID[:len(rawID)-4] + flip(rawID[len(rawID)-4:])
			if _, err := verifier.Verify(idp.ctx, tampered); err == nil {
				t.Error("a tampered ID token verified")
			}

			// 6. userinfo answers the same identity.
			ui, err := idp.provider.UserInfo(idp.ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			var uc idClaims
			if err := ui.Claims(&uc); err != nil {
				t.Fatal(err)
			}
			if ui.Subject != "alice" || !equalClaims(uc, want) {
				t.Errorf("userinfo sub=%q claims %+v, want %+v", ui.Subject, uc, want)
			}

			// 7. The refresh token is always issued, works once and rotates.
			if tok.RefreshToken == "" {
				t.Fatal("no refresh token")
			}
			refreshed, err := idp.oauth.TokenSource(idp.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if refreshed.RefreshToken == "" || refreshed.RefreshToken == tok.RefreshToken || refreshed.AccessToken == tok.AccessToken {
				t.Error("refresh did not rotate the tokens")
			}
			newID, _ := refreshed.Extra("id_token").(string)
			idt2, err := verifier.Verify(idp.ctx, newID)
			if err != nil {
				t.Fatalf("verify refreshed ID token: %v", err)
			}
			var c2 idClaims
			if err := idt2.Claims(&c2); err != nil || !equalClaims(c2, want) {
				t.Errorf("refreshed ID token claims %+v (%v)", c2, err)
			}
			if _, err := idp.oauth.TokenSource(idp.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
				t.Error("a used refresh token worked again")
			}

			// 8. A second app's login completes from the provider's session.
			again := idp.authorize(t, b)
			codeFrom(t, again.resp, again.state)
			// ...unless the app asks for prompt=login.
			forced := idp.authorize(t, b, oauth2.SetAuthURLParam("prompt", "login"))
			if body := readBody(t, forced.resp); forced.loginURL.Path != LoginPath || !strings.Contains(body, "alice-demo") {
				t.Errorf("prompt=login ended at %s, want the login page", forced.loginURL)
			}

			// 9. end_session redirects to the registered post-logout URI and forgets the session.
			endURL := idp.issuer + "/end_session?" + url.Values{
				"id_token_hint":            {newID},
				"post_logout_redirect_uri": {testPostLogout},
				"state":                    {"bye"},
			}.Encode()
			resp, err = b.Get(endURL)
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			loc, _ := resp.Location()
			if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), testPostLogout) || loc.Query().Get("state") != "bye" {
				t.Fatalf("end_session: status %d location %v", resp.StatusCode, loc)
			}
			if _, err := idp.oauth.TokenSource(idp.ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); err == nil {
				t.Error("refresh token still works after end_session")
			}
			after := idp.authorize(t, b)
			if body := readBody(t, after.resp); after.loginURL.Path != LoginPath || !strings.Contains(body, "alice-demo") {
				t.Errorf("after end_session, authorize ended at %s, want the login page", after.loginURL)
			}
		})
	}
}

func TestProviderRejects(t *testing.T) {
	idp := startIdP(t, testSecret)
	for _, tc := range []struct {
		name      string
		params    url.Values
		wantError string // error parameter in the redirect to the app; "" means an error page at the IdP
	}{
		{name: "no PKCE", params: url.Values{"code_challenge": nil}, wantError: "invalid_request"},
		{name: "plain PKCE", params: url.Values{"code_challenge_method": {"plain"}}, wantError: "invalid_request"},
		{name: "prompt none", params: url.Values{"prompt": {"none"}}, wantError: "login_required"},
		{name: "unregistered redirect_uri", params: url.Values{"redirect_uri": {"http://evil.localhost/cb"}}},
		{name: "unknown client", params: url.Values{"client_id": {"nobody"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(idp.oauth.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			q := u.Query()
			for k, v := range tc.params {
				if v == nil {
					q.Del(k)
				} else {
					q[k] = v
				}
			}
			u.RawQuery = q.Encode()
			resp, err := idp.browser(t).Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.Request.URL.Path == LoginPath {
				t.Fatalf("request reached the login page")
			}
			loc, _ := resp.Location()
			if tc.wantError == "" {
				if loc != nil && loc.Host == "evil.localhost" {
					t.Fatalf("redirected to the unregistered URI %s", loc)
				}
				if resp.StatusCode < 400 {
					t.Fatalf("status %d, want an error page; body %s", resp.StatusCode, body)
				}
				return
			}
			if loc == nil || loc.Query().Get("error") != tc.wantError {
				t.Fatalf("status %d location %v, want error=%s", resp.StatusCode, loc, tc.wantError)
			}
		})
	}
}

func TestProviderLoginPageErrors(t *testing.T) {
	idp := startIdP(t, testSecret)
	b := idp.browser(t)
	for _, tc := range []struct {
		name   string
		do     func() *http.Response
		status int
		want   string
	}{
		{name: "GET unknown request", status: 400, want: "unknown or has expired", do: func() *http.Response {
			r, _ := b.Get(idp.issuer + LoginPath + "?authRequestID=nope")
			return r
		}},
		{name: "POST unknown request", status: 400, want: "unknown or has expired", do: func() *http.Response {
			return postLogin(t, b, idp, "nope", "alice", "alice-demo")
		}},
		{name: "PUT", status: 405, want: "method not allowed", do: func() *http.Response {
			req, _ := http.NewRequest(http.MethodPut, idp.issuer+LoginPath, nil)
			r, _ := b.Do(req)
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.do()
			if resp == nil {
				t.Fatal("no response")
			}
			if body := readBody(t, resp); resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("status %d, want %d with %q; body %s", resp.StatusCode, tc.status, tc.want, body)
			}
		})
	}
}

func TestProviderExpiry(t *testing.T) {
	idp := startIdP(t, testSecret)
	b := idp.browser(t)

	// An auth request left on the login page too long cannot be completed.
	stale := idp.authorize(t, b)
	readBody(t, stale.resp)
	idp.clock.Add(authRequestLifetime + time.Second)
	resp := postLogin(t, b, idp, stale.loginURL.Query().Get("authRequestID"), "bob", "bob-demo")
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired") {
		t.Fatalf("stale auth request: status %d", resp.StatusCode)
	}

	// A refresh token stops working after its lifetime.
	start := idp.authorize(t, b)
	readBody(t, start.resp)
	code := codeFrom(t, postLogin(t, b, idp, start.loginURL.Query().Get("authRequestID"), "bob", "bob-demo"), start.state)
	tok, err := idp.oauth.Exchange(idp.ctx, code, oauth2.VerifierOption(start.verifier))
	if err != nil {
		t.Fatal(err)
	}
	idp.clock.Add(DefaultRefreshLifetime + time.Second)
	_, err = idp.oauth.TokenSource(idp.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("expired refresh token: err %v, want invalid_grant", err)
	}
	// ...and so does the access token at userinfo.
	if _, err := idp.provider.UserInfo(idp.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("userinfo accepted an expired access token")
	}
}

func TestNewProviderOptions(t *testing.T) {
	good := DemoClient{ID: "c", RedirectURIs: []string{testRedirect}}
	for _, tc := range []struct {
		name string
		opts ProviderOptions
		want string // substring of the error; "" means success
	}{
		{name: "ok", opts: ProviderOptions{Issuer: "http://127.0.0.1:9000", Clients: []DemoClient{good}}},
		{name: "no issuer", opts: ProviderOptions{Clients: []DemoClient{good}}, want: "Issuer"},
		{name: "issuer with path", opts: ProviderOptions{Issuer: "http://x.localhost/a", Clients: []DemoClient{good}}, want: "no path"},
		{name: "issuer ftp", opts: ProviderOptions{Issuer: "ftp://x", Clients: []DemoClient{good}}, want: "scheme"},
		{name: "no clients", opts: ProviderOptions{Issuer: "http://x.localhost"}, want: "Clients"},
		{name: "client without redirect", opts: ProviderOptions{Issuer: "http://x.localhost", Clients: []DemoClient{{ID: "c"}}}, want: "RedirectURIs"},
		{name: "relative redirect", opts: ProviderOptions{Issuer: "http://x.localhost", Clients: []DemoClient{{ID: "c", RedirectURIs: []string{"/cb"}}}}, want: "absolute"},
		{name: "duplicate client", opts: ProviderOptions{Issuer: "http://x.localhost", Clients: []DemoClient{good, good}}, want: "duplicate"},
		{name: "user without password", opts: ProviderOptions{Issuer: "http://x.localhost", Clients: []DemoClient{good},
			Users: []DemoUser{{Username: "u", Email: "u@example.com"}}}, want: "Password"},
		{name: "user without email", opts: ProviderOptions{Issuer: "http://x.localhost", Clients: []DemoClient{good},
			Users: []DemoUser{{Username: "u", Password: "p"}}}, want: "Email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.SigningKey = testKey()
			_, err := NewProvider(tc.opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want ErrInvalidOptions mentioning %q", err, tc.want)
			}
		})
	}
}

func equalClaims(a, b idClaims) bool {
	return a.Email == b.Email && a.EmailVerified == b.EmailVerified && a.Name == b.Name &&
		a.Username == b.Username && slices.Equal(a.Groups, b.Groups)
}

func flip(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

func TestProviderEndSession(t *testing.T) {
	idp := startIdP(t, testSecret)
	for _, tc := range []struct {
		name     string
		params   url.Values
		wantLoc  string // prefix of the redirect; "" means no redirect to the app
		wantCode int
	}{
		{name: "client_id and registered URI", params: url.Values{"client_id": {testClientID}, "post_logout_redirect_uri": {testPostLogout}},
			wantLoc: testPostLogout, wantCode: http.StatusFound},
		{name: "no parameters", params: url.Values{}, wantLoc: LoggedOutPath, wantCode: http.StatusFound},
		{name: "unregistered URI", params: url.Values{"client_id": {testClientID}, "post_logout_redirect_uri": {"http://evil.localhost/"}},
			wantCode: http.StatusBadRequest},
		{name: "bad id_token_hint", params: url.Values{"id_token_hint": {"e30.e30.e30"}, "post_logout_redirect_uri": {testPostLogout}},
			wantCode: http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := idp.browser(t)
			b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := b.Get(idp.issuer + "/end_session?" + tc.params.Encode())
			if err != nil {
				t.Fatal(err)
			}
			readBody(t, resp)
			loc := resp.Header.Get("Location")
			if resp.StatusCode != tc.wantCode || (tc.wantLoc != "" && !strings.HasPrefix(loc, tc.wantLoc)) ||
				(tc.wantLoc == "" && strings.Contains(loc, "evil")) {
				t.Fatalf("status %d location %q, want %d %q", resp.StatusCode, loc, tc.wantCode, tc.wantLoc)
			}
		})
	}
	// The logged-out page clears the provider's session cookie.
	resp, err := http.Get(idp.issuer + LoggedOutPath)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if !strings.Contains(body, "Signed out") || !strings.Contains(resp.Header.Get("Set-Cookie"), sessionCookie+"=;") {
		t.Errorf("logged-out page: set-cookie %q", resp.Header.Get("Set-Cookie"))
	}
}
