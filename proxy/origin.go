package proxy

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CheckOrigin reports whether origin, an Origin header's value, names host
// (the request's Host): an http or https origin whose host and port equal
// it, case-insensitively, the scheme's default port counting as absent on
// either side. "null", a path or another scheme is not an origin.
func CheckOrigin(origin, host string) error {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("header Origin %q is not an origin", origin)
	}
	if !strings.EqualFold(StripDefaultPort(u.Scheme, u.Host), StripDefaultPort(u.Scheme, host)) {
		return fmt.Errorf("header Origin %q is another host than %q", origin, host)
	}
	return nil
}

// StripDefaultPort drops the scheme's default port from host:port.
func StripDefaultPort(scheme, hp string) string {
	if h, p, err := net.SplitHostPort(hp); err == nil && (scheme == "https" && p == "443" || scheme == "http" && p == "80") {
		return h
	}
	return hp
}
