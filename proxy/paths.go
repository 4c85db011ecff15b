package proxy

import (
	"errors"
	"net"
	"strings"
)

// errBadPath is returned for request paths backgate refuses to route.
var errBadPath = errors.New("request path is not in canonical form")

// checkPath refuses paths whose meaning could differ between backgate and the
// upstream: dot segments (raw or percent-encoded), encoded slashes and
// backslashes, backslashes, NUL and other control characters, and anything
// that is not an absolute path. Routing decisions are made on the path
// exactly as forwarded, so what is matched is what BIG-IP sees.
func checkPath(escaped string) error {
	if !strings.HasPrefix(escaped, "/") || strings.HasPrefix(escaped, "//") {
		return errBadPath
	}
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return errBadPath
		}
		if c == '%' {
			if i+2 >= len(escaped) {
				return errBadPath
			}
			switch strings.ToLower(escaped[i+1 : i+3]) {
			case "2f", "5c", "2e", "00":
				return errBadPath
			}
			if escaped[i+1] < '2' { // %0X and %1X: control characters
				return errBadPath
			}
		}
	}
	for rest := escaped; ; {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." {
			return errBadPath
		}
		if !more {
			return nil
		}
		rest = after
	}
}

// hostOnly lower-cases host and removes a port.
func hostOnly(hostport string) string {
	h := strings.ToLower(hostport)      // no copy when already lower case
	if strings.IndexByte(h, ':') >= 0 { // (SplitHostPort's "missing port" error allocates)
		if host, _, err := net.SplitHostPort(h); err == nil {
			return strings.Trim(host, "[]")
		}
	}
	return strings.Trim(h, "[]")
}
