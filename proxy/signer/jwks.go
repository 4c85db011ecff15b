package signer

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// JWKSPath is where backgate serves the public keys of the assertion JWT.
const JWKSPath = "/.well-known/backgate/jwks.json"

// DefaultJWKSMaxAge is the Cache-Control max-age of the JWKS response. A new
// JWT key must be published (added as pending) at least this long before it
// activates, so that verifiers caching the JWKS know it in time.
const DefaultJWKSMaxAge = 5 * time.Minute

// jwksDoc is the serialised JWKS for one set of usable key ids.
type jwksDoc struct {
	ids  string
	body []byte
	etag string
}

// jwks returns the JWKS document of every JWT key verifiers accept at now,
// pending ones included.
func (ks *keyset) jwksAt(now time.Time) (*jwksDoc, error) {
	var ids strings.Builder
	set := jwk.NewSet()
	for _, k := range ks.jwt {
		if !k.usable(now) || k.pub == nil {
			continue
		}
		ids.WriteString(k.id)
		ids.WriteByte(',')
		if err := set.AddKey(k.pub); err != nil {
			return nil, fmt.Errorf("signer: JWKS: key %q: %w", k.id, err)
		}
	}
	if d := ks.jwks.Load(); d != nil && d.ids == ids.String() {
		return d, nil
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("signer: JWKS: %w", err)
	}
	sum := sha256.Sum256(body)
	d := &jwksDoc{ids: ids.String(), body: body, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
	ks.jwks.Store(d)
	return d, nil
}

// JWKS returns the JSON Web Key Set of the public keys verifiers must
// accept now: every JWT key that is not retired, pending ones included.
func (k *Keyring) JWKS() ([]byte, error) {
	d, err := k.snapshot().jwksAt(k.now())
	if err != nil {
		return nil, err
	}
	return d.body, nil
}

// jwksHandler serves the JWKS with a validator and a bounded cache lifetime.
type jwksHandler struct {
	ring   *Keyring
	maxAge time.Duration
}

func (h jwksHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	d, err := h.ring.snapshot().jwksAt(h.ring.now())
	if err != nil {
		h.ring.log.Error("signer: JWKS", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(h.maxAge/time.Second)))
	hd.Set("ETag", d.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == d.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(d.body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(d.body)
}
