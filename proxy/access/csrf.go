package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// CSRF tokens are base64url(version || issued-at || mac) with
// mac = HMAC-SHA256(key, label || issued-at || len(issuer) || issuer ||
// len(subject) || subject). They are bound to the session's person, expire
// after ttl, and need no server-side state.
const (
	csrfVersion  = 1
	csrfLabel    = "backgate/proxy/access/csrf/v1\x00"
	csrfRawLen   = 1 + 8 + sha256.Size
	csrfTokenLen = (csrfRawLen*8 + 5) / 6 // base64url without padding
	csrfSkew     = 5 * time.Minute        // tolerated clock difference between replicas
)

var errCSRF = errors.New("invalid CSRF token")

type csrfSigner struct {
	key []byte
	ttl time.Duration
}

func (c csrfSigner) mac(iat []byte, issuer, subject string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(csrfLabel))
	m.Write(iat)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(issuer)))
	m.Write(n[:])
	m.Write([]byte(issuer))
	binary.BigEndian.PutUint64(n[:], uint64(len(subject)))
	m.Write(n[:])
	m.Write([]byte(subject))
	return m.Sum(nil)
}

// mint returns a token for the person issuer/subject issued at now.
func (c csrfSigner) mint(issuer, subject string, now time.Time) string {
	raw := make([]byte, 0, csrfRawLen)
	raw = append(raw, csrfVersion)
	raw = binary.BigEndian.AppendUint64(raw, uint64(now.Unix()))
	raw = append(raw, c.mac(raw[1:9], issuer, subject)...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// verify checks tok for the person issuer/subject at now.
func (c csrfSigner) verify(tok, issuer, subject string, now time.Time) error {
	if len(tok) != csrfTokenLen {
		return fmt.Errorf("%w: length %d", errCSRF, len(tok))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(raw) != csrfRawLen {
		return fmt.Errorf("%w: not base64url", errCSRF)
	}
	if raw[0] != csrfVersion {
		return fmt.Errorf("%w: version %d", errCSRF, raw[0])
	}
	if subject == "" {
		return fmt.Errorf("%w: the session has no subject", errCSRF)
	}
	if !hmac.Equal(raw[9:], c.mac(raw[1:9], issuer, subject)) {
		return fmt.Errorf("%w: signature mismatch", errCSRF)
	}
	iat := int64(binary.BigEndian.Uint64(raw[1:9]))
	n := now.Unix()
	if iat > n+int64(csrfSkew/time.Second) {
		return fmt.Errorf("%w: issued in the future", errCSRF)
	}
	if n-iat > int64(c.ttl/time.Second) || iat < 0 {
		return fmt.Errorf("%w: expired", errCSRF)
	}
	return nil
}
