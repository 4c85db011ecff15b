package edgetoken_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/proxy/edgetoken"
)

var (
	now  = time.Unix(1767225600, 0)
	keyA = edgetoken.Key{ID: "k2026a", Secret: bytes.Repeat([]byte{0xa1, 0x5e}, 16)}
	keyB = edgetoken.Key{ID: "k2026b", Secret: bytes.Repeat([]byte{0x42}, 40)}
	keyX = edgetoken.Key{ID: "stranger", Secret: bytes.Repeat([]byte{7}, 32)}
)

func claims() edgetoken.Claims {
	return edgetoken.Claims{
		IssuedAt:    now.Add(-10 * time.Second),
		Expiry:      now.Add(50 * time.Second),
		ID:          "AAAAAAAAAAAAAAAA",
		Host:        "payments.example.com",
		User:        "alice@example.com",
		Service:     "component:default/payments",
		Environment: "prod",
	}
}

func mint(t testing.TB, k edgetoken.Key, edit func(*edgetoken.Claims)) string {
	t.Helper()
	c := claims()
	if edit != nil {
		edit(&c)
	}
	tok, err := edgetoken.Mint(k, c)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok
}

func keys(ks ...edgetoken.Key) func(string) ([]byte, bool) {
	return func(kid string) ([]byte, bool) {
		for _, k := range ks {
			if k.ID == kid {
				return k.Secret, true
			}
		}
		return nil, false
	}
}

func setField(tok string, i int, v string) string {
	f := strings.Split(tok, ".")
	f[i] = v
	return strings.Join(f, ".")
}

// resign recomputes the signature, so a test can reach checks after it.
func resign(tok string, k edgetoken.Key) string {
	signed := tok[:strings.LastIndexByte(tok, '.')]
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func b64u(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerify(t *testing.T) {
	valid := mint(t, keyA, nil)
	sig := strings.Split(valid, ".")[9]
	cases := []struct {
		name  string
		token string
		host  string
		want  error // nil: accepted
	}{
		{"valid", valid, "payments.example.com", nil},
		{"host with port", valid, "payments.example.com:8443", nil},
		{"host upper case", valid, "Payments.Example.COM", nil},
		{"second key", mint(t, keyB, nil), "payments.example.com", nil},
		{"wrong host", valid, "evil.example.com", edgetoken.ErrWrongHost},
		{"host suffix", valid, "payments.example.com.evil", edgetoken.ErrWrongHost},
		{"empty host", valid, "", edgetoken.ErrWrongHost},
		{"ipv6 host", valid, "[::1]:443", edgetoken.ErrWrongHost},
		{"expired", mint(t, keyA, func(c *edgetoken.Claims) { c.IssuedAt, c.Expiry = now.Add(-time.Hour), now.Add(-30*time.Second) }), "payments.example.com", edgetoken.ErrExpired},
		{"expired within skew", mint(t, keyA, func(c *edgetoken.Claims) { c.IssuedAt, c.Expiry = now.Add(-time.Hour), now.Add(-29*time.Second) }), "payments.example.com", nil},
		{"future", mint(t, keyA, func(c *edgetoken.Claims) { c.IssuedAt, c.Expiry = now.Add(31*time.Second), now.Add(time.Hour) }), "payments.example.com", edgetoken.ErrNotYetValid},
		{"future within skew", mint(t, keyA, func(c *edgetoken.Claims) { c.IssuedAt, c.Expiry = now.Add(30*time.Second), now.Add(time.Hour) }), "payments.example.com", nil},
		{"unknown kid", mint(t, keyX, nil), "payments.example.com", edgetoken.ErrUnknownKey},
		{"bad signature: other secret", mint(t, edgetoken.Key{ID: keyA.ID, Secret: keyX.Secret}, nil), "payments.example.com", edgetoken.ErrBadSignature},
		{"bad signature: flipped", setField(valid, 9, "B"+sig[1:]), "payments.example.com", edgetoken.ErrBadSignature},
		{"signature unused bits", setField(valid, 9, sig[:42]+"B"), "payments.example.com", edgetoken.ErrMalformed},
		{"signature short", setField(valid, 9, sig[:42]), "payments.example.com", edgetoken.ErrMalformed},
		{"signature padded", setField(valid, 9, sig+"="), "payments.example.com", edgetoken.ErrMalformed},
		{"oversized", valid + strings.Repeat("A", edgetoken.MaxTokenLen), "payments.example.com", edgetoken.ErrMalformed},
		{"empty", "", "payments.example.com", edgetoken.ErrMalformed},
		{"nine fields", valid[:strings.LastIndexByte(valid, '.')], "payments.example.com", edgetoken.ErrMalformed},
		{"eleven fields", valid + ".x", "payments.example.com", edgetoken.ErrMalformed},
		{"bad base64 alphabet", setField(valid, 6, "ab+/"), "payments.example.com", edgetoken.ErrMalformed},
		{"bad base64 length", setField(valid, 6, "abcde"), "payments.example.com", edgetoken.ErrMalformed},
		{"bad base64 padded", setField(valid, 5, b64u("payments.example.com")+"="), "payments.example.com", edgetoken.ErrMalformed},
		{"empty field", setField(valid, 7, ""), "payments.example.com", edgetoken.ErrMalformed},
		{"leading zero time", setField(valid, 2, "0"+strings.Split(valid, ".")[2]), "payments.example.com", edgetoken.ErrMalformed},
		{"time too large", resign(setField(valid, 3, "1099511627776"), keyA), "payments.example.com", edgetoken.ErrMalformed},
		{"exp before iat, signed", resign(setField(valid, 3, "1767225500"), keyA), "payments.example.com", edgetoken.ErrMalformed},
		{"host with port in token, signed", resign(setField(valid, 5, b64u("payments.example.com:443")), keyA), "payments.example.com:443:1", edgetoken.ErrMalformed},
		{"upper-case host in token, signed", resign(setField(valid, 5, b64u("Payments.example.com")), keyA), "payments.example.com", edgetoken.ErrMalformed},
		{"env upper case, signed", resign(setField(valid, 8, "Prod"), keyA), "payments.example.com", edgetoken.ErrMalformed},
		{"short id, signed", resign(setField(valid, 4, "AAAA"), keyA), "payments.example.com", edgetoken.ErrMalformed},
		{"kid too long, signed", resign(setField(valid, 1, strings.Repeat("k", 33)), keyA), "payments.example.com", edgetoken.ErrMalformed},
	}
	// Each field tampered with a value that still matches its pattern.
	f := strings.Split(valid, ".")
	for i, v := range []string{"bg2", keyB.ID, "1767225591", "1767225651", "BAAAAAAAAAAAAAAA", b64u("ledger.example.com"), b64u("mallory@example.com"), b64u("component:default/ledger"), "dev"} {
		want := edgetoken.ErrBadSignature
		switch i {
		case 0:
			want = edgetoken.ErrMalformed
		}
		if v == f[i] {
			t.Fatalf("tamper value for field %d equals the original", i)
		}
		cases = append(cases, struct {
			name  string
			token string
			host  string
			want  error
		}{fmt.Sprintf("tampered field %d", i), setField(valid, i, v), "payments.example.com", want})
	}
	v := edgetoken.Verifier{Keys: keys(keyA, keyB), Skew: 30 * time.Second, Now: func() time.Time { return now }}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token, tc.host)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Host != "payments.example.com" || c.User != "alice@example.com" || c.Environment != "prod" {
					t.Errorf("claims %+v", c)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if c != (edgetoken.Claims{}) {
				t.Errorf("claims returned with an error: %+v", c)
			}
		})
	}
}

func TestMintRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  edgetoken.Key
		edit func(*edgetoken.Claims)
	}{
		{"short secret", edgetoken.Key{ID: "k", Secret: make([]byte, 31)}, nil},
		{"bad kid", edgetoken.Key{ID: "k.1", Secret: keyA.Secret}, nil},
		{"host with port", keyA, func(c *edgetoken.Claims) { c.Host = "a.example:443" }},
		{"host upper", keyA, func(c *edgetoken.Claims) { c.Host = "A.example" }},
		{"empty user", keyA, func(c *edgetoken.Claims) { c.User = "" }},
		{"empty service", keyA, func(c *edgetoken.Claims) { c.Service = "" }},
		{"env", keyA, func(c *edgetoken.Claims) { c.Environment = "Prod" }},
		{"exp not after iat", keyA, func(c *edgetoken.Claims) { c.Expiry = c.IssuedAt }},
		{"id length", keyA, func(c *edgetoken.Claims) { c.ID = "short" }},
		{"field too long", keyA, func(c *edgetoken.Claims) { c.User = strings.Repeat("u", 800) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := claims()
			if tc.edit != nil {
				tc.edit(&c)
			}
			if tok, err := edgetoken.Mint(tc.key, c); err == nil {
				t.Fatalf("Mint accepted: %q", tok)
			}
		})
	}
	// An empty ID gets a fresh random one.
	c := claims()
	c.ID = ""
	t1, err1 := edgetoken.Mint(keyA, c)
	t2, err2 := edgetoken.Mint(keyA, c)
	if err1 != nil || err2 != nil || strings.Split(t1, ".")[4] == strings.Split(t2, ".")[4] {
		t.Errorf("random ids: %v %v %q %q", err1, err2, t1, t2)
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"Example.COM":      "example.com",
		"example.com:8443": "example.com",
		"example.com":      "example.com",
		"[::1]:443":        "[::1]",
		"[::1]":            "[::1]",
		"[::1":             "[::1",
		"":                 "",
		"a:b:c":            "a:b",
	} {
		if got := edgetoken.NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// fuzzKey signs the seed corpus, so the fuzzer starts from tokens whose
// signatures verify.
var fuzzKey = edgetoken.Key{ID: "fuzz", Secret: bytes.Repeat([]byte{0x5a}, 32)}

func FuzzParse(f *testing.F) {
	f.Add(mint(f, fuzzKey, nil))
	f.Add(mint(f, fuzzKey, func(c *edgetoken.Claims) { c.User = "Zoë <zoe@example.com>"; c.ID = "_-_-0123456789zZ" }))
	f.Add(mint(f, keyA, nil))
	f.Add("bg1.a.1.2.AAAAAAAAAAAAAAAA.aA.aA.aA.e.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Add("..........")
	f.Fuzz(func(t *testing.T, token string) {
		c, signed, sig, err := edgetoken.Parse(token)
		if err != nil {
			if !errors.Is(err, edgetoken.ErrMalformed) {
				t.Fatalf("Parse error not ErrMalformed: %v", err)
			}
			return
		}
		if len(sig) != sha256.Size || signed+"."+base64.RawURLEncoding.EncodeToString(sig) != token {
			t.Fatalf("signed %q + sig do not make up the token %q", signed, token)
		}
		// Whatever Parse accepts re-mints to the same signed bytes, and to
		// the same token when its signature is valid for the key.
		re, err := edgetoken.Mint(edgetoken.Key{ID: c.KeyID, Secret: fuzzKey.Secret}, c)
		if err != nil {
			t.Fatalf("Parse accepted claims Mint refuses: %v (%q)", err, token)
		}
		if re[:strings.LastIndexByte(re, '.')] != signed {
			t.Fatalf("re-minted signed bytes differ:\n got %q\nwant %q", re, token)
		}
		m := hmac.New(sha256.New, fuzzKey.Secret)
		m.Write([]byte(signed))
		if hmac.Equal(m.Sum(nil), sig) != (re == token) {
			t.Fatalf("signature validity and re-mint equality disagree for %q", token)
		}
	})
}

func BenchmarkMint(b *testing.B) {
	c := claims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := edgetoken.Mint(keyA, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	tok := mint(b, keyA, nil)
	v := edgetoken.Verifier{Keys: keys(keyA), Skew: 30 * time.Second, Now: func() time.Time { return now }}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok, "payments.example.com:443"); err != nil {
			b.Fatal(err)
		}
	}
}
