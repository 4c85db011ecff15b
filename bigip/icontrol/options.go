package icontrol

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults used when the matching Options field is zero.
const (
	DefaultPartition     = "Common"
	DefaultTimeout       = 30 * time.Second
	DefaultRetries503    = 2
	DefaultRetryWait     = 2 * time.Second
	DefaultLoginProvider = "tmos"
)

// Options configure a connection to one BIG-IP management interface. Every
// zero value has the meaning its comment gives.
type Options struct {
	// URL of the management interface: "https://host[:port]" with no path,
	// query or credentials. Required.
	URL string
	// Username and Password of a BIG-IP account allowed to change LTM objects
	// in Partition. The caller reads the password from a file or the
	// environment; this package never logs it. Both required.
	Username string
	Password string
	// BasicAuth sends the username and password with every request (HTTP
	// Basic). False (the default) logs in once for a token (iControl REST
	// token authentication, needed for remote auth providers) and sends only
	// the token, logging in again when the token is refused.
	BasicAuth bool
	// LoginProvider is the loginProviderName sent at login; "" means "tmos".
	LoginProvider string
	// CAFile is a PEM file with the CA certificate(s) that signed the
	// management interface's certificate; only they are trusted. "" means
	// the system roots. Exclusive with InsecureSkipVerify.
	CAFile string
	// InsecureSkipVerify turns off certificate verification of the
	// management interface. Lab use only; false by default.
	InsecureSkipVerify bool
	// Partition holding backgate's objects and virtual servers; "" means
	// "Common".
	Partition string
	// Timeout bounds each HTTP request (including retries of 503s); 0 means
	// 30 s. The context passed to each call bounds it as well.
	Timeout time.Duration
	// Retries503 is how many times a 503 answer (BIG-IP busy) is retried;
	// 0 means 2, a negative value means never.
	Retries503 int
	// RetryWait is the pause before retrying a 503; 0 means 2 s.
	RetryWait time.Duration
	// Logger receives one record per login and per change applied; nil
	// means discard. Secrets, tokens and record data are never logged.
	Logger *slog.Logger
}

// ErrInvalid is wrapped by every error about bad Options, a bad
// bigip.Desired or bad keys.
var ErrInvalid = errors.New("icontrol: invalid input")

// objectName is what this package accepts as a BIG-IP object or partition
// name: no "/" or "~" (path separators in iControl REST), no spaces.
var objectName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$`)

// Validate reports every bad field, naming it. It does no I/O.
func (o Options) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: Options.%s: %s", ErrInvalid, field, fmt.Sprintf(format, a...)))
	}
	if o.URL == "" {
		bad("URL", "required")
	} else if u, err := url.Parse(o.URL); err != nil {
		bad("URL", "%q does not parse: %v", o.URL, err)
	} else {
		switch {
		case u.Scheme != "https":
			bad("URL", "%q: scheme must be https", o.URL)
		case u.Host == "" || u.Hostname() == "":
			bad("URL", "%q: host required", o.URL)
		case u.User != nil:
			bad("URL", "%q: must not carry credentials (use Username and Password)", redactURL(u))
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
			bad("URL", "%q: must have no path, query or fragment", o.URL)
		}
	}
	if o.Username == "" {
		bad("Username", "required")
	} else if strings.ContainsAny(o.Username, "\x00\r\n:") {
		bad("Username", "must not contain NUL, CR, LF or ':'")
	}
	if o.Password == "" {
		bad("Password", "required")
	}
	if o.LoginProvider != "" && !objectName.MatchString(o.LoginProvider) {
		bad("LoginProvider", "%q is not a valid provider name", o.LoginProvider)
	}
	if o.CAFile != "" && o.InsecureSkipVerify {
		bad("CAFile", "set together with InsecureSkipVerify; choose one")
	}
	if o.Partition != "" && !objectName.MatchString(o.Partition) {
		bad("Partition", "%q is not a valid partition name", o.Partition)
	}
	if o.Timeout < 0 {
		bad("Timeout", "%s is negative", o.Timeout)
	}
	if o.RetryWait < 0 {
		bad("RetryWait", "%s is negative", o.RetryWait)
	}
	return errors.Join(errs...)
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return "https://***@" + c.Host
}

func (o Options) partition() string {
	if o.Partition == "" {
		return DefaultPartition
	}
	return o.Partition
}

func (o Options) timeout() time.Duration {
	if o.Timeout == 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

func (o Options) retries503() int {
	switch {
	case o.Retries503 == 0:
		return DefaultRetries503
	case o.Retries503 < 0:
		return 0
	}
	return o.Retries503
}

func (o Options) retryWait() time.Duration {
	if o.RetryWait == 0 {
		return DefaultRetryWait
	}
	return o.RetryWait
}

func (o Options) loginProvider() string {
	if o.LoginProvider == "" {
		return DefaultLoginProvider
	}
	return o.LoginProvider
}
