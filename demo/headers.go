package demo

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// maskKeep is how many characters of a credential the app shows.
const maskKeep = 8

// sensitiveNames are parts of header names whose values are credentials.
var sensitiveNames = []string{"token", "secret", "assertion", "session", "auth", "key", "password", "edge"}

func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	return slices.ContainsFunc(sensitiveNames, func(s string) bool { return strings.Contains(n, s) })
}

// headerViews lists every header value, sorted by name, masking credentials.
// Cookies keep their names and lose their values.
func headerViews(h http.Header) []HeaderView {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []HeaderView
	for _, n := range names {
		for _, v := range h[n] {
			switch {
			case strings.EqualFold(n, "Cookie"):
				out = append(out, HeaderView{Name: n, Value: maskCookies(v), Masked: true})
			case sensitiveHeader(n):
				out = append(out, HeaderView{Name: n, Value: mask(v), Masked: true})
			default:
				out = append(out, HeaderView{Name: n, Value: v})
			}
		}
	}
	return out
}

// mask keeps the first few characters of v, and fewer of short values.
func mask(v string) string {
	keep := min(maskKeep, len(v)/4)
	// Cut at a rune boundary so the output stays valid UTF-8.
	for keep > 0 && keep < len(v) && v[keep]&0xC0 == 0x80 {
		keep--
	}
	return fmt.Sprintf("%s… (%d bytes)", v[:keep], len(v))
}

func maskCookies(v string) string {
	parts := strings.Split(v, ";")
	for i, p := range parts {
		name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			parts[i] = mask(strings.TrimSpace(p))
			continue
		}
		parts[i] = name + "=" + mask(val)
	}
	return strings.Join(parts, "; ")
}
