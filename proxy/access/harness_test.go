package access

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backgate/backgate/proxy"
)

const (
	petstore   = "component:default/petstore"
	botSecret  = "bot-token-0123456789abcdef0123456789abcdef"
	readSecret = "reader-token-0123456789abcdef0123456789abcd"
)

// Sessions: the cookie "sess" names one of these identities.
var identities = map[string]proxy.Identity{
	"alice": {Subject: "alice-sub", Issuer: "https://idp.example", Email: "alice@example.com", Groups: []string{"devs"}},
	"bob":   {Subject: "bob-sub", Issuer: "https://idp.example", Email: "bob@example.com", Groups: []string{"team-petstore"}},
	"dave":  {Subject: "dave-sub", Issuer: "https://idp.example", Email: "dave@example.com"},
	"carol": {Subject: "carol-sub", Issuer: "https://idp.example", Email: "carol@example.com"}, // not in the catalog
	// same subject as alice at another issuer: must not share CSRF tokens
	"mallory": {Subject: "alice-sub", Issuer: "https://other-idp.example", Email: "mallory@example.com"},
}

var userRefs = map[string]string{
	"alice@example.com":   "user:default/alice",
	"bob@example.com":     "user:default/bob",
	"dave@example.com":    "user:default/dave",
	"mallory@example.com": "user:default/mallory",
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type harness struct {
	t      *testing.T
	svc    *fakeService
	h      *Handler
	srv    *httptest.Server
	clock  *clock
	client *http.Client

	mu     sync.Mutex
	logins []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}
	svc := &fakeService{now: c.now,
		max: map[string]map[string]time.Duration{
			petstore:                           {"prod": 4 * time.Hour, "staging": 24 * time.Hour, "dev": 2 * time.Hour, "lab": 0},
			"component:default/<b>billing</b>": {"prod": 7 * 24 * time.Hour},
		},
		owners: map[string][]string{petstore: {"user:default/bob"}, "component:default/<b>billing</b>": {"user:default/bob"}},
	}
	hs := &harness{t: t, svc: svc, clock: c}
	h, err := NewHandler(Options{
		Service: svc,
		Identify: func(_ http.ResponseWriter, r *http.Request) (proxy.Identity, error) {
			ck, err := r.Cookie("sess")
			if err != nil {
				return proxy.Identity{}, proxy.ErrNotLoggedIn
			}
			id, ok := identities[ck.Value]
			if !ok {
				return proxy.Identity{}, proxy.ErrNotLoggedIn
			}
			return id, nil
		},
		ResolveUser: func(id proxy.Identity) (string, bool) { ref, ok := userRefs[id.Email]; return ref, ok },
		Login: func(w http.ResponseWriter, r *http.Request, returnTo string) {
			hs.mu.Lock()
			hs.logins = append(hs.logins, returnTo)
			hs.mu.Unlock()
			http.Redirect(w, r, "/login?return="+url.QueryEscape(returnTo), http.StatusFound)
		},
		ServiceTokens: map[string]string{"bot": botSecret, "reader": readSecret},
		Delegating:    []string{"bot"},
		CSRFKey:       []byte("csrf-key-for-tests-0123456789abcdef"),
		Owners: func(service string) []string {
			return []string{"group:default/team-" + strings.TrimPrefix(service, "component:default/")}
		},
		Now: c.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	hs.srv = httptest.NewServer(h)
	t.Cleanup(hs.srv.Close)
	hs.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return hs
}

// do sends a request as user ("" for none) and returns status, headers, body.
func (hs *harness) do(method, user, path string, body io.Reader, hdr map[string]string) (int, http.Header, string) {
	hs.t.Helper()
	req, err := http.NewRequest(method, hs.srv.URL+path, body)
	if err != nil {
		hs.t.Fatal(err)
	}
	if user != "" {
		req.AddCookie(&http.Cookie{Name: "sess", Value: user})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hs.client.Do(req)
	if err != nil {
		hs.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		hs.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func (hs *harness) get(user, path string) (int, http.Header, string) {
	return hs.do(http.MethodGet, user, path, nil, nil)
}

func (hs *harness) postForm(user, path string, form url.Values, hdr map[string]string) (int, http.Header, string) {
	if hdr == nil {
		hdr = map[string]string{}
	}
	hdr["Content-Type"] = "application/x-www-form-urlencoded"
	return hs.do(http.MethodPost, user, path, strings.NewReader(form.Encode()), hdr)
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// pageCSRF reads the CSRF token from user's index page, as a browser would.
func (hs *harness) pageCSRF(user string) string {
	hs.t.Helper()
	status, _, body := hs.get(user, "/_backgate/access/request?service="+url.QueryEscape(petstore)+"&env=staging")
	m := csrfField.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil {
		// a pending request replaces the form; the index always has forms when there is one
		_, _, body = hs.get(user, "/_backgate/access/")
		if m = csrfField.FindStringSubmatch(body); m == nil {
			hs.t.Fatalf("no CSRF token on %s's pages (status %d): %s", user, status, body)
		}
	}
	return m[1]
}

// apiCSRF fetches a token from the API as a session client would.
func (hs *harness) apiCSRF(user string) string {
	hs.t.Helper()
	status, _, body := hs.get(user, "/_backgate/access/api/v1/csrf")
	var v struct {
		Token string `json:"csrf_token"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.Token == "" {
		hs.t.Fatalf("GET csrf: %d %s", status, body)
	}
	return v.Token
}

// create makes a pending request as user through the page.
func (hs *harness) create(user, env, duration, reason string) string {
	hs.t.Helper()
	status, h, body := hs.postForm(user, "/_backgate/access/request", url.Values{"csrf_token": {hs.pageCSRF(user)},
		"service": {petstore}, "env": {env}, "duration": {duration}, "reason": {reason}}, nil)
	if status != http.StatusSeeOther {
		hs.t.Fatalf("create: status %d: %s", status, body)
	}
	loc := h.Get("Location")
	id, _, _ := strings.Cut(strings.TrimPrefix(loc, "/_backgate/access/requests/"), "?")
	if !validID(id) {
		hs.t.Fatalf("create: Location %q", loc)
	}
	return id
}

// api calls the JSON API; auth is a user's session name or "bearer:SECRET".
func (hs *harness) api(method, auth, path string, body any, csrf string) (int, map[string]any) {
	hs.t.Helper()
	hdr := map[string]string{}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			hs.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
		hdr["Content-Type"] = "application/json"
	}
	user := auth
	if secret, ok := strings.CutPrefix(auth, "bearer:"); ok {
		hdr["Authorization"] = "Bearer " + secret
		user = ""
	}
	if csrf != "" {
		hdr["X-CSRF-Token"] = csrf
	}
	status, h, out := hs.do(method, user, "/_backgate/access/api/v1"+path, rd, hdr)
	if ct := h.Get("Content-Type"); ct != "application/json" {
		hs.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		hs.t.Fatalf("%s %s: %v: %s", method, path, err, out)
	}
	return status, v
}
