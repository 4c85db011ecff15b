package icontrol

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors callers branch on with errors.Is.
var (
	ErrNotFound     = errors.New("icontrol: not found")          // HTTP 404, or a named virtual server missing
	ErrConflict     = errors.New("icontrol: conflict")           // HTTP 409: created concurrently
	ErrUnauthorized = errors.New("icontrol: unauthorized")       // HTTP 401 after a fresh login, or login refused
	ErrUnavailable  = errors.New("icontrol: device unavailable") // HTTP 503 after the retries
	ErrTLS          = errors.New("icontrol: TLS verification of the management interface failed")
)

// APIError is a failed iControl REST call, naming what was being done to
// which object.
type APIError struct {
	Op     string // e.g. "update data-group"
	Object string // full path, e.g. /Common/backgate_routes, or a list of them
	Status int    // HTTP status; 0 when there was no answer
	Err    error  // as returned by go-bigip (F5's message) or the transport
}

func (e *APIError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("icontrol: %s %s: %v", e.Op, e.Object, e.Err)
	}
	return fmt.Sprintf("icontrol: %s %s: HTTP %d: %v", e.Op, e.Object, e.Status, e.Err)
}

func (e *APIError) Unwrap() error { return e.Err }

// Is maps the HTTP status to the sentinel errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	}
	return false
}

// tlsError reports whether err is a certificate verification failure.
func tlsError(err error) bool {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}
