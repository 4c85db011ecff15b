package auth

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	keyOld = []byte("old-secret-old-secret-old-secret-0001")
	keyNew = []byte("new-secret-new-secret-new-secret-0002")
	t0     = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
)

type testClock struct{ t time.Time }

type offline struct{}

func (offline) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("offline test transport: no request to %s", r.URL.Host)
}

func (c *testClock) Now() time.Time { return c.t }

func newTestAuth(t testing.TB, clock *testClock, logs *bytes.Buffer, keys ...[]byte) *Authenticator {
	t.Helper()
	opts := Options{
		IssuerURL:    "https://idp.corp.example",
		ClientID:     "backgate",
		CallbackURL:  "https://auth.corp.example/_backgate/callback",
		SessionKeys:  keys,
		CookieDomain: ".corp.example",
		Now:          clock.Now,
		// No provider here: any provider call fails at once, without network.
		HTTPClient: &http.Client{Transport: offline{}},
	}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func sampleSession(now time.Time, groups int) *Session {
	s := &Session{
		ID:           "Zm9vYmFyYmF6cXV4cXV1eA",
		Subject:      "user:default/alice.example",
		Issuer:       "https://idp.corp.example",
		Email:        "alice.example@corp.example",
		Name:         "Alice Example",
		Username:     "alice.example",
		IssuedAt:     now,
		LastSeen:     now,
		ExpiresAt:    now.Add(DefaultSessionLifetime),
		RefreshedAt:  now,
		refreshToken: "Qm9ndXMtcmVmcmVzaC10b2tlbi12YWx1ZS0xMjM0NTY",
	}
	for i := range groups {
		s.Groups = append(s.Groups, fmt.Sprintf("group:default/platform-team-%02d", i))
	}
	return s
}

// sessionCookie saves s with a and returns the Set-Cookie it produced.
func sessionCookie(t testing.TB, a *Authenticator, s *Session) *http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := a.saveSession(rec, httptest.NewRequest("GET", "https://app.corp.example/", nil), s); err != nil {
		t.Fatalf("saveSession: %v", err)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("got %d cookies", len(cs))
	}
	return cs[0]
}

func requestWith(c *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "https://app.corp.example/", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestSessionRoundTripAndAttributes(t *testing.T) {
	clock := &testClock{t0}
	a := newTestAuth(t, clock, nil, keyNew)
	in := sampleSession(t0, 3)
	c := sessionCookie(t, a, in)
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Domain != "corp.example" || c.Path != "/" || c.Name != "_backgate" {
		t.Fatalf("cookie attributes: %+v", c)
	}
	if c.MaxAge != int(DefaultSessionLifetime.Seconds()) {
		t.Errorf("MaxAge = %d", c.MaxAge)
	}
	out, err := a.Session(requestWith(c))
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
	if strings.Contains(c.Value, in.refreshToken) || strings.Contains(c.Value, "alice") {
		t.Fatal("cookie value is not encrypted")
	}
}

func TestCookieSizeWith20Groups(t *testing.T) {
	a := newTestAuth(t, &testClock{t0}, nil, keyNew)
	c := sessionCookie(t, a, sampleSession(t0, 20))
	size := len(c.Name) + 1 + len(c.Value)
	t.Logf("session cookie with 20 groups: %d bytes (value %d)", size, len(c.Value))
	if size >= 2048 {
		t.Fatalf("session cookie with 20 groups is %d bytes, want < 2048", size)
	}
}

func TestOversizedSessionIsNotWritten(t *testing.T) {
	a := newTestAuth(t, &testClock{t0}, nil, keyNew)
	rec := httptest.NewRecorder()
	err := a.saveSession(rec, httptest.NewRequest("GET", "/", nil), sampleSession(t0, 200))
	if err == nil || rec.Header().Get("Set-Cookie") != "" {
		t.Fatalf("200 groups: err=%v, Set-Cookie=%q; want error and no cookie", err, rec.Header().Get("Set-Cookie"))
	}
}

func TestSessionRejects(t *testing.T) {
	clock := &testClock{t0}
	var logs bytes.Buffer
	a := newTestAuth(t, clock, &logs, keyNew)
	good := sessionCookie(t, a, sampleSession(t0, 2))
	foreign := sessionCookie(t, newTestAuth(t, clock, nil, []byte("someone-elses-secret-someone-elses-01")), sampleSession(t0, 2))
	otherIss := sampleSession(t0, 2)
	otherIss.Issuer = "https://other-idp.example"
	longLife := sampleSession(t0, 2)
	longLife.ExpiresAt = t0.Add(100 * time.Hour)
	noSub := sampleSession(t0, 0)
	noSub.Subject = ""
	future := sampleSession(t0.Add(time.Hour), 0)

	with := func(v string) *http.Cookie { return &http.Cookie{Name: "_backgate", Value: v} }
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name    string
		cookie  *http.Cookie
		advance time.Duration
		reason  string
	}{
		{"missing", nil, 0, ""},
		{"empty", with(""), 0, "decode"},
		{"garbage", with("not-a-cookie"), 0, "decode"},
		{"tampered start", with(flip(good.Value, 5)), 0, "decode"},
		{"tampered middle", with(flip(good.Value, len(good.Value)/2)), 0, "decode"},
		{"tampered end", with(flip(good.Value, len(good.Value)-6)), 0, "decode"}, // not the last quantum: its padding bits are ignored by base64
		{"truncated", with(good.Value[:len(good.Value)-10]), 0, "decode"},
		{"truncated half", with(good.Value[:len(good.Value)/2]), 0, "decode"},
		{"foreign key", with(foreign.Value), 0, "decode"},
		{"oversized", with(strings.Repeat("A", MaxCookieLen+1)), 0, "limit"},
		{"renamed", &http.Cookie{Name: "_backgate", Value: sessionCookieNamed(t, a, "_other")}, 0, "decode"},
		{"other issuer", sessionCookie(t, a, otherIss), 0, "issuer"},
		{"lifetime too long", sessionCookie(t, a, longLife), 0, "lifetime"},
		{"no subject", sessionCookie(t, a, noSub), 0, "subject"},
		{"issued in the future", sessionCookie(t, a, future), 0, "future"},
		{"idle", good, DefaultIdleTimeout, "idle since"},
		{"expired", sessionCookie(t, a, func() *Session {
			s := sampleSession(t0, 0)
			s.IssuedAt, s.LastSeen, s.ExpiresAt = t0.Add(-12*time.Hour), t0.Add(-time.Minute), t0
			return s
		}()), 0, "expired at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			clock.t = t0.Add(tc.advance)
			s, err := a.Session(requestWith(tc.cookie))
			if !errors.Is(err, ErrNoSession) || s != nil {
				t.Fatalf("Session = %+v, %v; want ErrNoSession", s, err)
			}
			if tc.reason != "" && !strings.Contains(logs.String(), tc.reason) {
				t.Fatalf("debug log lacks %q: %q", tc.reason, logs.String())
			}
			if strings.Contains(logs.String(), good.Value[:20]) {
				t.Fatal("cookie value was logged")
			}
		})
	}
	clock.t = t0.Add(DefaultIdleTimeout - time.Second)
	if _, err := a.Session(requestWith(good)); err != nil {
		t.Fatalf("session just inside the idle timeout rejected: %v", err)
	}
}

// sessionCookieNamed seals a session under another cookie name (the name is
// covered by the MAC, so it must not decode as _backgate).
func sessionCookieNamed(t *testing.T, a *Authenticator, name string) string {
	v, err := a.sessions.Codecs[0].Encode(name, map[any]any{sessionValueKey: sampleSession(t0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSessionKeyRotation(t *testing.T) {
	clock := &testClock{t0}
	old := newTestAuth(t, clock, nil, keyOld)
	rotated := newTestAuth(t, clock, nil, keyNew, keyOld)
	onlyNew := newTestAuth(t, clock, nil, keyNew)

	oldCookie := sessionCookie(t, old, sampleSession(t0, 1))
	if _, err := rotated.Session(requestWith(oldCookie)); err != nil {
		t.Fatalf("rotated authenticator rejects a cookie from the old key: %v", err)
	}
	if _, err := onlyNew.Session(requestWith(oldCookie)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("new-key-only authenticator accepts an old-key cookie: %v", err)
	}
	newCookie := sessionCookie(t, rotated, sampleSession(t0, 1))
	if _, err := onlyNew.Session(requestWith(newCookie)); err != nil {
		t.Fatalf("cookie written after rotation is not sealed with the new key: %v", err)
	}
	if _, err := old.Session(requestWith(newCookie)); !errors.Is(err, ErrNoSession) {
		t.Fatal("cookie written after rotation decodes with the old key alone")
	}
}

func TestTouchBumpsAtMostEveryMinute(t *testing.T) {
	clock := &testClock{t0}
	a := newTestAuth(t, clock, nil, keyNew)
	s := sampleSession(t0, 1)
	s.refreshToken = ""
	touch := func() *http.Cookie {
		rec := httptest.NewRecorder()
		if err := a.Touch(rec, httptest.NewRequest("GET", "/", nil), s); err != nil {
			t.Fatalf("Touch: %v", err)
		}
		cs := rec.Result().Cookies()
		if len(cs) == 0 {
			return nil
		}
		return cs[0]
	}
	clock.t = t0.Add(59 * time.Second)
	if c := touch(); c != nil {
		t.Fatal("Touch rewrote the cookie within a minute")
	}
	clock.t = t0.Add(61 * time.Second)
	c := touch()
	if c == nil {
		t.Fatal("Touch did not rewrite the cookie after a minute")
	}
	if want := int((DefaultSessionLifetime - 61*time.Second).Seconds()); c.MaxAge != want {
		t.Errorf("rewritten cookie Max-Age = %d, want the remaining lifetime %d", c.MaxAge, want)
	}
	got, err := a.Session(requestWith(c))
	if err != nil || !got.LastSeen.Equal(clock.t) {
		t.Fatalf("LastSeen after Touch = %v, %v; want %v", got, err, clock.t)
	}
	clock.t = s.ExpiresAt
	rec := httptest.NewRecorder()
	if err := a.Touch(rec, httptest.NewRequest("GET", "/", nil), s); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Touch on an expired session: %v", err)
	}
	if c := rec.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Fatalf("expired session cookie not cleared: %v", c)
	}
}

func TestUnmarshalSessionRejects(t *testing.T) {
	good := marshalSession(sampleSession(t0, 2))
	tests := map[string][]byte{
		"empty":          {},
		"bad version":    append([]byte{2}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0),
		"huge string":    {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"invalid utf-8":  {1, 2, 0xff, 0xfe},
		"too many groups": func() []byte {
			b := []byte{1, 0, 0, 0, 0, 0, 0, 0}
			return append(b, 0xff, 0xff, 0x03)
		}(),
	}
	for name, b := range tests {
		if _, err := unmarshalSession(b); !errors.Is(err, errBadSessionEncoding) {
			t.Errorf("%s: err = %v, want errBadSessionEncoding", name, err)
		}
	}
}

func FuzzUnmarshalSession(f *testing.F) {
	f.Add(marshalSession(sampleSession(t0, 0)))
	f.Add(marshalSession(sampleSession(t0, 5)))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := unmarshalSession(b)
		if err != nil {
			return
		}
		// Anything accepted re-encodes to the same bytes (canonical).
		if again := marshalSession(s); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
		}
	})
}

func FuzzSessionCookie(f *testing.F) {
	a := newTestAuth(f, &testClock{t0}, nil, keyNew)
	good := sessionCookie(f, a, sampleSession(t0, 2)).Value
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", "_backgate="+v)
		s, err := a.Session(r)
		if err == nil && (s == nil || s.Subject == "") {
			t.Fatalf("accepted %q without a subject", v)
		}
		if err != nil && !errors.Is(err, ErrNoSession) {
			t.Fatalf("error %v is not ErrNoSession", err)
		}
	})
}

// BenchmarkSessionDecode measures cookie -> Session: "cached" is the
// Session method on a repeated cookie (the steady state), "uncached" the
// full securecookie decode (MAC, AES-CTR, binary parse) of a first sight.
func BenchmarkSessionDecode(b *testing.B) {
	for _, groups := range []int{3, 20} {
		a := newTestAuth(b, &testClock{t0}, nil, keyNew, keyOld)
		c := sessionCookie(b, a, sampleSession(t0, groups))
		b.Run(fmt.Sprintf("cached/groups=%d", groups), func(b *testing.B) {
			r := requestWith(c)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Session(r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("uncached/groups=%d", groups), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := a.decodeSession(c.Value)
				if err != nil {
					b.Fatal(err)
				}
				if err := a.checkSession(s, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestCacheNeverExtendsOrLeaks(t *testing.T) {
	clock := &testClock{t0}
	a := newTestAuth(t, clock, nil, keyNew)
	c := sessionCookie(t, a, sampleSession(t0, 2))
	s1, err := a.Session(requestWith(c))
	if err != nil {
		t.Fatal(err)
	}
	// Callers (Touch) modify the returned session; the cache must not see it.
	s1.Groups[0], s1.LastSeen, s1.ExpiresAt = "group:default/admins", t0.Add(10*time.Hour), t0.Add(100*time.Hour)
	s2, err := a.Session(requestWith(c))
	if err != nil || s2.Groups[0] != "group:default/platform-team-00" || !s2.LastSeen.Equal(t0) {
		t.Fatalf("cached session was modified through a returned copy: %+v, %v", s2, err)
	}
	if _, ok := a.cache.get(c.Value); !ok {
		t.Fatal("session not cached: this test would not exercise the cache")
	}
	clock.t = t0.Add(DefaultIdleTimeout)
	if _, err := a.Session(requestWith(c)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("cached session served past the idle timeout: %v", err)
	}
	clock.t = t0.Add(DefaultSessionLifetime)
	if _, err := a.Session(requestWith(c)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("cached session served past its expiry: %v", err)
	}
	// Logout revokes the session id, also for a copy of the cookie.
	clock.t = t0.Add(time.Minute)
	rec := httptest.NewRecorder()
	a.Logout(rec, requestWith(c))
	if _, err := a.Session(requestWith(c)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("session served after logout: %v", err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	base := func() Options {
		return Options{
			IssuerURL:   "https://idp.corp.example",
			ClientID:    "backgate",
			CallbackURL: "https://auth.corp.example/_backgate/callback",
			SessionKeys: [][]byte{keyNew},
		}
	}
	tests := []struct {
		name   string
		mutate func(*Options)
		field  string // "" = valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"loopback http issuer", func(o *Options) { o.IssuerURL = "http://127.0.0.1:9000" }, ""},
		{"localhost demo", func(o *Options) {
			o.IssuerURL, o.CallbackURL, o.InsecureCookies = "http://idp.localhost:8080", "http://auth.localhost/_backgate/callback", true
		}, ""},
		{"no issuer", func(o *Options) { o.IssuerURL = "" }, "IssuerURL"},
		{"http issuer", func(o *Options) { o.IssuerURL = "http://idp.corp.example" }, "IssuerURL"},
		{"relative callback", func(o *Options) { o.CallbackURL = "/_backgate/callback" }, "CallbackURL"},
		{"callback with query", func(o *Options) { o.CallbackURL += "?x=1" }, "CallbackURL"},
		{"no client id", func(o *Options) { o.ClientID = "" }, "ClientID"},
		{"no keys", func(o *Options) { o.SessionKeys = nil }, "SessionKeys"},
		{"short key", func(o *Options) { o.SessionKeys = [][]byte{keyNew, []byte("short")} }, "SessionKeys[1]"},
		{"alg none", func(o *Options) { o.AllowedAlgs = []string{"RS256", "none"} }, "AllowedAlgs"},
		{"alg HS256", func(o *Options) { o.AllowedAlgs = []string{"HS256"} }, "AllowedAlgs"},
		{"skew too big", func(o *Options) { o.ClockSkew = 6 * time.Minute }, "ClockSkew"},
		{"negative skew", func(o *Options) { o.ClockSkew = -time.Second }, "ClockSkew"},
		{"scopes without openid", func(o *Options) { o.Scopes = []string{"email"} }, "Scopes"},
		{"bad cookie name", func(o *Options) { o.CookieName = "a b" }, "CookieName"},
		{"bad cookie domain", func(o *Options) { o.CookieDomain = "corp..example" }, "CookieDomain"},
		{"tiny idle timeout", func(o *Options) { o.IdleTimeout = time.Second }, "IdleTimeout"},
		{"bad logout url", func(o *Options) { o.PostLogoutRedirectURL = "javascript:x" }, "PostLogoutRedirectURL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.mutate(&o)
			_, err := New(o)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("New error = %v, want one naming %s", err, tc.field)
			}
		})
	}
}

// TestCurrentNeverModifiesTheCachedSession: Current hands out the cached
// session itself while nothing is due, and a copy when Touch changes
// something, so the session other requests share never moves.
func TestCurrentNeverModifiesTheCachedSession(t *testing.T) {
	clock := &testClock{t0}
	a := newTestAuth(t, clock, nil, keyNew)
	s := sampleSession(t0, 2)
	s.refreshToken = ""
	c := sessionCookie(t, a, s)
	current := func(at time.Time) (*Session, *httptest.ResponseRecorder, error) {
		rec := httptest.NewRecorder()
		got, err := a.Current(rec, requestWith(c), at)
		return got, rec, err
	}
	first, rec, err := current(time.Time{}) // the authenticator's clock
	if err != nil || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("fresh session: %v, cookies %v", err, rec.Result().Cookies())
	}
	cached, ok := a.cache.get(c.Value)
	if !ok || cached != first {
		t.Fatal("Current did not share the cached session while nothing was due")
	}
	// A minute later the idle-timeout bump is due: a copy is bumped and the
	// cookie rewritten; the cached session keeps its LastSeen.
	bumped, rec, err := current(t0.Add(61 * time.Second))
	if err != nil || len(rec.Result().Cookies()) != 1 {
		t.Fatalf("bump: %v, cookies %v", err, rec.Result().Cookies())
	}
	if bumped == cached || !bumped.LastSeen.Equal(t0.Add(61*time.Second)) || !cached.LastSeen.Equal(t0) {
		t.Fatalf("bump changed the shared session: bumped %v, cached %v", bumped.LastSeen, cached.LastSeen)
	}
	// The request's time is what counts: past the idle timeout, no session.
	if _, _, err := current(t0.Add(DefaultIdleTimeout)); !errors.Is(err, ErrNoSession) {
		t.Fatalf("served past the idle timeout: %v", err)
	}
	a.Logout(httptest.NewRecorder(), requestWith(c))
	if _, _, err := current(time.Time{}); !errors.Is(err, ErrNoSession) {
		t.Fatalf("served after logout: %v", err)
	}
}
