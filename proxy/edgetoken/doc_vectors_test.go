package edgetoken_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/proxy/edgetoken"
)

// docVectors are the test vectors of docs/edge-token.md.
func docVectors() []struct {
	key    edgetoken.Key
	claims edgetoken.Claims
} {
	k1 := make([]byte, 32)
	for i := range k1 {
		k1[i] = byte(i)
	}
	return []struct {
		key    edgetoken.Key
		claims edgetoken.Claims
	}{
		{edgetoken.Key{ID: "k2026a", Secret: k1}, edgetoken.Claims{
			IssuedAt: time.Unix(1767225600, 0), Expiry: time.Unix(1767225660, 0), ID: "dGVzdHZlY3Rvci0x",
			Host: "payments.example.com", User: "alice@example.com", Service: "component:default/payments", Environment: "prod",
		}},
		{edgetoken.Key{ID: "legacy_key-2", Secret: []byte("backgate test vector key number two!!!!!")}, edgetoken.Claims{
			IssuedAt: time.Unix(1767225600, 0), Expiry: time.Unix(1767229200, 0), ID: "_-_-0123456789zZ",
			Host: "xn--bcher-kva.example", User: "Zoë <zoe@example.com>", Service: "resource:ops/db?~>", Environment: "staging-eu",
		}},
	}
}

// TestDocVectors regenerates the vectors of docs/edge-token.md and checks
// that the page shows each key, signed string, MAC and token verbatim, and
// that the table of verification outcomes holds.
func TestDocVectors(t *testing.T) {
	docBytes, err := os.ReadFile(filepath.Join("..", "..", "docs", "edge-token.md"))
	if err != nil {
		t.Fatalf("read the spec: %v", err)
	}
	doc := string(docBytes)
	var tokens []string
	var ks []edgetoken.Key
	for _, v := range docVectors() {
		tok, err := edgetoken.Mint(v.key, v.claims)
		if err != nil {
			t.Fatalf("Mint: %v", err)
		}
		signed := tok[:strings.LastIndexByte(tok, '.')]
		m := hmac.New(sha256.New, v.key.Secret)
		m.Write([]byte(signed))
		for what, s := range map[string]string{
			"key hex":     "`" + hex.EncodeToString(v.key.Secret) + "`",
			"signed":      "\n" + signed + "\n",
			"mac hex":     "`" + hex.EncodeToString(m.Sum(nil)) + "`",
			"token":       "\n" + tok + "\n",
			"key id":      "`" + v.key.ID + "`",
			"token id":    "`" + v.claims.ID + "`",
			"environment": "`" + v.claims.Environment + "`",
		} {
			if !strings.Contains(doc, s) {
				t.Errorf("docs/edge-token.md lacks the %s of vector %s: %q", what, v.key.ID, strings.TrimSpace(s))
			}
		}
		tokens = append(tokens, tok)
		ks = append(ks, v.key)
	}

	t1 := tokens[0]
	sig := strings.Split(t1, ".")[9]
	host := "payments.example.com"
	for _, tc := range []struct {
		token string
		now   int64
		host  string
		want  error
	}{
		{t1, 1767225630, host, nil},
		{t1, 1767225630, "Payments.Example.COM:8443", nil},
		{t1, 1767225630, "evil.example.com", edgetoken.ErrWrongHost},
		{t1, 1767225570, host, nil},
		{t1, 1767225569, host, edgetoken.ErrNotYetValid},
		{t1, 1767225689, host, nil},
		{t1, 1767225690, host, edgetoken.ErrExpired},
		{setField(t1, 9, "d"+sig[1:]), 1767225630, host, edgetoken.ErrBadSignature},
		{setField(t1, 9, sig[:42]+"B"), 1767225630, host, edgetoken.ErrMalformed},
		{setField(t1, 5, strings.Split(t1, ".")[5]+"="), 1767225630, host, edgetoken.ErrMalformed},
		{setField(t1, 1, "k2026b"), 1767225630, host, edgetoken.ErrUnknownKey},
		{setField(t1, 8, "dev"), 1767225630, host, edgetoken.ErrBadSignature},
		{tokens[1], 1767225630, "xn--bcher-kva.example", nil},
	} {
		v := edgetoken.Verifier{Keys: keys(ks...), Skew: 30 * time.Second, Now: func() time.Time { return time.Unix(tc.now, 0) }}
		_, err := v.Verify(tc.token, tc.host)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("Verify(%q, now=%d, host=%q) = %v, want %v", tc.token, tc.now, tc.host, err, tc.want)
		}
	}
	if sig[0] != 'c' || !strings.HasSuffix(sig, "A") || !strings.Contains(doc, "`c` → `d`") || !strings.Contains(doc, "`A` → `B`") {
		t.Errorf("the outcome table's tampering descriptions no longer match vector 1's signature %q", sig)
	}
}
