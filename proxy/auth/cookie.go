package auth

import (
	"net/http"
	"net/textproto"
	"strings"
)

// cookieValue returns the value of the first cookie called name in r's
// Cookie headers. It is r.Cookie without parsing, validating and copying
// every other cookie on the request: the session cookie is on every request
// and 1.5 KB long, and r.Cookie spent 2–3 µs on it. A value net/http would
// reject is returned as is; the session decoder then rejects it (its MAC
// fails), so the difference can only deny, never admit.
func cookieValue(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			n, v := splitCookie(part)
			if n != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// CookieName is the name in one "name=value" pair of a Cookie header,
// trimmed as net/http (and the session lookup) trim it: "_backgate =v" is
// the session cookie. The proxy strips backgate's cookies by this name, so
// what it strips covers whatever the lookup reads.
func CookieName(pair string) string {
	n, _ := splitCookie(pair)
	return n
}

// splitCookie splits a pair as net/http does; no "=" is an empty value.
func splitCookie(pair string) (name, value string) {
	n, v, _ := strings.Cut(textproto.TrimString(pair), "=")
	return textproto.TrimString(n), v
}
