package signer

import (
	"fmt"
	"net/http"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/backgate/backgate/proxy/edgetoken"
)

// Names of the request headers backgate sets on every allowed request.
const (
	// HeaderAssertion carries the signed JWT for applications and BIG-IP APM.
	HeaderAssertion = "X-Backgate-Assertion"
	// HeaderEdge carries the HMAC edge token checked by the BIG-IP iRule.
	HeaderEdge = edgetoken.Header
)

// headerPrefix is the reserved namespace, lower-cased with '-' separators.
const headerPrefix = "x-backgate-"

// IsBackgateHeader reports whether name lies in backgate's reserved
// X-Backgate- namespace, comparing ASCII letters case-insensitively and
// treating '_' as '-' (CGI, WSGI, PHP and several proxies fold both to the
// same variable, so X_Backgate_Edge would reach an application as if it were
// X-Backgate-Edge). Only ASCII is folded: no Unicode look-alikes match.
func IsBackgateHeader(name string) bool {
	if len(name) < len(headerPrefix) {
		return false
	}
	for i := 0; i < len(headerPrefix); i++ {
		if foldHeaderByte(name[i]) != headerPrefix[i] {
			return false
		}
	}
	return true
}

// foldHeaderByte lower-cases an ASCII letter and maps '_' to '-'.
func foldHeaderByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_':
		return '-'
	}
	return c
}

// StripBackgateHeaders deletes from h every header for which
// IsBackgateHeader is true, however the client spelled it. It walks the map
// rather than calling h.Del, because http.Header only canonicalises names
// made of letters, digits and '-': a name with '_' is stored as received.
// Call it on the outbound request before setting backgate's own headers.
func StripBackgateHeaders(h http.Header) {
	for name := range h {
		if IsBackgateHeader(name) {
			delete(h, name)
		}
	}
}

// HeaderStripper removes backgate's headers and a configured list of other
// identity headers (for example X-Remote-User or X-Forwarded-Email) that an
// upstream must only ever receive from backgate. Names are matched like
// IsBackgateHeader: ASCII case-insensitive, '_' equal to '-'.
type HeaderStripper struct {
	extra []string // folded names
}

// NewHeaderStripper returns a stripper for backgate's headers plus extra.
// An extra name must be a non-empty HTTP token.
func NewHeaderStripper(extra ...string) (*HeaderStripper, error) {
	s := &HeaderStripper{}
	for i, name := range extra {
		if !httpguts.ValidHeaderFieldName(name) { // an RFC 9110 token
			return nil, fmt.Errorf("signer: extra strip header %d %q is not a valid header name", i, name)
		}
		s.extra = append(s.extra, foldHeaderName(name))
	}
	return s, nil
}

// Strip deletes every backgate header and every configured extra header
// from h. A nil *HeaderStripper strips backgate's headers only.
func (s *HeaderStripper) Strip(h http.Header) {
	for name := range h {
		if IsBackgateHeader(name) || (s != nil && s.isExtra(name)) {
			delete(h, name)
		}
	}
}

func (s *HeaderStripper) isExtra(name string) bool {
	for _, x := range s.extra {
		if foldedEqual(name, x) {
			return true
		}
	}
	return false
}

// foldedEqual reports whether name folds to folded.
func foldedEqual(name, folded string) bool {
	if len(name) != len(folded) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if foldHeaderByte(name[i]) != folded[i] {
			return false
		}
	}
	return true
}

func foldHeaderName(name string) string {
	b := []byte(name)
	for i := range b {
		b[i] = foldHeaderByte(b[i])
	}
	return string(b)
}

// Headers are the signed identity headers for one request.
type Headers struct {
	Assertion string    // JWT, value of HeaderAssertion
	Edge      string    // edge token, value of HeaderEdge
	Expiry    time.Time // when both tokens expire

	// hdr is the non-empty tokens as a header, built once by Signer.Sign.
	// (A pointer keeps Headers comparable: equal when the same mint.)
	hdr *http.Header
}

// Header returns the non-empty tokens as a header. For Headers from
// Signer.Sign it is built once when they are minted and shared by every
// request they are reused for: the caller must not modify it or its
// values (copy the entries into a request's own header, as Apply does).
func (hs Headers) Header() http.Header {
	if hs.hdr != nil {
		return *hs.hdr
	}
	return hs.build()
}

func (hs Headers) build() http.Header {
	h := make(http.Header, 2)
	hs.set(h)
	return h
}

// set puts the non-empty tokens of hs on h.
func (hs Headers) set(h http.Header) {
	if hs.Assertion != "" {
		h[HeaderAssertion] = []string{hs.Assertion}
	}
	if hs.Edge != "" {
		h[HeaderEdge] = []string{hs.Edge}
	}
}

// Apply strips every client-supplied backgate header from h (see
// StripBackgateHeaders) and then sets the non-empty tokens of hs, so a
// request can never carry both a forged and a real copy.
func (hs Headers) Apply(h http.Header) {
	StripBackgateHeaders(h)
	hs.set(h)
}
