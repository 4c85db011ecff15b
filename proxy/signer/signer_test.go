package signer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/backgate/backgate/proxy/edgetoken"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const issuer = "https://gate.example.com"

type fixture struct {
	clk  *fakeClock
	ring *Keyring
	s    *Signer
}

func newFixture(t testing.TB, ringOpts KeyringOptions, opts Options) *fixture {
	t.Helper()
	f := &fixture{clk: newClock()}
	if ringOpts.Dir == "" && len(ringOpts.EdgeKeyFiles) == 0 {
		ringOpts.Dir = t.TempDir()
	}
	ringOpts.Now = f.clk.Now
	f.ring = openRing(t, ringOpts)
	opts.Keyring, opts.Now = f.ring, f.clk.Now
	if opts.Issuer == "" {
		opts.Issuer = issuer
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.s = s
	return f
}

func (f *fixture) request() SignRequest {
	return SignRequest{
		Host: "Payments.Example.COM:8443", Subject: "00u1abcd", Email: "ada@example.com", Name: "Ada Lovelace",
		Groups: []string{"eng", "payments-admins"}, UserRef: "user:default/ada",
		Service: "component:default/payments", Environment: "prod",
		NotAfter: f.clk.Now().Add(8 * time.Hour),
	}
}

// verifyJWT checks the assertion against the published JWKS, as an
// application or APM would, and returns its token.
func (f *fixture) verifyJWT(t testing.TB, assertion, aud string) (jwt.Token, error) {
	t.Helper()
	set, err := jwk.Parse(f.s.JWKS())
	if err != nil {
		t.Fatalf("jwk.Parse(JWKS): %v", err)
	}
	return jwt.Parse([]byte(assertion), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(f.clk.Now)), jwt.WithIssuer(issuer), jwt.WithAudience(aud))
}

func (f *fixture) edgeVerifier() edgetoken.Verifier {
	return edgetoken.Verifier{Keys: f.ring.EdgeSecret, Now: f.clk.Now}
}

func TestSignVerifies(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgES384, AlgRS256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			// The key comes from a file: generation is tested in TestKeyringAlgorithms.
			path := filepath.Join(t.TempDir(), "jwt.pem")
			if err := os.WriteFile(path, testKeyPEM(t, alg), 0o600); err != nil {
				t.Fatal(err)
			}
			f := newFixture(t, KeyringOptions{Dir: t.TempDir(), JWTKeyFiles: []KeyFile{{ID: "jwt-" + alg, Path: path}}}, Options{DisableCache: true})
			req := f.request()
			h, err := f.s.Sign(req)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := f.verifyJWT(t, h.Assertion, "payments.example.com")
			if err != nil {
				t.Fatalf("JWT does not verify with the JWKS: %v", err)
			}
			msg, err := jws.Parse([]byte(h.Assertion))
			if err != nil {
				t.Fatal(err)
			}
			hdr := msg.Signatures()[0].ProtectedHeaders()
			if hdr.KeyID() != f.ring.snapshot().jwt[0].id || hdr.Algorithm().String() != alg {
				t.Errorf("header kid %q alg %q", hdr.KeyID(), hdr.Algorithm())
			}
			now := f.clk.Now()
			if !tok.IssuedAt().Equal(now) || !tok.Expiration().Equal(now.Add(DefaultTTL)) || !h.Expiry.Equal(tok.Expiration()) {
				t.Errorf("iat %v exp %v Expiry %v", tok.IssuedAt(), tok.Expiration(), h.Expiry)
			}
			ec, err := f.edgeVerifier().Verify(h.Edge, "payments.example.com")
			if err != nil {
				t.Fatalf("edge token does not verify: %v", err)
			}
			want := edgetoken.Claims{
				KeyID: f.ring.snapshot().edge[0].id, IssuedAt: now, Expiry: h.Expiry, ID: tok.JwtID(),
				Host: "payments.example.com", User: "ada@example.com", Service: req.Service, Environment: "prod",
			}
			if !ec.IssuedAt.Equal(want.IssuedAt) || !ec.Expiry.Equal(want.Expiry) {
				t.Errorf("edge times %v..%v, want %v..%v", ec.IssuedAt, ec.Expiry, want.IssuedAt, want.Expiry)
			}
			ec.IssuedAt, ec.Expiry, want.IssuedAt, want.Expiry = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if ec != want {
				t.Errorf("edge claims\n got %+v\nwant %+v", ec, want)
			}
			if _, err := f.verifyJWT(t, h.Assertion, "other.example.com"); err == nil {
				t.Error("JWT accepted for another audience")
			}
			if _, err := f.edgeVerifier().Verify(h.Edge, "other.example.com"); !errors.Is(err, edgetoken.ErrWrongHost) {
				t.Errorf("edge token for another host: %v", err)
			}
		})
	}
}

// TestAssertionGolden pins the JWT header and claims; the key id and token
// id are random and replaced by placeholders.
func TestAssertionGolden(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{DisableCache: true})
	h, err := f.s.Sign(f.request())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(h.Assertion, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion has %d parts", len(parts))
	}
	var doc struct {
		Header map[string]any `json:"header"`
		Claims map[string]any `json:"claims"`
	}
	for i, dst := range []*map[string]any{&doc.Header, &doc.Claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	doc.Header["kid"] = "<kid>"
	doc.Claims["jti"] = "<jti>"
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	golden := filepath.Join("testdata", "assertion.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(got) != string(want) {
		t.Errorf("assertion differs from %s:\n%s", golden, got)
	}
}

func TestSignMinimalIdentity(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{DisableCache: true})
	req := SignRequest{Host: "app.example.com", Subject: "svc-123", Service: "component:default/app", Environment: "dev", NotAfter: f.clk.Now().Add(time.Hour)}
	h, err := f.s.Sign(req)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.verifyJWT(t, h.Assertion, "app.example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{ClaimEmail, ClaimName, ClaimGroups, ClaimBackstageUser} {
		if _, ok := tok.Get(c); ok {
			t.Errorf("empty claim %s present", c)
		}
	}
	ec, err := f.edgeVerifier().Verify(h.Edge, "app.example.com")
	if err != nil || ec.User != "svc-123" {
		t.Errorf("edge user %q (%v), want the subject", ec.User, err)
	}
}

func TestSignExpiryBounds(t *testing.T) {
	tests := []struct {
		name     string
		ttl      time.Duration
		notAfter time.Duration // from now
		retireIn time.Duration // 0: no retirement scheduled
		want     time.Duration // expiry from now; 0 means ErrExpired
	}{
		{"ttl", 0, 8 * time.Hour, 0, DefaultTTL},
		{"custom ttl", 30 * time.Second, time.Hour, 0, 30 * time.Second},
		{"grant ends first", 0, 90 * time.Second, 0, 90 * time.Second},
		{"fraction rounded down", 0, 90*time.Second + 999*time.Millisecond, 0, 90 * time.Second},
		{"key retires first", 0, time.Hour, 2 * time.Minute, 2 * time.Minute},
		{"under a second left", 0, 500 * time.Millisecond, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, KeyringOptions{}, Options{TTL: tt.ttl})
			now := f.clk.Now()
			if tt.retireIn > 0 {
				id := mustList(t, f.ring.JWTStore())[0].ID
				if err := f.ring.JWTStore().Retire(id, now.Add(tt.retireIn)); err != nil {
					t.Fatal(err)
				}
			}
			req := f.request()
			req.NotAfter = now.Add(tt.notAfter)
			h, err := f.s.Sign(req)
			if tt.want == 0 {
				if !errors.Is(err, ErrExpired) {
					t.Fatalf("err = %v, want ErrExpired", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := now.Add(tt.want); !h.Expiry.Equal(want) {
				t.Errorf("Expiry %v, want %v", h.Expiry, want)
			}
			if h.Expiry.After(req.NotAfter) {
				t.Errorf("Expiry %v after NotAfter %v", h.Expiry, req.NotAfter)
			}
			tok, err := f.verifyJWT(t, h.Assertion, "payments.example.com")
			if err != nil || !tok.Expiration().Equal(h.Expiry) {
				t.Errorf("JWT exp %v (%v), want %v", tok.Expiration(), err, h.Expiry)
			}
			ec, err := f.edgeVerifier().Verify(h.Edge, "payments.example.com")
			if err != nil || !ec.Expiry.Equal(h.Expiry) {
				t.Errorf("edge exp %v (%v), want %v", ec.Expiry, err, h.Expiry)
			}
			f.clk.Add(tt.want)
			if _, err := f.edgeVerifier().Verify(h.Edge, "payments.example.com"); !errors.Is(err, edgetoken.ErrExpired) {
				t.Errorf("edge token at expiry: %v", err)
			}
		})
	}
}

func TestSignRejects(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{})
	tests := []struct {
		name   string
		mutate func(*SignRequest)
		want   error
		field  string
	}{
		{"no host", func(r *SignRequest) { r.Host = "" }, ErrInvalidRequest, "Host"},
		{"host with path", func(r *SignRequest) { r.Host = "a.example.com/x" }, ErrInvalidRequest, "Host"},
		{"no subject", func(r *SignRequest) { r.Subject = "" }, ErrInvalidRequest, "Subject"},
		{"no service", func(r *SignRequest) { r.Service = "" }, ErrInvalidRequest, "Service"},
		{"bad env", func(r *SignRequest) { r.Environment = "Prod" }, ErrInvalidRequest, "Environment"},
		{"no env", func(r *SignRequest) { r.Environment = "" }, ErrInvalidRequest, "Environment"},
		{"no NotAfter", func(r *SignRequest) { r.NotAfter = time.Time{} }, ErrInvalidRequest, "NotAfter"},
		{"past NotAfter", func(r *SignRequest) { r.NotAfter = f.clk.Now().Add(-time.Second) }, ErrExpired, "NotAfter"},
		{"huge user", func(r *SignRequest) { r.Email = strings.Repeat("a", 2000) }, ErrInvalidRequest, "edge token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := f.request()
			tt.mutate(&req)
			h, err := f.s.Sign(req)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("err = %v, want %v naming %s", err, tt.want, tt.field)
			}
			if h != (Headers{}) {
				t.Errorf("headers returned with error: %+v", h)
			}
		})
	}
}

func TestSignNoActiveKey(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{})
	id := mustList(t, f.ring.EdgeStore())[0].ID
	if err := f.ring.EdgeStore().Retire(id, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Sign(f.request()); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("err = %v, want ErrNoSigningKey", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	ring := openRing(t, KeyringOptions{Dir: t.TempDir()})
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no keyring", Options{Issuer: issuer}, "Keyring is nil"},
		{"no issuer", Options{Keyring: ring}, `Issuer ""`},
		{"relative issuer", Options{Keyring: ring, Issuer: "/gate"}, `Issuer "/gate"`},
		{"issuer query", Options{Keyring: ring, Issuer: "https://g/?a=1"}, "Issuer"},
		{"short ttl", Options{Keyring: ring, Issuer: issuer, TTL: time.Second}, "TTL 1s"},
		{"long ttl", Options{Keyring: ring, Issuer: issuer, TTL: 2 * time.Hour}, "TTL 2h0m0s"},
		{"negative cache", Options{Keyring: ring, Issuer: issuer, CacheSize: -1}, "CacheSize -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want error naming %q", err, tt.want)
			}
		})
	}
}

func TestRotationEndToEnd(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{DisableCache: true})
	const host = "payments.example.com"
	jwtStore, edgeStore := f.ring.JWTStore(), f.ring.EdgeStore()
	oldJWT, oldEdge := mustList(t, jwtStore)[0], mustList(t, edgeStore)[0]
	before, err := f.s.Sign(f.request())
	if err != nil {
		t.Fatal(err)
	}

	activate := f.clk.Now().Add(10 * time.Minute)
	newJWT, err := jwtStore.Add(activate)
	if err != nil {
		t.Fatal(err)
	}
	newEdge, err := edgeStore.Add(activate)
	if err != nil {
		t.Fatal(err)
	}
	kids := func() []string {
		set, err := jwk.Parse(f.s.JWKS())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := 0; i < set.Len(); i++ {
			k, _ := set.Key(i)
			out = append(out, k.KeyID())
		}
		slices.Sort(out)
		return out
	}
	both := []string{oldJWT.ID, newJWT.ID}
	slices.Sort(both)
	if got := kids(); !slices.Equal(got, both) {
		t.Errorf("JWKS kids %v, want pending and old %v", got, both)
	}
	pending, err := f.s.Sign(f.request())
	if err != nil {
		t.Fatal(err)
	}
	if kid := jwsKid(t, pending.Assertion); kid != oldJWT.ID {
		t.Errorf("pending key signs JWT: kid %s", kid)
	}
	if c, _, _, _ := edgetoken.Parse(pending.Edge); c.KeyID != oldEdge.ID {
		t.Errorf("pending key signs edge token: %s", c.KeyID)
	}

	f.clk.Add(10 * time.Minute)
	after, err := f.s.Sign(f.request())
	if err != nil {
		t.Fatal(err)
	}
	if kid := jwsKid(t, after.Assertion); kid != newJWT.ID {
		t.Errorf("after activation JWT kid %s, want %s", kid, newJWT.ID)
	}
	if c, _, _, _ := edgetoken.Parse(after.Edge); c.KeyID != newEdge.ID {
		t.Errorf("after activation edge kid %s, want %s", c.KeyID, newEdge.ID)
	}
	// Old tokens still verify (pending was minted 10 minutes ago with a
	// 5-minute TTL, so verify at its issue time plus a minute).
	f.clk.Add(-9 * time.Minute)
	if _, err := f.verifyJWT(t, pending.Assertion, host); err != nil {
		t.Errorf("old-key JWT no longer verifies before retirement: %v", err)
	}
	if _, err := f.edgeVerifier().Verify(pending.Edge, host); err != nil {
		t.Errorf("old-key edge token no longer verifies before retirement: %v", err)
	}
	if _, err := f.verifyJWT(t, before.Assertion, host); err != nil {
		t.Errorf("JWT minted before Add no longer verifies: %v", err)
	}

	if err := jwtStore.Retire(oldJWT.ID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := edgeStore.Retire(oldEdge.ID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := kids(); !slices.Equal(got, []string{newJWT.ID}) {
		t.Errorf("JWKS kids after retirement %v, want %s", got, newJWT.ID)
	}
	if _, err := f.verifyJWT(t, pending.Assertion, host); err == nil {
		t.Error("JWT of a retired key still verifies")
	}
	if _, err := f.edgeVerifier().Verify(pending.Edge, host); !errors.Is(err, edgetoken.ErrUnknownKey) {
		t.Errorf("edge token of a retired key: %v", err)
	}
	f.clk.Add(9 * time.Minute)
	if _, err := f.verifyJWT(t, after.Assertion, host); err != nil {
		t.Errorf("new-key JWT: %v", err)
	}
}

func jwsKid(t testing.TB, token string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Signatures()[0].ProtectedHeaders().KeyID()
}

func TestCacheReuse(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{})
	req := f.request()
	first, err := f.s.Sign(req)
	if err != nil {
		t.Fatal(err)
	}
	// Reused while more than half the lifetime is left.
	f.clk.Add(DefaultTTL/2 - time.Second)
	second, err := f.s.Sign(req)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Error("not reused with more than half its lifetime left")
	}
	f.clk.Add(time.Second)
	third, err := f.s.Sign(req)
	if err != nil {
		t.Fatal(err)
	}
	if third == first {
		t.Error("reused with only half its lifetime left")
	}
	if _, err := f.verifyJWT(t, third.Assertion, "payments.example.com"); err != nil {
		t.Error(err)
	}
}

func TestCacheShortNotAfter(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{})
	req := f.request()
	req.NotAfter = f.clk.Now().Add(20 * time.Second)
	first, err := f.s.Sign(req)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Expiry.Equal(req.NotAfter) {
		t.Fatalf("Expiry %v, want NotAfter %v", first.Expiry, req.NotAfter)
	}
	f.clk.Add(9 * time.Second)
	if h, _ := f.s.Sign(req); h != first {
		t.Error("not reused at 9s of 20s")
	}
	f.clk.Add(time.Second)
	if h, _ := f.s.Sign(req); h == first {
		t.Error("reused at 10s of 20s")
	}
	f.clk.Add(10 * time.Second)
	if _, err := f.s.Sign(req); !errors.Is(err, ErrExpired) {
		t.Errorf("at NotAfter: %v, want ErrExpired", err)
	}
}

// TestCacheIdentityIsolation changes one input at a time: none may be
// served the headers minted for the base request.
func TestCacheIdentityIsolation(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{})
	base := f.request()
	baseH, err := f.s.Sign(base)
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string]func(*SignRequest){
		"host":        func(r *SignRequest) { r.Host = "billing.example.com" },
		"subject":     func(r *SignRequest) { r.Subject = "00u1abce" },
		"email":       func(r *SignRequest) { r.Email = "eve@example.com" },
		"no email":    func(r *SignRequest) { r.Email = "" },
		"name":        func(r *SignRequest) { r.Name = "Eve" },
		"groups":      func(r *SignRequest) { r.Groups = []string{"eng"} },
		"groups join": func(r *SignRequest) { r.Groups = []string{"eng", "payments", "admins"} },
		"groups ambiguity": func(r *SignRequest) {
			r.Groups = []string{"eng\x00payments-admins"}
		},
		"field shift": func(r *SignRequest) { r.Email, r.Name = r.Email+"Ada", " Lovelace" },
		"user ref":    func(r *SignRequest) { r.UserRef = "user:default/eve" },
		"service":     func(r *SignRequest) { r.Service = "component:default/billing" },
		"environment": func(r *SignRequest) { r.Environment = "staging" },
		"not after":   func(r *SignRequest) { r.NotAfter = r.NotAfter.Add(-time.Hour) },
	}
	for name, mutate := range variants {
		t.Run(name, func(t *testing.T) {
			req := f.request()
			req.Groups = slices.Clone(base.Groups)
			mutate(&req)
			h, err := f.s.Sign(req)
			if err != nil {
				t.Fatal(err)
			}
			if h.Assertion == baseH.Assertion || h.Edge == baseH.Edge {
				t.Fatal("served another identity's cached headers")
			}
			again, _ := f.s.Sign(req)
			if again != h {
				t.Error("variant itself not cached")
			}
		})
	}
	if h, _ := f.s.Sign(base); h != baseH {
		t.Error("base request no longer served from cache")
	}
}

func TestCacheInvalidatedByRotation(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{})
	req := f.request()
	first, _ := f.s.Sign(req)
	if h, _ := f.s.Sign(req); h != first {
		t.Fatal("not cached")
	}
	// Adding a pending key changes the key set: the cache is emptied.
	if _, err := f.ring.EdgeStore().Add(f.clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	second, _ := f.s.Sign(req)
	if second == first {
		t.Error("served a cached token after a key set change")
	}
	if n := f.s.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries after rotation, want only the new one", n)
	}
	// Activation by time alone switches the key id in the cache key.
	f.clk.Add(time.Minute)
	third, _ := f.s.Sign(req)
	if third == second {
		t.Error("served a token of the previous signing key after activation")
	}
	c, _, _, _ := edgetoken.Parse(third.Edge)
	if c.KeyID != f.ring.snapshot().edgeSigner(f.clk.Now()).id {
		t.Errorf("edge kid %s is not the active key", c.KeyID)
	}
}

func TestCacheDisabled(t *testing.T) {
	for _, opts := range []Options{{DisableCache: true}, {UniqueTokens: true}} {
		f := newFixture(t, KeyringOptions{}, opts)
		if f.s.cache != nil {
			t.Fatalf("%+v: cache enabled", opts)
		}
		req := f.request()
		a, _ := f.s.Sign(req)
		b, _ := f.s.Sign(req)
		ca, _, _, _ := edgetoken.Parse(a.Edge)
		cb, _, _, _ := edgetoken.Parse(b.Edge)
		if a == b || ca.ID == cb.ID {
			t.Errorf("%+v: token id reused", opts)
		}
	}
}

func TestCacheBounded(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{CacheSize: 32})
	req := f.request()
	for i := 0; i < 200; i++ {
		req.Subject = "user" + strings.Repeat("x", i)
		if _, err := f.s.Sign(req); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.s.cache.len(); n > 32 || n < 16 {
		t.Errorf("cache holds %d entries, want at most 32", n)
	}
}

func TestSignConcurrent(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{CacheSize: 64})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := f.request()
			for i := 0; i < 50; i++ {
				req.Subject = string(rune('a'+g)) + strings.Repeat("z", i%10)
				h, err := f.s.Sign(req)
				if err != nil {
					errs <- err
					return
				}
				ec, _, _, err := edgetoken.Parse(h.Edge)
				if err != nil || ec.User != req.Email {
					errs <- errors.New("bad edge token")
					return
				}
				tok, err := jwt.ParseInsecure([]byte(h.Assertion))
				if err != nil || tok.Subject() != req.Subject {
					errs <- errors.New("served another subject's assertion")
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3; i++ {
			if _, err := f.ring.EdgeStore().Add(time.Time{}); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestJWKSHandler(t *testing.T) {
	f := newFixture(t, KeyringOptions{}, Options{JWKSMaxAge: time.Minute})
	mux := http.NewServeMux()
	mux.Handle(JWKSPath, f.s.JWKSHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, err := srv.Client().Get(srv.URL + JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != "public, max-age=60" {
		t.Fatalf("status %d headers %v", res.StatusCode, res.Header)
	}
	set, err := jwk.Parse(body)
	if err != nil || set.Len() != 1 {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	k, _ := set.Key(0)
	if ok, _ := jwk.IsPrivateKey(k); ok {
		t.Fatal("JWKS publishes a private key")
	}
	if strings.Contains(string(body), `"d"`) {
		t.Fatal("JWKS body contains a private component")
	}
	h, _ := f.s.Sign(f.request())
	if _, err := jwt.Parse([]byte(h.Assertion), jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithClock(jwt.ClockFunc(f.clk.Now))); err != nil {
		t.Errorf("assertion does not verify with the served JWKS: %v", err)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+JWKSPath, nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	res2, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d", res2.StatusCode)
	}
	res3, err := srv.Client().Post(srv.URL+JWKSPath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res3.Body.Close()
	if res3.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res3.StatusCode)
	}
	// A key added later changes the ETag.
	if _, err := f.ring.JWTStore().Add(f.clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	res4, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body4, _ := io.ReadAll(res4.Body)
	res4.Body.Close()
	if set4, err := jwk.Parse(body4); res4.StatusCode != 200 || err != nil || set4.Len() != 2 {
		t.Errorf("after Add: status %d, %s", res4.StatusCode, body4)
	}
}
