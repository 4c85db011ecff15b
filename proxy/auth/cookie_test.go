package auth

import (
	"net/http"
	"testing"
)

func cookieRequest(lines ...string) *http.Request {
	r, _ := http.NewRequest("GET", "http://app.test/", nil)
	for _, l := range lines {
		r.Header.Add("Cookie", l)
	}
	return r
}

// TestCookieValueMatchesNetHTTP: for the cookie headers browsers send,
// cookieValue finds what r.Cookie finds.
func TestCookieValueMatchesNetHTTP(t *testing.T) {
	for _, lines := range [][]string{
		{"_backgate=abc"},
		{"a=1; _backgate=abc; b=2"},
		{"a=1;_backgate=abc"},
		{"  _backgate = abc  ; x=y"},
		{`_backgate="quoted"`},
		{"a=1", "_backgate=second-line"},
		{"_backgate=first; _backgate=second"},
		{"_backgate="},
		{"_backgatex=no; x_backgate=no"},
		{"a=1; b=2"},
		{""},
		{},
		{"; ; _backgate=abc;"},
		{"_backgate=a=b=c"},
	} {
		r := cookieRequest(lines...)
		want, err := r.Cookie("_backgate")
		got, ok := cookieValue(r, "_backgate")
		if (err == nil) != ok || (ok && got != want.Value) {
			t.Errorf("%q: cookieValue = %q, %v; r.Cookie = %v, %v", lines, got, ok, want, err)
		}
	}
}

// FuzzCookieValue: whenever r.Cookie finds the cookie, cookieValue finds
// the same value, unless net/http skipped an earlier cookie of that name
// whose value it found invalid (cookieValue returns that one, and the
// session decoder rejects it: the difference can only deny).
func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; _backgate=abc; b=2", "")
	f.Add(`_backgate="x"`, "_backgate=y")
	f.Fuzz(func(t *testing.T, l1, l2 string) {
		r := cookieRequest(l1, l2)
		want, err := r.Cookie("_backgate")
		if err != nil {
			return
		}
		got, ok := cookieValue(r, "_backgate")
		if !ok {
			t.Fatalf("%q %q: cookieValue found nothing; r.Cookie = %q", l1, l2, want.Value)
		}
		if got == want.Value {
			return
		}
		for _, c := range r.Cookies() {
			if c.Name == "_backgate" && c.Value == got {
				t.Fatalf("%q %q: cookieValue = %q, a valid cookie r.Cookie did not pick (it picked %q)", l1, l2, got, want.Value)
			}
		}
	})
}
