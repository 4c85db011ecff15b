package auth

import (
	"errors"
	"strings"
	"testing"
)

func allowCorp(h string) bool {
	switch h {
	case "app.corp.example", "docs.corp.example", "app.corp.example:8443":
		return true
	}
	return false
}

func TestValidateReturnURL(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string // "" = rejected
	}{
		{"plain https", "https://app.corp.example/x?y=1#z", "https://app.corp.example/x?y=1#z"},
		{"http", "http://docs.corp.example/", "http://docs.corp.example/"},
		{"no path", "https://app.corp.example", "https://app.corp.example"},
		{"upper-case host", "https://APP.Corp.Example/a", "https://app.corp.example/a"},
		{"upper-case scheme", "HTTPS://app.corp.example/a", "https://app.corp.example/a"},
		{"default port dropped", "https://app.corp.example:443/a", "https://app.corp.example/a"},
		{"allowed odd port", "https://app.corp.example:8443/a", "https://app.corp.example:8443/a"},
		{"encoded slash in query ok", "https://app.corp.example/a?next=%2Fb", "https://app.corp.example/a?next=%2Fb"},

		{"empty", "", ""},
		{"relative path", "/x", ""},
		{"protocol-relative", "//evil.example/x", ""},
		{"slash backslash", "/\\evil.example", ""},
		{"double backslash", "\\\\evil.example", ""},
		{"backslash in authority", "https://app.corp.example\\@evil.example/", ""},
		{"backslash after scheme", "https:\\\\evil.example", ""},
		{"single slash scheme", "https:/app.corp.example/", ""},
		{"no slash scheme", "https:app.corp.example", ""},
		{"tab raw", "https://app.corp.example/\tx", ""},
		{"tab in scheme", "ht\ttps://app.corp.example/", ""},
		{"tab encoded", "https://app.corp.example/%09x", ""},
		{"tab double encoded", "https://app.corp.example/%2509x", ""},
		{"CR encoded", "https://app.corp.example/%0d%0aSet-Cookie:x", ""},
		{"LF raw", "https://app.corp.example/\nx", ""},
		{"CRLF raw", "https://app.corp.example/\r\nx", ""},
		{"NUL encoded", "https://app.corp.example/%00", ""},
		{"space", "https://app.corp.example/a b", ""},
		{"encoded backslash", "https://app.corp.example/%5cevil", ""},
		{"non-ascii", "https://app.corp.example/é", ""},
		{"userinfo", "https://a@app.corp.example/", ""},
		{"userinfo with password", "https://app.corp.example:x@evil.example/", ""},
		{"userinfo trick", "https://app.corp.example@evil.example/", ""},
		{"javascript", "javascript:alert(1)", ""},
		{"javascript with slashes", "javascript://app.corp.example/%0aalert(1)", ""},
		{"data", "data:text/html,<script>alert(1)</script>", ""},
		{"ftp", "ftp://app.corp.example/", ""},
		{"suffix trick", "https://evil-corp.example/", ""},
		{"prefix trick", "https://app.corp.example.evil.com/", ""},
		{"subdomain of allowed", "https://x.app.corp.example/", ""},
		{"trailing dot", "https://app.corp.example./", ""},
		{"weird port not allowed", "https://app.corp.example:8080/", ""},
		{"empty port", "https://app.corp.example:/", ""},
		{"port zero-padded", "https://app.corp.example:0443/", ""},
		{"port out of range", "https://app.corp.example:70000/", ""},
		{"ipv6 literal", "https://[::1]/", ""},
		{"unknown host", "https://evil.example/", ""},
		{"too long", "https://app.corp.example/" + strings.Repeat("a", maxReturnURLLen), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ValidateReturnURL(tc.raw, allowCorp)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("ValidateReturnURL(%q) = %q, want rejection", tc.raw, u)
				}
				if !errors.Is(err, ErrInvalidReturnURL) {
					t.Fatalf("error %v does not wrap ErrInvalidReturnURL", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateReturnURL(%q): %v", tc.raw, err)
			}
			if u.String() != tc.want {
				t.Fatalf("ValidateReturnURL(%q) = %q, want %q", tc.raw, u, tc.want)
			}
		})
	}
	if _, err := ValidateReturnURL("https://app.corp.example/", nil); err == nil {
		t.Error("nil allowHost accepted a URL")
	}
}

func FuzzValidateReturnURL(f *testing.F) {
	for _, s := range []string{
		"https://app.corp.example/x", "//evil.example", "/\\x", "https://a@b", "javascript:x",
		"https://app.corp.example/%09", "http://docs.corp.example:80/a?b#c", "https://app.corp.example:8443",
		"https://evil-corp.example/", "https:/\\app.corp.example", "HTTPS://APP.CORP.EXAMPLE/%2525",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var asked []string
		allow := func(h string) bool {
			asked = append(asked, h)
			return allowCorp(h)
		}
		u, err := ValidateReturnURL(raw, allow)
		if err != nil {
			return
		}
		if !allowCorp(u.Host) {
			t.Fatalf("accepted %q with host %q that is not allowed", raw, u.Host)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("accepted %q with scheme %q", raw, u.Scheme)
		}
		if u.User != nil {
			t.Fatalf("accepted %q with userinfo", raw)
		}
		s := u.String()
		for i := 0; i < len(s); i++ {
			if s[i] < 0x21 || s[i] >= 0x7f || s[i] == '\\' {
				t.Fatalf("accepted %q whose URL %q has byte 0x%02x", raw, s, s[i])
			}
		}
		if checkEncoded(s) != nil {
			t.Fatalf("accepted %q whose URL %q has an encoded control byte", raw, s)
		}
		// The host the browser will use is the one that was allowed.
		again, err := ValidateReturnURL(s, allowCorp)
		if err != nil || again.String() != s {
			t.Fatalf("normalised %q -> %q is not stable: %v", raw, s, err)
		}
	})
}
