package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/policy"
	"github.com/backgate/backgate/proxy/auth/authtest"
	"github.com/backgate/backgate/proxy/edgetoken"
	"github.com/backgate/backgate/proxy/signer"
)

// TestServeEndToEnd runs the serve wiring from a real config file: a login
// through an in-process OpenID Provider over loopback, a decision by the
// shipped policy over a catalog file, a request reaching the upstream with an
// edge token that verifies with the keys in data_dir, a deny for a
// non-owner, forged headers stripped, and a graceful shutdown that lets an
// in-flight request finish.
func TestServeEndToEnd(t *testing.T) {
	idp := authtest.New(t, authtest.Options{})
	dataDir := t.TempDir()

	inFlight := make(chan struct{})
	release := make(chan struct{})
	var got atomic.Pointer[http.Request]
	upstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Clone(context.Background()))
		if r.URL.Path == "/slow" {
			close(inFlight)
			<-release
		}
		io.WriteString(w, "hello from upstream")
	})}
	upLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go upstream.Serve(upLn)
	defer upstream.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	os.WriteFile(cat, []byte(`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments-team}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [payments-team]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bob}
spec: {profile: {email: bob@example.com}, memberOf: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: payments}
spec: {type: service, lifecycle: production, owner: payments-team}
`), 0o600)
	cfgFile := filepath.Join(t.TempDir(), "backgate.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`server:
  listen: 127.0.0.1:%d
  external_url: http://gate.corp.localhost:%d
data_dir: %s
oidc:
  issuer: %s
  client_id: %s
  client_secret: {env: OIDC_SECRET}
session:
  cookie_domain: corp.localhost
  insecure: true
routes:
  - host: pay.corp.localhost
    upstream: http://%s
    service: component:default/payments
    environment: staging
signing:
  strip_headers: [X-Remote-User]
catalog:
  files: [%s]
log: {level: warn}
`, port, port, dataDir, idp.Issuer(), idp.ClientID(), upLn.Addr(), cat)), 0o600)

	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Stdout: io.Discard, Stderr: testWriter{t}, Getenv: func(k string) string {
		if k == "OIDC_SECRET" {
			return idp.ClientSecret()
		}
		return ""
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := Build(ctx, cfg, e, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()

	// A client that sends every *.corp.localhost name to the proxy.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasSuffix(strings.Split(addr, ":")[0], ".corp.localhost") {
			addr = ln.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	client := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Transport: &http.Transport{DialContext: dial}, Timeout: 20 * time.Second}
	}
	replay0 := func(cookies []*http.Cookie, u *url.URL) *http.Client {
		c := client()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		c.Jar.SetCookies(u, cookies)
		return c
	}
	get := func(c *http.Client, u string, hdr http.Header) (*http.Response, string) {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Accept", "text/html")
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	app := fmt.Sprintf("http://pay.corp.localhost:%d", port)

	// alice: login, then through with a verifiable edge token.
	idp.SetUser(authtest.User{Subject: "alice-sub", Email: "alice@example.com", Name: "Alice"})
	alice := client()
	resp, body := get(alice, app+"/account?x=1", http.Header{"X-Backgate-Edge": {"forged"}, "X_Backgate_User": {"mallory"}, "X_remote_user": {"mallory"}})
	if resp.StatusCode != 200 || body != "hello from upstream" {
		t.Fatalf("alice: %d %s", resp.StatusCode, body)
	}
	if resp.Request.URL.String() != app+"/account?x=1" {
		t.Errorf("after login alice is at %s", resp.Request.URL)
	}
	r := got.Load()
	kr, err := signer.OpenKeyring(signer.KeyringOptions{Dir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := edgetoken.Verifier{Keys: kr.EdgeSecret, Skew: time.Minute}.Verify(r.Header.Get("X-Backgate-Edge"), r.Host)
	if err != nil {
		t.Fatalf("edge token at the upstream does not verify: %v (%q)", err, r.Header.Get("X-Backgate-Edge"))
	}
	if claims.User != "alice@example.com" || claims.Service != "component:default/payments" || claims.Environment != "staging" {
		t.Errorf("edge claims %+v", claims)
	}
	if r.Header.Get("X-Backgate-Assertion") == "" || len(r.Header.Values("X-Backgate-Edge")) != 1 {
		t.Errorf("assertion/edge headers wrong: %v", r.Header)
	}
	for k := range r.Header {
		if l := strings.ToLower(k); strings.Contains(l, "backgate_user") || strings.Contains(l, "remote") {
			t.Errorf("forged %s reached the upstream", k)
		}
	}

	// Logout ends the session at once, caches included: alice's old cookie,
	// replayed, is sent to log in again instead of being served.
	appURL, _ := url.Parse(app)
	oldCookies := alice.Jar.Cookies(appURL)
	logoutURL := fmt.Sprintf("http://gate.corp.localhost:%d/_backgate/logout", port)
	// A request that does not say it comes from this origin only gets the
	// confirmation page (no cross-site logout); its button posts back.
	if resp, body := get(alice, logoutURL, nil); resp.StatusCode != 200 || !strings.Contains(body, `method="post"`) {
		t.Fatalf("logout without fetch metadata: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(replay0(oldCookies, appURL), app+"/account", nil); resp.StatusCode != 200 {
		t.Fatalf("the session ended without a confirmed logout: %d", resp.StatusCode)
	}
	get(alice, logoutURL, http.Header{"Sec-Fetch-Site": {"same-origin"}}) // the confirmed sign-out
	replay := client()
	replay.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	replay.Jar.SetCookies(appURL, oldCookies)
	got.Store(nil)
	if resp, _ := get(replay, app+"/account", nil); resp.StatusCode != http.StatusFound || got.Load() != nil {
		t.Fatalf("replayed cookie after logout: %d, reached upstream: %v", resp.StatusCode, got.Load() != nil)
	}
	idp.SetUser(authtest.User{Subject: "alice-sub", Email: "alice@example.com", Name: "Alice"})
	alice = client() // a fresh login for the shutdown check below
	if resp, _ := get(alice, app+"/account", nil); resp.StatusCode != 200 {
		t.Fatalf("alice after logging in again: %d", resp.StatusCode)
	}

	// bob: logged in, but denied by the policy.
	idp.SetUser(authtest.User{Subject: "bob-sub", Email: "bob@example.com"})
	resp, body = get(client(), app+"/", nil)
	if resp.StatusCode != 403 || !strings.Contains(body, "bob@example.com") || !strings.Contains(body, "group:default/payments-team") {
		t.Fatalf("bob: %d %s", resp.StatusCode, body)
	}

	// readyz on backgate's own host.
	resp, body = get(client(), fmt.Sprintf("http://gate.corp.localhost:%d/readyz", port), nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "policy_revision: ") || !strings.Contains(body, "catalog_revision: ") ||
		!strings.Contains(body, "policy_evaluator: planned\n") {
		t.Fatalf("readyz %d %s", resp.StatusCode, body)
	}
	// Run applied server.gc_percent (the default) to the process.
	if p := debug.SetGCPercent(-1); debug.SetGCPercent(p) != -1 || p != cfg.Server.GCPercent {
		t.Errorf("GC percent while serving = %d, want server.gc_percent %d", p, cfg.Server.GCPercent)
	}

	// Graceful shutdown: an in-flight request completes.
	slow := make(chan int, 1)
	go func() {
		resp, _ := get(alice, app+"/slow", nil)
		slow <- resp.StatusCode
	}()
	<-inFlight
	cancel()
	closed := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			closed = true
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if !closed {
		t.Error("listener still accepting 5s after shutdown began")
	}
	close(release)
	if code := <-slow; code != 200 {
		t.Errorf("in-flight request during shutdown: %d", code)
	}
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type stepClock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *stepClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.d) }
func (c *stepClock) Add(d time.Duration) { c.mu.Lock(); c.d += d; c.mu.Unlock() }

// TestStaleCatalogAndRefusedPolicy: past catalog.max_staleness every decision
// fails closed and /readyz says why; a policy change that does not compile
// is refused, the last good policy keeps deciding, and /readyz names it.
func TestStaleCatalogAndRefusedPolicy(t *testing.T) {
	clk := &stepClock{}
	idp := authtest.New(t, authtest.Options{Now: clk.Now})
	dir := t.TempDir()
	policyDir := filepath.Join(dir, "policy")
	if err := os.CopyFS(policyDir, os.DirFS("../../../rego")); err != nil {
		t.Fatal(err)
	}
	cat := filepath.Join(dir, "catalog.yaml")
	os.WriteFile(cat, []byte(`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [team]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: svc}
spec: {type: service, lifecycle: production, owner: team}
`), 0o600)
	cfgFile := filepath.Join(dir, "backgate.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`server: {external_url: "http://gate.localhost:1"}
data_dir: %s
oidc: {issuer: %s, client_id: %s, client_secret: {env: S}}
catalog: {files: [%s], max_staleness: 10m}
policy: {dir: %s}
access: {disabled: true}
`, filepath.Join(dir, "data"), idp.Issuer(), idp.ClientID(), cat, policyDir)), 0o600)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Stdout: io.Discard, Stderr: testWriter{t}, Getenv: func(string) string { return idp.ClientSecret() }}
	a, err := Build(context.Background(), cfg, e, Deps{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	in := policy.Input{User: policy.User{Subject: "a", Email: "alice@example.com"},
		Route: policy.Route{Service: "component:default/svc", Environment: "staging"}}
	decide := func() (policy.Decision, error) {
		in.Time = clk.Now()
		return staleGuard{a}.Decide(context.Background(), in)
	}
	if d, err := decide(); err != nil || !d.Allow {
		t.Fatalf("fresh catalog: %+v %v", d, err)
	}
	if err := a.ready(context.Background()); err != nil {
		t.Fatalf("ready: %v", err)
	}

	// A broken policy change: refused, the last good one keeps deciding.
	authz := filepath.Join(policyDir, "authz.rego")
	src, _ := os.ReadFile(authz)
	os.WriteFile(authz, append(src, []byte("\nbroken if input.usr == 1\n")...), 0o600)
	if err := a.engine.Reload(); err == nil {
		t.Fatal("broken policy accepted")
	}
	if d, err := decide(); err != nil || !d.Allow {
		t.Fatalf("after a refused reload: %+v %v", d, err)
	}
	if st := a.status(); !strings.Contains(st, "policy_refused: ") || !strings.Contains(st, "authz.rego:") {
		t.Fatalf("/readyz status does not name the refused change:\n%s", st)
	}

	// The catalog goes stale: fail closed, and /readyz says so.
	clk.Add(11 * time.Minute)
	if d, err := decide(); err == nil || d.Allow {
		t.Fatalf("stale catalog still decided: %+v %v", d, err)
	}
	if err := a.ready(context.Background()); err == nil || !strings.Contains(err.Error(), "catalog: stale") {
		t.Fatalf("ready with a stale catalog: %v", err)
	}
}

// TestPolicyEvaluatorSetting: policy.evaluator reaches the engine, and
// /readyz says which evaluator decides.
func TestPolicyEvaluatorSetting(t *testing.T) {
	for _, ev := range []string{"planned", "topdown"} {
		t.Run(ev, func(t *testing.T) {
			idp := authtest.New(t, authtest.Options{})
			dir := t.TempDir()
			cat := filepath.Join(dir, "catalog.yaml")
			if err := os.WriteFile(cat, []byte("apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team}\nspec: {type: team, children: []}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfgFile := filepath.Join(dir, "backgate.yaml")
			if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`server: {external_url: "http://gate.localhost:1"}
data_dir: %s
oidc: {issuer: %s, client_id: %s, client_secret: {env: S}}
catalog: {files: [%s]}
policy: {evaluator: %s}
access: {disabled: true}
`, filepath.Join(dir, "data"), idp.Issuer(), idp.ClientID(), cat, ev)), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(cfgFile)
			if err != nil {
				t.Fatal(err)
			}
			e := &Env{Stdout: io.Discard, Stderr: testWriter{t}, Getenv: func(string) string { return idp.ClientSecret() }}
			a, err := Build(context.Background(), cfg, e, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			if st := a.status(); !strings.Contains(st, "policy_evaluator: "+ev+"\n") {
				t.Fatalf("policy.evaluator: %s, but /readyz says:\n%s", ev, st)
			}
		})
	}
}
