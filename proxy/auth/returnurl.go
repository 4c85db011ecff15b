package auth

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidReturnURL is wrapped by every ValidateReturnURL rejection.
var ErrInvalidReturnURL = errors.New("invalid return URL")

// maxReturnURLLen bounds return URLs (they travel in the login cookie).
const maxReturnURLLen = 1536

// ValidateReturnURL checks a post-login redirect target strictly and returns
// it normalised (lower-case host, default port dropped). It accepts only an
// absolute http or https URL of printable ASCII, with no userinfo, no
// backslash, no control or space character (raw or percent-encoded, also
// double-encoded), whose host passes allowHost. allowHost receives the
// lower-case hostname, with ":port" appended only for a non-default port.
// A nil allowHost rejects everything. It is a pure function.
func ValidateReturnURL(raw string, allowHost func(host string) bool) (*url.URL, error) {
	bad := func(reason string) (*url.URL, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalidReturnURL, reason)
	}
	if raw == "" {
		return bad("empty")
	}
	if len(raw) > maxReturnURLLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxReturnURLLen))
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return bad(fmt.Sprintf("forbidden byte 0x%02x at offset %d", c, i))
		}
	}
	if err := checkEncoded(raw); err != nil {
		return bad(err.Error())
	}
	lower := strings.ToLower(raw)
	var scheme string
	switch {
	case strings.HasPrefix(lower, "https://"):
		scheme = "https"
	case strings.HasPrefix(lower, "http://"):
		scheme = "http"
	default:
		return bad("must start with http:// or https://")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("unparseable")
	}
	if u.Scheme != scheme || u.Opaque != "" || u.Host == "" {
		return bad("not an absolute http(s) URL")
	}
	if u.User != nil || strings.Contains(u.Host, "@") {
		return bad("userinfo is not allowed")
	}
	host := normalizeHostPort(u)
	if host == "" {
		return bad("invalid host or port")
	}
	if allowHost == nil || !allowHost(host) {
		return bad(fmt.Sprintf("host %q is not allowed", host))
	}
	u.Host = host
	return u, nil
}

// checkEncoded rejects percent-encoded control characters, spaces and
// backslashes, decoding up to three times to catch double encoding.
func checkEncoded(s string) error {
	for range 3 {
		if !strings.Contains(s, "%") {
			return nil
		}
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
				c := unhex(s[i+1])<<4 | unhex(s[i+2])
				if c <= ' ' || c == 0x7f || c == '\\' {
					return fmt.Errorf("percent-encoded byte 0x%02x", c)
				}
				b.WriteByte(c)
				i += 2
				continue
			}
			b.WriteByte(s[i])
		}
		s = b.String()
	}
	return nil
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// normalizeHostPort returns u's lower-case hostname plus ":port" when the port
// is not the scheme default, or "" when the host or port is malformed. Only
// LDH hostnames and IPv4 literals are accepted.
func normalizeHostPort(u *url.URL) string {
	name := strings.ToLower(u.Hostname())
	port := u.Port()
	if strings.HasSuffix(u.Host, ":") {
		return "" // empty port
	}
	if name == "" || len(name) > 253 || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") ||
		strings.HasPrefix(name, "-") || strings.Contains(name, "..") {
		return ""
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return ""
		}
	}
	if port == "" {
		return name
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return ""
	}
	if (u.Scheme == "https" && n == 443) || (u.Scheme == "http" && n == 80) {
		return name
	}
	return name + ":" + port
}
