package bigip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/proxy/edgetoken"
)

var (
	testNow  = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z
	testKeyA = edgetoken.Key{ID: "k2026a", Secret: bytes.Repeat([]byte{0xa1, 0x5e}, 16)}
	testKeyB = edgetoken.Key{ID: "k2026b", Secret: []byte("0123456789abcdef0123456789abcdef-rotated")}
	// testKeyX is never in any data group.
	testKeyX = edgetoken.Key{ID: "kstranger", Secret: bytes.Repeat([]byte{7}, 32)}
)

const (
	testHost    = "payments.example.com"
	testService = "component:default/payments"
	testPool    = "/Common/payments_prod"
)

func testRoutes() []RouteTarget {
	return []RouteTarget{
		{Service: testService, Environment: "prod", Pool: testPool},
		{Service: "component:default/ledger", Environment: "prod", Pool: "/Common/ledger_prod"},
	}
}

func testClaims() edgetoken.Claims {
	return edgetoken.Claims{
		IssuedAt:    testNow.Add(-10 * time.Second),
		Expiry:      testNow.Add(50 * time.Second),
		ID:          "AAAAAAAAAAAAAAAA",
		Host:        testHost,
		User:        "alice@example.com",
		Service:     testService,
		Environment: "prod",
	}
}

func mint(t testing.TB, k edgetoken.Key, edit func(*edgetoken.Claims)) string {
	t.Helper()
	c := testClaims()
	if edit != nil {
		edit(&c)
	}
	tok, err := edgetoken.Mint(k, c)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok
}

// setField replaces field i of a token without re-signing it.
func setField(tok string, i int, v string) string {
	f := strings.Split(tok, ".")
	f[i] = v
	return strings.Join(f, ".")
}

func b64u(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func renderRule(t testing.TB, o RuleOptions) string {
	t.Helper()
	r, err := RenderRule(o)
	if err != nil {
		t.Fatalf("RenderRule: %v", err)
	}
	if r.Name != RuleName {
		t.Fatalf("rule name %q, want %q", r.Name, RuleName)
	}
	return r.Text
}

func baseScript(keys ...edgetoken.Key) *shimScript {
	s := &shimScript{}
	s.now(testNow)
	for _, g := range RenderDataGroups(keys, testRoutes()) {
		s.dataGroup(DataGroupPath("Common", "", g.Name), g.Records)
	}
	s.pools(testPool, "/Common/ledger_prod", "/Common/fallback")
	return s
}

type ruleCase struct {
	name    string
	headers []string // name, value pairs; Host included explicitly
	// want: "" means forwarded to wantPool; otherwise the deny reason.
	reason   string
	wantPool string
	// goHost is the host passed to the Go verifier ("" = the Host header);
	// goSkip skips the Go cross-check (route-level cases).
	goSkip bool
}

func edge(tok string) []string { return []string{"Host", testHost, edgetoken.Header, tok} }

func TestRuleUnderTclsh(t *testing.T) {
	valid := mint(t, testKeyA, nil)
	long := strings.Repeat("A", edgetoken.MaxTokenLen+1)
	cases := []ruleCase{
		{name: "valid", headers: edge(valid), wantPool: testPool},
		{name: "valid, host with port and upper case", headers: []string{"Host", "Payments.Example.COM:8443", edgetoken.Header, valid}, wantPool: testPool},
		{name: "valid, header name in other case", headers: []string{"Host", testHost, "x-backgate-edge", valid}, wantPool: testPool},
		{name: "valid, other service", headers: edge(mint(t, testKeyA, func(c *edgetoken.Claims) { c.Service = "component:default/ledger" })), wantPool: "/Common/ledger_prod"},
		{name: "missing header", headers: []string{"Host", testHost}, reason: "header_count"},
		{name: "duplicate header", headers: []string{"Host", testHost, edgetoken.Header, valid, edgetoken.Header, valid}, reason: "header_count"},
		{name: "duplicate header, one bad", headers: []string{"Host", testHost, edgetoken.Header, "junk", "X-BACKGATE-EDGE", valid}, reason: "header_count"},
		{name: "empty header", headers: edge(""), reason: "field_count"},
		{name: "oversized header", headers: edge(long), reason: "too_long"},
		{name: "oversized, valid token padded", headers: edge(valid + strings.Repeat(".", edgetoken.MaxTokenLen)), reason: "too_long"},
		{name: "eleven fields", headers: edge(valid + ".x"), reason: "field_count"},
		{name: "nine fields", headers: edge(valid[:strings.LastIndexByte(valid, '.')]), reason: "field_count"},
		{name: "expired", headers: edge(mint(t, testKeyA, func(c *edgetoken.Claims) {
			c.IssuedAt, c.Expiry = testNow.Add(-time.Hour), testNow.Add(-31*time.Second)
		})), reason: "expired"},
		{name: "expired exactly at skew", headers: edge(mint(t, testKeyA, func(c *edgetoken.Claims) {
			c.IssuedAt, c.Expiry = testNow.Add(-time.Hour), testNow.Add(-30*time.Second)
		})), reason: "expired"},
		{name: "expired but within skew", headers: edge(mint(t, testKeyA, func(c *edgetoken.Claims) {
			c.IssuedAt, c.Expiry = testNow.Add(-time.Hour), testNow.Add(-29*time.Second)
		})), wantPool: testPool},
		{name: "issued in the future", headers: edge(mint(t, testKeyA, func(c *edgetoken.Claims) {
			c.IssuedAt, c.Expiry = testNow.Add(31*time.Second), testNow.Add(time.Hour)
		})), reason: "not_yet_valid"},
		{name: "issued in the future within skew", headers: edge(mint(t, testKeyA, func(c *edgetoken.Claims) {
			c.IssuedAt, c.Expiry = testNow.Add(30*time.Second), testNow.Add(time.Hour)
		})), wantPool: testPool},
		{name: "wrong host", headers: []string{"Host", "evil.example.com", edgetoken.Header, valid}, reason: "wrong_host"},
		{name: "host suffix", headers: []string{"Host", "payments.example.com.evil.net", edgetoken.Header, valid}, reason: "wrong_host"},
		{name: "missing host", headers: []string{edgetoken.Header, valid}, reason: "wrong_host"},
		{name: "duplicate host", headers: []string{"Host", testHost, "Host", testHost, edgetoken.Header, valid}, reason: "host_count", goSkip: true},
		{name: "unknown key id", headers: edge(mint(t, testKeyX, nil)), reason: "unknown_kid"},
		{name: "bad signature, other secret same kid", headers: edge(mint(t, edgetoken.Key{ID: testKeyA.ID, Secret: testKeyX.Secret}, nil)), reason: "bad_signature"},
		{name: "bad signature, flipped", headers: edge(setField(valid, 9, flip(strings.Split(valid, ".")[9], 5))), reason: "bad_signature"},
		{name: "signature not canonical length", headers: edge(setField(valid, 9, strings.Split(valid, ".")[9]+"A")), reason: "sig_pattern"},
		{name: "signature with non-zero unused bits", headers: edge(setField(valid, 9, strings.Split(valid, ".")[9][:42]+"B")), reason: "b64_canonical"},
		{name: "host with non-zero unused bits", headers: edge(setField(valid, 5, "cGF5bWVudHMuZXhhbXBsZS5jb21")), reason: "b64_canonical"},
		{name: "malformed base64, length 1 mod 4", headers: edge(setField(valid, 5, "AAAAA")), reason: "b64_pattern"},
		{name: "malformed base64, padded", headers: edge(setField(valid, 5, b64u(testHost)+"==")), reason: "b64_pattern"},
		{name: "malformed base64, std alphabet", headers: edge(setField(valid, 6, "ab+/")), reason: "b64_pattern"},
		{name: "tcl injection in header", headers: edge("bg1.[exec id].$x.{a}.;return.\\.\".x.y.z"), reason: "kid_pattern"},
		{name: "tcl injection in host field", headers: edge(setField(valid, 5, b64u("[pool /Common/fallback]"))), reason: "host_pattern"},
		{name: "uppercase host in token", headers: edge(setField(valid, 5, b64u("PAYMENTS.example.com"))), reason: "host_pattern"},
		{name: "no route", headers: edge(mint(t, testKeyA, func(c *edgetoken.Claims) { c.Environment = "dev" })), reason: "no_route", goSkip: true},
	}
	// Each field tampered, keeping its pattern valid, without re-signing.
	fields := strings.Split(valid, ".")
	tampered := []struct {
		i      int
		v      string
		reason string
	}{
		{0, "bg2", "version"},
		{1, testKeyB.ID, "unknown_kid"},
		{1, "k2026A", "unknown_kid"},
		{2, fmt.Sprint(testNow.Unix() - 9), "bad_signature"},
		{3, fmt.Sprint(testNow.Unix() + 51), "bad_signature"},
		{4, "BAAAAAAAAAAAAAAA", "bad_signature"},
		{5, b64u("ledger.example.com"), "bad_signature"},
		{6, b64u("mallory@example.com"), "bad_signature"},
		{7, b64u("component:default/ledger"), "bad_signature"},
		{8, "dev", "bad_signature"},
		{9, flip(fields[9], 0), "bad_signature"},
	}
	for _, tc := range tampered {
		cases = append(cases, ruleCase{name: fmt.Sprintf("tampered field %d = %s", tc.i, tc.v), headers: edge(setField(valid, tc.i, tc.v)), reason: tc.reason})
	}

	s := baseScript(testKeyA)
	for _, c := range cases {
		s.request(c.name, c.headers...)
	}
	res, _ := runShim(t, renderRule(t, RuleOptions{}), s)
	verifier := edgetoken.Verifier{Keys: keyLookup(testKeyA), Skew: 30 * time.Second, Now: func() time.Time { return testNow }}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := res[c.name]
			checkResult(t, r, c.reason, c.wantPool)
			if c.goSkip {
				return
			}
			// The Go verifier and the iRule must agree on accept/refuse.
			tok, host := "", ""
			n := 0
			for i := 0; i+1 < len(c.headers); i += 2 {
				switch {
				case strings.EqualFold(c.headers[i], edgetoken.Header):
					tok = c.headers[i+1]
					n++
				case c.headers[i] == "Host":
					host = c.headers[i+1]
				}
			}
			_, err := verifier.Verify(tok, host)
			goOK := err == nil && n == 1
			if goOK != (r.Outcome == "pool") {
				t.Errorf("Go verifier err=%v (headers %d) but iRule outcome %q reason %q", err, n, r.Outcome, r.reason())
			}
		})
	}
}

func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func keyLookup(keys ...edgetoken.Key) func(string) ([]byte, bool) {
	return func(kid string) ([]byte, bool) {
		for _, k := range keys {
			if k.ID == kid {
				return k.Secret, true
			}
		}
		return nil, false
	}
}

// checkResult asserts a forward to wantPool (reason == "") or a bare 403
// with the given log reason.
func checkResult(t *testing.T, r shimResult, reason, wantPool string) {
	t.Helper()
	if len(r.Violations) > 0 || r.Error != "" {
		t.Fatalf("rule broke the Tcl 8.4 dialect or raised: violations=%v error=%q", r.Violations, r.Error)
	}
	if reason == "" {
		if r.Outcome != "pool" || r.Pool != wantPool {
			t.Fatalf("outcome %q pool %q (reason %q), want pool %q", r.Outcome, r.Pool, r.reason(), wantPool)
		}
		if h := r.header(edgetoken.Header); len(h) != 0 {
			t.Errorf("edge token header still present after the rule: %q", h)
		}
		if len(r.Logs) != 0 {
			t.Errorf("unexpected log lines on success: %q", r.Logs)
		}
		return
	}
	if r.Outcome != "respond" || r.Status != 403 || r.Pool != "" {
		t.Fatalf("outcome %q status %d pool %q, want a 403 response (reason %q)", r.Outcome, r.Status, r.Pool, reason)
	}
	if got := r.reason(); got != reason {
		t.Errorf("deny reason %q, want %q (logs %q)", got, reason, r.Logs)
	}
	if r.EventsDisabled != "all" {
		t.Errorf("events_disabled %q, want all", r.EventsDisabled)
	}
	for _, l := range r.Logs {
		if strings.Contains(l, "bg1.") || !strings.HasPrefix(l, DefaultLogPrefix+" ") {
			t.Errorf("log line %q leaks the token or lacks the prefix", l)
		}
	}
}

func TestRuleDefaultPool(t *testing.T) {
	s := baseScript(testKeyA)
	s.request("routed", edge(mint(t, testKeyA, nil))...)
	s.request("unrouted", edge(mint(t, testKeyA, func(c *edgetoken.Claims) { c.Environment = "dev" }))...)
	res, _ := runShim(t, renderRule(t, RuleOptions{DefaultPool: "/Common/fallback"}), s)
	checkResult(t, res["routed"], "", testPool)
	checkResult(t, res["unrouted"], "", "/Common/fallback")

	// A route to a pool that does not exist is refused, not an error.
	s = &shimScript{}
	s.now(testNow)
	s.dataGroup("/Common/backgate_edge_keys", RenderDataGroups([]edgetoken.Key{testKeyA}, nil)[0].Records)
	s.dataGroup("/Common/backgate_routes", []Record{{Name: RouteKey(testService, "prod"), Data: "/Common/gone"}})
	s.pools(testPool)
	s.request("missing pool", edge(mint(t, testKeyA, nil))...)
	res, _ = runShim(t, renderRule(t, RuleOptions{}), s)
	checkResult(t, res["missing pool"], "pool_unavailable", "")
}

func TestRuleKeyRotation(t *testing.T) {
	oldTok := mint(t, testKeyA, nil)
	newTok := mint(t, testKeyB, func(c *edgetoken.Claims) { c.ID = "BBBBBBBBBBBBBBBB" })
	s := baseScript(testKeyA)
	s.request("1 old key only: old accepted", edge(oldTok)...)
	s.request("1 old key only: new refused", edge(newTok)...)
	for _, g := range RenderDataGroups([]edgetoken.Key{testKeyB, testKeyA}, testRoutes()) {
		s.dataGroup(DataGroupPath("Common", "", g.Name), g.Records)
	}
	s.request("2 both keys: old accepted", edge(oldTok)...)
	s.request("2 both keys: new accepted", edge(newTok)...)
	for _, g := range RenderDataGroups([]edgetoken.Key{testKeyB}, testRoutes()) {
		s.dataGroup(DataGroupPath("Common", "", g.Name), g.Records)
	}
	s.request("3 old key retired: old refused", edge(oldTok)...)
	s.request("3 old key retired: new accepted", edge(newTok)...)
	res, _ := runShim(t, renderRule(t, RuleOptions{}), s)
	for name, want := range map[string]string{
		"1 old key only: old accepted":    "",
		"1 old key only: new refused":     "unknown_kid",
		"2 both keys: old accepted":       "",
		"2 both keys: new accepted":       "",
		"3 old key retired: old refused":  "unknown_kid",
		"3 old key retired: new accepted": "",
	} {
		t.Run(name, func(t *testing.T) { checkResult(t, res[name], want, testPool) })
	}
}

func TestRuleReplay(t *testing.T) {
	tok := mint(t, testKeyA, nil)
	other := mint(t, testKeyA, func(c *edgetoken.Claims) { c.ID = "CCCCCCCCCCCCCCCC" })
	rule := renderRule(t, RuleOptions{ReplayProtection: true})

	s := baseScript(testKeyA)
	s.request("first use", edge(tok)...)
	s.request("second use", edge(tok)...)
	s.request("other token", edge(other)...)
	// Long after expiry the replay entry is gone, but the token is expired too.
	s.now(testNow.Add(time.Hour))
	s.request("after expiry", edge(tok)...)
	res, _ := runShim(t, rule, s)
	checkResult(t, res["first use"], "", testPool)
	checkResult(t, res["second use"], "replay", "")
	checkResult(t, res["other token"], "", testPool)
	checkResult(t, res["after expiry"], "expired", "")

	// Without replay protection the same token passes twice.
	s = baseScript(testKeyA)
	s.request("first use", edge(tok)...)
	s.request("second use", edge(tok)...)
	res, _ = runShim(t, renderRule(t, RuleOptions{}), s)
	checkResult(t, res["first use"], "", testPool)
	checkResult(t, res["second use"], "", testPool)

	// The replay entry outlives the token's acceptance window: just before
	// exp+skew a replay is still refused.
	s = baseScript(testKeyA)
	s.request("first use", edge(tok)...)
	s.now(testNow.Add(50*time.Second + 29*time.Second))
	s.request("replay at the end of the window", edge(tok)...)
	res, _ = runShim(t, rule, s)
	checkResult(t, res["first use"], "", testPool)
	checkResult(t, res["replay at the end of the window"], "replay", "")
}

func TestRuleOptionsUnderTclsh(t *testing.T) {
	rule := renderRule(t, RuleOptions{
		Partition: "Tenant1", Folder: AS3Folder, HeaderName: "X-Edge", SkewSeconds: 5,
		MaxTokenLen: 400, LogPrefix: "edge:", KeysDataGroup: "keys", RoutesDataGroup: "routes",
	})
	s := &shimScript{}
	s.now(testNow)
	g := RenderDataGroups([]edgetoken.Key{testKeyA}, testRoutes())
	s.dataGroup("/Tenant1/Shared/keys", g[0].Records)
	s.dataGroup("/Tenant1/Shared/routes", g[1].Records)
	s.pools(testPool)
	tok := mint(t, testKeyA, nil)
	s.request("custom header", "Host", testHost, "X-Edge", tok)
	s.request("default header ignored", edge(tok)...)
	s.request("skew 5", "Host", testHost, "X-Edge", mint(t, testKeyA, func(c *edgetoken.Claims) {
		c.IssuedAt, c.Expiry = testNow.Add(-time.Hour), testNow.Add(-6*time.Second)
	}))
	s.request("max len 400", "Host", testHost, "X-Edge", mint(t, testKeyA, func(c *edgetoken.Claims) { c.User = strings.Repeat("u", 300) }))
	res, _ := runShim(t, rule, s)
	checkDenied := func(name, reason string) {
		t.Helper()
		r := res[name]
		if r.Outcome != "respond" || r.Status != 403 || r.reason() != reason || !strings.HasPrefix(r.Logs[0], "edge: ") {
			t.Errorf("%s: outcome %q status %d logs %q, want 403 reason %s with prefix edge:", name, r.Outcome, r.Status, r.Logs, reason)
		}
	}
	if r := res["custom header"]; r.Outcome != "pool" || len(r.header("X-Edge")) != 0 {
		t.Errorf("custom header: outcome %q headers %q", r.Outcome, r.Headers)
	}
	checkDenied("default header ignored", "header_count")
	checkDenied("skew 5", "expired")
	checkDenied("max len 400", "too_long")
}

// TestRuleDifferential mutates valid tokens at random and checks that the
// iRule and the Go verifier agree on every one.
func TestRuleDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "AZaz09-_.=+/: bg1"
	valid := mint(t, testKeyA, nil)
	s := baseScript(testKeyA)
	toks := map[string]string{}
	for i := 0; i < 60; i++ {
		b := []byte(valid)
		for n := 1 + rng.IntN(2); n > 0; n-- {
			switch p := rng.IntN(len(b)); rng.IntN(3) {
			case 0:
				b[p] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				b = append(b[:p], b[p+1:]...)
			default:
				b = append(b[:p], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[p:]...)...)
			}
		}
		name := fmt.Sprintf("mutant %02d", i)
		toks[name] = string(b)
		s.request(name, edge(string(b))...)
	}
	res, _ := runShim(t, renderRule(t, RuleOptions{}), s)
	v := edgetoken.Verifier{Keys: keyLookup(testKeyA), Skew: 30 * time.Second, Now: func() time.Time { return testNow }}
	for name, tok := range toks {
		r := res[name]
		if len(r.Violations) > 0 || r.Error != "" {
			t.Errorf("%s %q: violations %v error %q", name, tok, r.Violations, r.Error)
		}
		_, err := v.Verify(tok, testHost)
		if (err == nil) != (r.Outcome == "pool") {
			t.Errorf("%s %q: Go err=%v, iRule outcome %q reason %q", name, tok, err, r.Outcome, r.reason())
		}
	}
}

func TestShimRefusesWhatBigIPLacks(t *testing.T) {
	rules := map[string]string{
		"dict":               `set d [dict create a 1]; pool /Common/p`,
		"dict inside catch":  `catch { dict create a 1 }; pool /Common/p`,
		"lmap":               `set l [lmap x {1 2} { set x }]; pool /Common/p`,
		"try":                `try { pool /Common/p } on error {e} {}`,
		"string cat":         `set s [string cat a b]; pool /Common/p`,
		"binary encode":      `set s [binary encode base64 abc]; pool /Common/p`,
		"clock milliseconds": `set s [clock milliseconds]; pool /Common/p`,
		"lassign":            `lassign {a b} x y; pool /Common/p`,
		"expansion":          `set l {/Common/p}; pool {*}$l`,
	}
	s := &shimScript{}
	s.pools("/Common/p")
	for name, body := range rules {
		rule := "when HTTP_REQUEST {\n    " + body + "\n}\n"
		s2 := &shimScript{}
		s2.pools("/Common/p")
		s2.request(name)
		s2.lint()
		res, lint := runShim(t, rule, s2)
		r := res[name]
		if len(r.Violations) == 0 && len(lint) == 0 {
			t.Errorf("%s: rule ran without a violation (outcome %q): the shim must refuse it", name, r.Outcome)
		}
	}
	// The control: a plain 8.4 rule runs with no violation.
	s.request("control")
	s.lint()
	res, lint := runShim(t, "when HTTP_REQUEST {\n    set x [string map {a b} abc]\n    pool /Common/p\n}\n", s)
	if r := res["control"]; r.Outcome != "pool" || len(r.Violations) != 0 || len(lint) != 0 {
		t.Errorf("control rule: outcome %q violations %v lint %v", r.Outcome, r.Violations, lint)
	}
}

func TestRenderedRuleIsTcl84Clean(t *testing.T) {
	for _, o := range []RuleOptions{{}, {ReplayProtection: true, DefaultPool: "/Common/fallback"}} {
		s := &shimScript{}
		s.lint()
		_, lint := runShim(t, renderRule(t, o), s)
		if len(lint) != 0 {
			t.Errorf("options %+v: rendered rule uses %v", o, lint)
		}
	}
}

func TestRenderRuleOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     RuleOptions
		field string
	}{
		{"header with quote", RuleOptions{HeaderName: `X-"Edge`}, "HeaderName"},
		{"header with bracket", RuleOptions{HeaderName: `X-[exec]`}, "HeaderName"},
		{"negative skew", RuleOptions{SkewSeconds: -1}, "SkewSeconds"},
		{"huge skew", RuleOptions{SkewSeconds: MaxSkewSeconds + 1}, "SkewSeconds"},
		{"max len above format", RuleOptions{MaxTokenLen: edgetoken.MaxTokenLen + 1}, "MaxTokenLen"},
		{"max len tiny", RuleOptions{MaxTokenLen: 10}, "MaxTokenLen"},
		{"default pool relative", RuleOptions{DefaultPool: "fallback"}, "DefaultPool"},
		{"default pool injection", RuleOptions{DefaultPool: `/Common/x"; pool /Common/y; "`}, "DefaultPool"},
		{"partition", RuleOptions{Partition: "Com mon"}, "Partition"},
		{"folder", RuleOptions{Folder: "a/b"}, "Folder"},
		{"keys dg", RuleOptions{KeysDataGroup: "keys$x"}, "KeysDataGroup"},
		{"same dg", RuleOptions{KeysDataGroup: "dg", RoutesDataGroup: "dg"}, "RoutesDataGroup"},
		{"log prefix", RuleOptions{LogPrefix: `a"b`}, "LogPrefix"},
		{"replay table", RuleOptions{ReplayTable: "a b"}, "ReplayTable"},
		{"priority", RuleOptions{Priority: 1001}, "Priority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RenderRule(tc.o)
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want ErrInvalidOptions naming %s", err, tc.field)
			}
		})
	}
}
