package demo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backgate/backgate/proxy/edgetoken"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/net/websocket"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testHost = "petstore.localhost"

var (
	testT0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testEdgeKey = edgetoken.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
)

// testSigner holds an assertion key pair and its JWKS.
type testSigner struct {
	priv jwk.Key
	set  jwk.Set // public keys
}

func newSigner(t testing.TB, kid string) testSigner {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = priv.Set(jwk.KeyIDKey, kid)
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	return testSigner{priv: priv, set: set}
}

type assertion struct {
	sub, aud, iss string
	iat, exp      time.Time
	extra         map[string]any
}

func (s testSigner) mint(t testing.TB, a assertion) string {
	t.Helper()
	b := jwt.NewBuilder().Subject(a.sub).Audience([]string{a.aud}).IssuedAt(a.iat).Expiration(a.exp)
	if a.iss != "" {
		b = b.Issuer(a.iss)
	}
	for k, v := range a.extra {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, s.priv))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func aliceAssertion() assertion {
	return assertion{
		sub: "alice", aud: testHost, iss: "http://127.0.0.1:8080",
		iat: testT0, exp: testT0.Add(5 * time.Minute),
		extra: map[string]any{
			"email": "alice@example.com", "name": "Alice Anders", "preferred_username": "alice",
			"groups": []string{"team-c"}, "backstage_user": "user:default/alice",
			"backstage_service": "component:default/petstore", "environment": "prod",
		},
	}
}

func mintEdge(t testing.TB, host string, iat time.Time) string {
	t.Helper()
	tok, err := edgetoken.Mint(testEdgeKey, edgetoken.Claims{
		IssuedAt: iat, Expiry: iat.Add(time.Minute), ID: "AAAAAAAAAAAAAAAA", Host: host,
		User: "alice@example.com", Service: "component:default/petstore", Environment: "prod",
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func edgeKeys(kid string) ([]byte, bool) {
	if kid == testEdgeKey.ID {
		return testEdgeKey.Secret, true
	}
	return nil, false
}

func newTestApp(t testing.TB, s testSigner, clock *fakeClock) http.Handler {
	t.Helper()
	h, err := NewApp(AppOptions{
		Name:     "petstore",
		JWKS:     func(context.Context) (jwk.Set, error) { return s.set, nil },
		EdgeKeys: edgeKeys,
		Issuer:   "http://127.0.0.1:8080",
		Now:      clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func getReport(t testing.TB, h http.Handler, req *http.Request) (int, Report, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var rep Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, rec.Body.String())
	}
	return rec.Code, rep, rec.Body.String()
}

func jsonRequest(edge, assert string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "http://"+testHost+":8080/orders?format=json", nil)
	if edge != "" {
		req.Header.Set(edgetoken.Header, edge)
	}
	if assert != "" {
		req.Header.Set(AssertionHeader, assert)
	}
	return req
}

func TestAppVerifies(t *testing.T) {
	s := newSigner(t, "a1")
	other := newSigner(t, "a1") // same kid, different key
	clock := &fakeClock{t: testT0.Add(10 * time.Second)}
	h := newTestApp(t, s, clock)
	goodEdge := mintEdge(t, testHost, testT0)
	goodJWT := s.mint(t, aliceAssertion())

	with := func(f func(*assertion)) string {
		a := aliceAssertion()
		f(&a)
		return s.mint(t, a)
	}
	for _, tc := range []struct {
		name        string
		req         *http.Request
		wantReason  string // "" means verified
		wantEdge    bool
		wantAssert  bool
		wantPresent [2]bool
	}{
		{name: "both valid", req: jsonRequest(goodEdge, goodJWT), wantEdge: true, wantAssert: true, wantPresent: [2]bool{true, true}},
		{name: "no headers", req: jsonRequest("", ""), wantReason: "edge token: header missing"},
		{name: "edge missing", req: jsonRequest("", goodJWT), wantReason: "edge token: header missing", wantAssert: true, wantPresent: [2]bool{false, true}},
		{name: "edge environment changed", req: jsonRequest(strings.Replace(goodEdge, ".prod.", ".dev.", 1), goodJWT), wantReason: "edge token: edgetoken: bad signature", wantAssert: true, wantPresent: [2]bool{true, true}},
		{name: "edge bad signature", req: jsonRequest(goodEdge[:len(goodEdge)-2]+flip(goodEdge[len(goodEdge)-2:len(goodEdge)-1])+goodEdge[len(goodEdge)-1:], goodJWT), wantReason: "bad signature", wantAssert: true, wantPresent: [2]bool{true, true}},
		{name: "edge for another host", req: jsonRequest(mintEdge(t, "other.localhost", testT0), goodJWT), wantReason: "host does not match", wantAssert: true, wantPresent: [2]bool{true, true}},
		{name: "edge expired", req: jsonRequest(mintEdge(t, testHost, testT0.Add(-2*time.Hour)), goodJWT), wantReason: "expired", wantAssert: true, wantPresent: [2]bool{true, true}},
		{name: "edge garbage", req: jsonRequest("bg1.....", goodJWT), wantReason: "malformed", wantAssert: true, wantPresent: [2]bool{true, true}},
		{name: "assertion missing", req: jsonRequest(goodEdge, ""), wantReason: "assertion: header missing", wantEdge: true, wantPresent: [2]bool{true, false}},
		{name: "assertion wrong key", req: jsonRequest(goodEdge, other.mint(t, aliceAssertion())), wantReason: "assertion:", wantEdge: true, wantPresent: [2]bool{true, true}},
		{name: "assertion wrong audience", req: jsonRequest(goodEdge, with(func(a *assertion) { a.aud = "other.localhost" })), wantReason: "audience", wantEdge: true, wantPresent: [2]bool{true, true}},
		{name: "assertion wrong issuer", req: jsonRequest(goodEdge, with(func(a *assertion) { a.iss = "http://evil" })), wantReason: "iss", wantEdge: true, wantPresent: [2]bool{true, true}},
		{name: "assertion expired", req: jsonRequest(goodEdge, with(func(a *assertion) { a.exp = testT0.Add(-time.Minute) })), wantReason: "exp", wantEdge: true, wantPresent: [2]bool{true, true}},
		{name: "assertion payload swapped", req: jsonRequest(goodEdge, swapPayload(goodJWT, with(func(a *assertion) { a.sub = "mallory" }))), wantReason: "assertion:", wantEdge: true, wantPresent: [2]bool{true, true}},
		{name: "assertion alg none", req: jsonRequest(goodEdge, unsigned(t)), wantReason: "assertion:", wantEdge: true, wantPresent: [2]bool{true, true}},
		{name: "assertion garbage", req: jsonRequest(goodEdge, "not.a.jwt"), wantReason: "assertion:", wantEdge: true, wantPresent: [2]bool{true, true}},
		{name: "assertion too long", req: jsonRequest(goodEdge, strings.Repeat("a", maxAssertionLen+1)), wantReason: "more than", wantEdge: true, wantPresent: [2]bool{true, true}},
		{name: "duplicate edge header", req: func() *http.Request {
			r := jsonRequest(goodEdge, goodJWT)
			r.Header.Add(edgetoken.Header, goodEdge)
			return r
		}(), wantReason: "more than once", wantAssert: true, wantPresent: [2]bool{true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, rep, body := getReport(t, h, tc.req)
			if tc.wantReason == "" {
				if code != http.StatusOK || !rep.Verified || rep.Reason != "" || rep.Identity == nil {
					t.Fatalf("status %d verified=%v reason=%q, want verified", code, rep.Verified, rep.Reason)
				}
			} else if code != http.StatusForbidden || rep.Verified || rep.Identity != nil || !strings.Contains(rep.Reason, tc.wantReason) {
				t.Fatalf("status %d verified=%v reason=%q, want 403 with %q", code, rep.Verified, rep.Reason, tc.wantReason)
			}
			if rep.Edge.Verified != tc.wantEdge || rep.Assertion.Verified != tc.wantAssert {
				t.Errorf("edge verified=%v (%s), assertion verified=%v (%s); want %v, %v",
					rep.Edge.Verified, rep.Edge.Error, rep.Assertion.Verified, rep.Assertion.Error, tc.wantEdge, tc.wantAssert)
			}
			if got := [2]bool{rep.Edge.Present, rep.Assertion.Present}; got != tc.wantPresent {
				t.Errorf("present %v, want %v", got, tc.wantPresent)
			}
			for _, tok := range tc.req.Header.Values(edgetoken.Header) {
				if len(tok) > 16 && strings.Contains(body, tok) {
					t.Error("the report shows the whole edge token")
				}
			}
			if tok := tc.req.Header.Get(AssertionHeader); len(tok) > 16 && strings.Contains(body, tok) {
				t.Error("the report shows the whole assertion")
			}
		})
	}
}

func TestAppIdentity(t *testing.T) {
	s := newSigner(t, "a1")
	h := newTestApp(t, s, &fakeClock{t: testT0})
	_, rep, _ := getReport(t, h, jsonRequest(mintEdge(t, testHost, testT0), s.mint(t, aliceAssertion())))
	want := Identity{
		Subject: "alice", Email: "alice@example.com", Name: "Alice Anders", Username: "alice",
		Groups: []string{"team-c"}, UserRef: "user:default/alice", Service: "component:default/petstore",
		Environment: "prod", Expiry: testT0.Add(5 * time.Minute),
	}
	got := rep.Identity
	if got == nil || got.Subject != want.Subject || got.Email != want.Email || got.Name != want.Name ||
		got.Username != want.Username || !slices.Equal(got.Groups, want.Groups) || got.UserRef != want.UserRef ||
		got.Service != want.Service || got.Environment != want.Environment || !got.Expiry.Equal(want.Expiry) {
		t.Fatalf("identity %+v, want %+v", got, want)
	}
	if rep.Edge.Claims == nil || rep.Edge.Claims.User != "alice@example.com" || rep.Edge.Claims.Host != testHost {
		t.Errorf("edge claims %+v", rep.Edge.Claims)
	}
}

func TestAppNotConfigured(t *testing.T) {
	h, err := NewApp(AppOptions{Name: "bare"})
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t, "a1")
	code, rep, _ := getReport(t, h, jsonRequest(mintEdge(t, testHost, time.Now()), s.mint(t, aliceAssertion())))
	if code != http.StatusForbidden || rep.Edge.Error != ErrNotConfigured.Error() || rep.Assertion.Error != ErrNotConfigured.Error() {
		t.Fatalf("status %d edge=%q assertion=%q, want both %q", code, rep.Edge.Error, rep.Assertion.Error, ErrNotConfigured)
	}
	for _, opts := range []AppOptions{{}, {Name: "x", JWKSURL: "/relative"}} {
		if _, err := NewApp(opts); err == nil {
			t.Errorf("NewApp(%+v) succeeded", opts)
		}
	}
}

func TestAppHTML(t *testing.T) {
	s := newSigner(t, "a1")
	h := newTestApp(t, s, &fakeClock{t: testT0})
	edge, jwtTok := mintEdge(t, testHost, testT0), s.mint(t, aliceAssertion())
	for _, tc := range []struct {
		name, edge, assertion string
		status                int
		want                  []string
	}{
		{name: "verified", edge: edge, assertion: jwtTok, status: 200,
			want: []string{"✔ verified", "alice@example.com", "team-c", "component:default/petstore", "user:default/alice", "X-Backgate-Edge", edge[:8] + "…"}},
		{name: "not verified", edge: edge, assertion: "", status: 403,
			want: []string{"NOT verified: assertion: header missing", "<h1>petstore</h1>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://"+testHost+"/", nil)
			req.Header.Set("Accept", "text/html,application/json;q=0.9")
			req.Header.Set(edgetoken.Header, tc.edge)
			if tc.assertion != "" {
				req.Header.Set(AssertionHeader, tc.assertion)
			}
			req.Header.Set("Cookie", "bg_session=supersecretsessionvalue; theme=dark")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != tc.status || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("status %d type %q, want %d html", rec.Code, rec.Header().Get("Content-Type"), tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, secret := range []string{tc.edge, "supersecretsessionvalue"} {
				if strings.Contains(body, secret) {
					t.Errorf("page shows the secret %q", secret[:8])
				}
			}
			if !strings.Contains(body, "bg_session=") {
				t.Error("page hides cookie names")
			}
		})
	}
}

// TestAppGolden pins the JSON report format the integrator's tests read.
func TestAppGolden(t *testing.T) {
	s := newSigner(t, "a1")
	h := newTestApp(t, s, &fakeClock{t: testT0.Add(time.Second)})
	for _, tc := range []struct {
		name string
		req  *http.Request
	}{
		{name: "verified", req: jsonRequest(mintEdge(t, testHost, testT0), s.mint(t, aliceAssertion()))},
		{name: "tampered", req: jsonRequest(mintEdge(t, "other.localhost", testT0), "eyJhbGciOiJub25lIn0.e30.")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Header.Set("User-Agent", "golden-test")
			tc.req.Header.Set("Authorization", "Bearer abcdefghijklmnopqrstuvwxyz")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req)
			golden := filepath.Join("testdata", "app-"+tc.name+".json")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, rec.Body.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(rec.Body.Bytes(), want) {
				t.Errorf("report differs from %s:\n%s", golden, rec.Body.String())
			}
		})
	}
}

func TestAppJWKSURL(t *testing.T) {
	s1, s2 := newSigner(t, "a1"), newSigner(t, "a2")
	var fetches atomic.Int32
	var current atomic.Pointer[jwk.Set]
	current.Store(&s1.set)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(*current.Load())
	}))
	defer jwks.Close()
	clock := &fakeClock{t: testT0}
	h, err := NewApp(AppOptions{Name: "petstore", JWKSURL: jwks.URL, HTTPClient: jwks.Client(), EdgeKeys: edgeKeys, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	edge := mintEdge(t, testHost, testT0)
	check := func(tok string, wantOK bool, wantFetches int32) {
		t.Helper()
		_, rep, _ := getReport(t, h, jsonRequest(edge, tok))
		if rep.Verified != wantOK {
			t.Errorf("verified=%v (%s), want %v", rep.Verified, rep.Reason, wantOK)
		}
		if got := fetches.Load(); got != wantFetches {
			t.Errorf("%d JWKS fetches, want %d", got, wantFetches)
		}
	}
	check(s1.mint(t, aliceAssertion()), true, 1)
	check(s1.mint(t, aliceAssertion()), true, 1) // cached
	// Rotation: a token from the new key fails until the refetch gap passed.
	current.Store(&s2.set)
	check(s2.mint(t, aliceAssertion()), false, 1)
	clock.Add(minRefetchGap)
	check(s2.mint(t, aliceAssertion()), true, 2)
	check(s2.mint(t, aliceAssertion()), true, 2)
}

func TestAppStream(t *testing.T) {
	h, err := NewApp(AppOptions{Name: "petstore", StreamInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/stream?n=3")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	resp.Body.Close()
	want := []string{"petstore line 1 of 3", "petstore line 2 of 3", "petstore line 3 of 3"}
	if !slices.Equal(lines, want) {
		t.Fatalf("lines %q, want %q", lines, want)
	}

	for _, bad := range []string{"0", "-1", "x", "1001"} {
		r, err := srv.Client().Get(srv.URL + "/stream?n=" + bad)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("n=%s: status %d, want 400", bad, r.StatusCode)
		}
	}
}

// TestAppStreamFlushes shows each line is flushed: the first line arrives
// while the handler is still waiting an hour for the second.
func TestAppStreamFlushes(t *testing.T) {
	h, err := NewApp(AppOptions{Name: "petstore", StreamInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stream?n=2", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "petstore line 1 of 2\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
}

func TestAppWebSocket(t *testing.T) {
	h, err := NewApp(AppOptions{Name: "petstore"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ws, err := websocket.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", "", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, msg := range []string{"hello", "", strings.Repeat("x", 70000), "ünïcødé"} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo %d bytes, want %d", len(got), len(msg))
		}
	}
}

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "… (0 bytes)"},
		{"abc", "… (3 bytes)"},
		{"abcdefgh", "ab… (8 bytes)"},
		{strings.Repeat("z", 100), "zzzzzzzz… (100 bytes)"},
		{"ééééééé", "é… (14 bytes)"},
	} {
		if got := mask(tc.in); got != tc.want {
			t.Errorf("mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := maskCookies("a=0123456789abcdef; b"); got != "a=0123… (16 bytes); … (1 bytes)" {
		t.Errorf("maskCookies = %q", got)
	}
}

// FuzzApp feeds arbitrary identity headers: the app must not panic and must
// never call them verified.
func FuzzApp(f *testing.F) {
	s := newSigner(f, "a1")
	good := s.mint(f, aliceAssertion())
	edge := mintEdge(f, testHost, testT0)
	f.Add(edge, good, testHost)
	f.Add(edge, good[:len(good)-3], testHost)
	f.Add("bg1.k1.1.2.AAAAAAAAAAAAAAAA.a.b.c.prod.x", "e30.e30.e30", "[::1]:80")
	f.Add(edge+"\x00", "{\"payload\":\"e30\",\"signatures\":[]}", "")
	h := newTestApp(f, s, &fakeClock{t: testT0})
	f.Fuzz(func(t *testing.T, edgeTok, assertTok, host string) {
		if edgeTok == edge && assertTok == good {
			return // the one valid pair
		}
		req := httptest.NewRequest(http.MethodGet, "http://"+testHost+"/?format=json", nil)
		req.Host = host
		req.Header[edgetoken.Header] = []string{edgeTok}
		req.Header[AssertionHeader] = []string{assertTok}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var rep Report
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if rep.Verified || rec.Code != http.StatusForbidden {
			t.Fatalf("garbage verified: %d %+v", rec.Code, rep)
		}
	})
}

func swapPayload(orig, other string) string {
	o, p := strings.Split(orig, "."), strings.Split(other, ".")
	return fmt.Sprintf("%s.%s.%s", o[0], p[1], o[2])
}

func unsigned(t *testing.T) string {
	t.Helper()
	tok, err := jwt.NewBuilder().Subject("alice").Audience([]string{testHost}).Expiration(testT0.Add(time.Hour)).Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwt.Sign(tok, jwt.WithInsecureNoSignature())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
