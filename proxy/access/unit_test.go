package access

import (
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var testSigner = csrfSigner{key: []byte("csrf-key-for-tests-0123456789abcdef"), ttl: 12 * time.Hour}

func TestCSRFToken(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	tok := testSigner.mint("iss", "sub", t0)
	other := csrfSigner{key: []byte("another-key-0123456789abcdef012345"), ttl: 12 * time.Hour}
	tests := []struct {
		name        string
		s           csrfSigner
		tok         string
		iss, sub    string
		now         time.Time
		wantErrPart string
	}{
		{"valid", testSigner, tok, "iss", "sub", t0, ""},
		{"valid until ttl", testSigner, tok, "iss", "sub", t0.Add(12 * time.Hour), ""},
		{"expired", testSigner, tok, "iss", "sub", t0.Add(12*time.Hour + time.Second), "expired"},
		{"small clock skew", testSigner, tok, "iss", "sub", t0.Add(-4 * time.Minute), ""},
		{"future", testSigner, tok, "iss", "sub", t0.Add(-6 * time.Minute), "future"},
		{"other subject", testSigner, tok, "iss", "sub2", t0, "signature"},
		{"other issuer", testSigner, tok, "iss2", "sub", t0, "signature"},
		{"boundary shift", testSigner, testSigner.mint("is", "ssub", t0), "iss", "sub", t0, "signature"},
		{"other key", other, tok, "iss", "sub", t0, "signature"},
		{"empty subject", testSigner, testSigner.mint("iss", "", t0), "iss", "", t0, "no subject"},
		{"empty", testSigner, "", "iss", "sub", t0, "length"},
		{"padded", testSigner, tok + "=", "iss", "sub", t0, "length"},
		{"std alphabet", testSigner, strings.NewReplacer("-", "+", "_", "/").Replace(tok), "iss", "sub", t0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.verify(tt.tok, tt.iss, tt.sub, tt.now)
			if tt.name == "std alphabet" { // only differs when the token has - or _
				if strings.ContainsAny(tok, "-_") && err == nil {
					t.Error("standard-alphabet variant accepted")
				}
				return
			}
			if tt.wantErrPart == "" && err != nil || tt.wantErrPart != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrPart)) {
				t.Errorf("verify = %v, want error containing %q", err, tt.wantErrPart)
			}
		})
	}
}

// FuzzCSRFToken: verify never panics, and nothing but the exact token
// minted for the person and its issued-at time passes.
func FuzzCSRFToken(f *testing.F) {
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	f.Add(testSigner.mint("iss", "sub", now), "iss", "sub")
	f.Add(testSigner.mint("iss", "sub", now.Add(-time.Hour)), "iss", "sub")
	f.Add("", "", "")
	f.Add(strings.Repeat("A", csrfTokenLen), "iss", "sub")
	f.Add("AQAAAABp-lEg"+strings.Repeat("_", csrfTokenLen-12), "i", "s")
	f.Fuzz(func(t *testing.T, tok, iss, sub string) {
		err := testSigner.verify(tok, iss, sub, now)
		if err != nil {
			return
		}
		raw, derr := base64.RawURLEncoding.DecodeString(tok)
		if derr != nil || len(raw) != csrfRawLen {
			t.Fatalf("accepted malformed token %q", tok)
		}
		iat := time.Unix(int64(uint64(raw[1])<<56|uint64(raw[2])<<48|uint64(raw[3])<<40|uint64(raw[4])<<32|
			uint64(raw[5])<<24|uint64(raw[6])<<16|uint64(raw[7])<<8|uint64(raw[8])), 0)
		if testSigner.mint(iss, sub, iat) != tok {
			t.Fatalf("accepted a token that was not minted for %q/%q: %q", iss, sub, tok)
		}
		if iat.After(now.Add(csrfSkew)) || now.Sub(iat) > testSigner.ttl {
			t.Fatalf("accepted a token issued at %v", iat)
		}
	})
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"1h", time.Hour, ""},
		{" 90m ", 90 * time.Minute, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"1m", time.Minute, ""},
		{"", 0, "required"},
		{"59s", 0, "shorter than"},
		{"-1h", 0, "shorter than"},
		{"0d", 0, "not a duration"},
		{"1.5d", 0, "not a duration"},
		{"400d", 0, "not a duration"},
		{"forever", 0, "not a duration"},
		{strings.Repeat("1", 40) + "h", 0, "longer than 32"},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if tt.err == "" && (err != nil || got != tt.want) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d           time.Duration
		short, long string
	}{
		{15 * time.Minute, "15m", "15 minutes"},
		{time.Hour, "1h", "1 hour"},
		{90 * time.Minute, "1h30m", "90 minutes"},
		{24 * time.Hour, "24h", "24 hours"},
		{72 * time.Hour, "3d", "3 days"},
		{7 * 24 * time.Hour, "7d", "7 days"},
		{time.Minute, "1m", "1 minute"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.d); got != tt.short {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.d, got, tt.short)
		}
		if got := humanDuration(tt.d); got != tt.long {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.long)
		}
		if back, err := parseDuration(formatDuration(tt.d)); err != nil || back != tt.d {
			t.Errorf("round trip of %v: %v, %v", tt.d, back, err)
		}
	}
}

func TestRequestURL(t *testing.T) {
	tests := []struct {
		base, service, env, ret, want string
	}{
		{"", petstore, "prod", "https://petstore.example/orders?a=1&b=2",
			"/_backgate/access/request?env=prod&return=https%3A%2F%2Fpetstore.example%2Forders%3Fa%3D1%26b%3D2&service=component%3Adefault%2Fpetstore"},
		{"/access/", "a&b", "", "", "/access/request?service=a%26b"},
	}
	for _, tt := range tests {
		if got := RequestURL(tt.base, tt.service, tt.env, tt.ret); got != tt.want {
			t.Errorf("RequestURL = %q, want %q", got, tt.want)
		}
	}
}

func TestNewHandlerOptions(t *testing.T) {
	hs := newHarness(t)
	ok := hs.h.opt
	tests := []struct {
		name string
		mod  func(o *Options)
		err  string
	}{
		{"fine", func(*Options) {}, ""},
		{"no service", func(o *Options) { o.Service = nil }, "Service"},
		{"no key", func(o *Options) { o.CSRFKey = nil }, "CSRFKey"},
		{"short key", func(o *Options) { o.CSRFKey = []byte("short") }, "at least 32"},
		{"short token", func(o *Options) { o.ServiceTokens, o.Delegating = map[string]string{"x": "short"}, nil }, `service token "x"`},
		{"delegating unknown token", func(o *Options) { o.Delegating = []string{"ghost"} }, `"ghost"`},
		{"relative base", func(o *Options) { o.BasePath = "access" }, "BasePath"},
		{"base with query", func(o *Options) { o.BasePath = "/a?b" }, "BasePath"},
	}
	for _, tt := range tests {
		o := ok
		tt.mod(&o)
		_, err := NewHandler(o)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: NewHandler error %v, want %q", tt.name, err, tt.err)
		}
	}
}

func TestReturnLink(t *testing.T) {
	hs := newHarness(t)
	tests := []struct{ raw, want string }{
		{"/orders?id=1", "/orders?id=1"},
		{"//evil.example/x", ""},
		{"/\\evil.example", ""},
		{"javascript:alert(1)", ""},
		{"https://petstore.example/orders", "https://petstore.example/orders"},
		{"https://petstore.example:443/", "https://petstore.example/"},
		{"https://evil.example/", ""},
		{"https://petstore.example.evil.example/", ""},
		{"/%0d%0aSet-Cookie:x", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "https://petstore.example/_backgate/access/request", nil)
		if got := hs.h.returnLink(r, tt.raw); got != tt.want {
			t.Errorf("returnLink(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		host, origin, site string
		ok                 bool
	}{
		{"a.example", "", "", true},
		{"a.example", "https://a.example", "same-origin", true},
		{"a.example:443", "https://a.example", "", true},
		{"a.example:8443", "https://a.example:8443", "", true},
		{"a.example", "https://A.EXAMPLE", "", true},
		{"a.example", "", "none", true},
		{"a.example", "https://b.example", "", false},
		{"a.example", "https://a.example:8443", "", false},
		{"a.example", "null", "", false},
		{"a.example", "https://a.example/path", "", false},
		{"a.example", "", "same-site", false},
		{"a.example", "", "cross-site", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/", nil)
		r.Host = tt.host
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if tt.site != "" {
			r.Header.Set("Sec-Fetch-Site", tt.site)
		}
		if err := sameOrigin(r); (err == nil) != tt.ok {
			t.Errorf("host %q origin %q site %q: %v, want ok=%v", tt.host, tt.origin, tt.site, err, tt.ok)
		}
	}
}
