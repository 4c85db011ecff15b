package signer

import (
	"net/http"
	"strings"
	"testing"
)

func TestIsBackgateHeader(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"X-Backgate-Edge", true},
		{"X-Backgate-Assertion", true},
		{"x-backgate-edge", true},
		{"X-BACKGATE-EDGE", true},
		{"x_backgate_edge", true},
		{"X_Backgate_Edge", true},
		{"X-BACKGATE_ASSERTION", true},
		{"x_BaCkGaTe-assertion", true},
		{"X-Backgate-", true},
		{"X-Backgate-Anything-Else", true},
		{"X-Backgate-User", true},
		{"x-backgate_user", true},
		{"X-Backgate", false},
		{"X-Backgat-Edge", false},
		{"XBackgate-Edge", false},
		{"X-Backgateway", false},
		{"Y-Backgate-Edge", false},
		{" X-Backgate-Edge", false},
		{"X-Forwarded-For", false},
		{"", false},
		{"X-Bac\u212agate-Edge", false}, // Kelvin sign: no Unicode folding
		{"X-Backgate\x00Edge", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsBackgateHeader(tt.name); got != tt.want {
				t.Errorf("IsBackgateHeader(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

// spellings are client spellings of backgate headers, as they land in an
// http.Header map: Add canonicalises names with '-', raw keys keep '_'.
var spellings = []string{
	"X-Backgate-Edge", "x-backgate-edge", "X-BACKGATE-EDGE", "x_backgate_edge", "X_BACKGATE_EDGE",
	"X-Backgate_Edge", "X_Backgate-Edge", "X-BACKGATE_ASSERTION", "x-backgate-assertion",
	"X_backgate_assertion", "X-Backgate-Assertion", "X-Backgate-Future-Header", "x_backgate_",
}

// rawUserHeader is a non-canonical name a client can send; a variable so
// that linters do not ask for it to be canonicalised.
var rawUserHeader = "x_forwarded_user"

func TestStripBackgateHeaders(t *testing.T) {
	for _, name := range spellings {
		for _, how := range []string{"raw", "add", "both"} {
			t.Run(how+"/"+name, func(t *testing.T) {
				h := http.Header{}
				h.Set("Accept", "text/html")
				h.Set("X-Request-Id", "r1")
				h[rawUserHeader] = []string{"keep"}
				switch how {
				case "raw":
					h[name] = []string{"forged1", "forged2"}
				case "add":
					h.Add(name, "forged")
				case "both":
					h[name] = []string{"forged1"}
					h.Add(name, "forged2")
					h[strings.ToUpper(name)] = []string{"forged3"}
					h[strings.ToLower(name)] = []string{"forged4"}
				}
				StripBackgateHeaders(h)
				for k, v := range h {
					if IsBackgateHeader(k) {
						t.Errorf("left %q = %q", k, v)
					}
				}
				if len(h) != 3 || h.Get("Accept") != "text/html" || h.Get("X-Request-Id") != "r1" || len(h[rawUserHeader]) != 1 {
					t.Errorf("other headers changed: %v", h)
				}
			})
		}
	}
}

func TestHeadersApply(t *testing.T) {
	h := http.Header{}
	for _, name := range spellings {
		h[name] = []string{"forged"}
	}
	h.Set("Cookie", "a=b")
	Headers{Assertion: "jwt", Edge: "edge"}.Apply(h)
	want := http.Header{"Cookie": {"a=b"}, HeaderAssertion: {"jwt"}, HeaderEdge: {"edge"}}
	if len(h) != len(want) {
		t.Fatalf("headers = %v, want %v", h, want)
	}
	for k, v := range want {
		if len(h[k]) != 1 || h[k][0] != v[0] {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
	// Zero Headers still strip and set nothing.
	h2 := http.Header{"X_Backgate_Edge": {"forged"}}
	Headers{}.Apply(h2)
	if len(h2) != 0 {
		t.Errorf("zero Apply left %v", h2)
	}
}

func TestHeaderStripper(t *testing.T) {
	if _, err := NewHeaderStripper("X-Remote User"); err == nil {
		t.Fatal("invalid extra header name accepted")
	}
	if _, err := NewHeaderStripper(""); err == nil {
		t.Fatal("empty extra header name accepted")
	}
	s, err := NewHeaderStripper("X-Remote-User", "x_forwarded_email")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{
		"X-Remote-User": {"a"}, "x_remote_user": {"b"}, "X-FORWARDED-EMAIL": {"c"}, "X-Forwarded-Email": {"d"},
		"x_backgate_edge": {"e"}, "X-Remote-Users": {"keep"}, "Accept": {"keep"},
	}
	s.Strip(h)
	if len(h) != 2 || h["X-Remote-Users"] == nil || h["Accept"] == nil {
		t.Errorf("after Strip: %v", h)
	}
	var nilStripper *HeaderStripper
	h = http.Header{"X-Remote-User": {"a"}, "X-Backgate-Edge": {"b"}}
	nilStripper.Strip(h)
	if len(h) != 1 || h["X-Remote-User"] == nil {
		t.Errorf("nil stripper: %v", h)
	}
}

// refIsBackgate is the obvious, allocating definition IsBackgateHeader must match.
func refIsBackgate(name string) bool {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c == '_' {
			c = '-'
		}
		b.WriteByte(c)
	}
	return strings.HasPrefix(b.String(), "x-backgate-")
}

func FuzzStripBackgateHeaders(f *testing.F) {
	for _, s := range spellings {
		f.Add(s, "Accept")
	}
	f.Add("X-Backgate", "x-backgatf-edge")
	f.Add("\xffX-Backgate-Edge", "X-B\u0430ckgate-Edge")
	f.Fuzz(func(t *testing.T, a, b string) {
		if IsBackgateHeader(a) != refIsBackgate(a) {
			t.Fatalf("IsBackgateHeader(%q) = %v, reference says %v", a, IsBackgateHeader(a), refIsBackgate(a))
		}
		h := http.Header{}
		h[a] = []string{"1"}
		h.Add(a, "2")
		h[b] = []string{"3"}
		h.Add(b, "4")
		want := map[string]bool{}
		for k := range h {
			if !refIsBackgate(k) {
				want[k] = true
			}
		}
		StripBackgateHeaders(h)
		for k := range h {
			if refIsBackgate(k) {
				t.Fatalf("%q survived", k)
			}
		}
		if len(h) != len(want) {
			t.Fatalf("kept %d headers, want %d", len(h), len(want))
		}
	})
}

func BenchmarkStripHeaders(b *testing.B) {
	base := http.Header{
		"Accept": {"text/html"}, "Accept-Encoding": {"gzip"}, "Accept-Language": {"en"},
		"Cookie": {"s=1"}, "User-Agent": {"Mozilla/5.0"}, "X-Forwarded-For": {"10.0.0.1"},
		"X-Request-Id": {"abc"}, "Referer": {"https://app/"}, "Sec-Fetch-Mode": {"navigate"},
		"Cache-Control": {"no-cache"},
	}
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			StripBackgateHeaders(base)
		}
	})
	b.Run("forged", func(b *testing.B) {
		b.ReportAllocs()
		v := []string{"x"}
		for b.Loop() {
			base["x_backgate_edge"] = v
			base["X-Backgate-Assertion"] = v
			StripBackgateHeaders(base)
		}
	})
}
