package signer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

func mustAlg(t testing.TB, s string) jwa.SignatureAlgorithm {
	t.Helper()
	a, err := ParseAlgorithm(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseEdgeSecret(t *testing.T) {
	hex32 := strings.Repeat("0f", 32)
	tests := []struct {
		name string
		in   []byte
		want []byte // nil means error
	}{
		{"hex", []byte(hex32), bytes.Repeat([]byte{0x0f}, 32)},
		{"hex with newline", []byte(hex32 + "\n"), bytes.Repeat([]byte{0x0f}, 32)},
		{"upper hex 48", []byte(strings.Repeat("AB", 48)), bytes.Repeat([]byte{0xab}, 48)},
		{"raw 32", bytes.Repeat([]byte{0xfe}, 32), bytes.Repeat([]byte{0xfe}, 32)},
		{"raw kept as is", []byte(" raw secret text of more than 32 bytes \n"), []byte(" raw secret text of more than 32 bytes \n")},
		{"short hex", []byte(strings.Repeat("ab", 31)), nil},
		{"short raw", []byte("short"), nil},
		{"empty", nil, nil},
		{"too large", bytes.Repeat([]byte{'x'}, maxKeyFileSize+1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEdgeSecret(tt.in)
			if tt.want == nil {
				if !errors.Is(err, ErrKeyMaterial) {
					t.Errorf("err = %v, want ErrKeyMaterial", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Errorf("got %x, %v; want %x", got, err, tt.want)
			}
		})
	}
}

func FuzzParseEdgeSecret(f *testing.F) {
	f.Add([]byte(strings.Repeat("0f", 32)))
	f.Add(bytes.Repeat([]byte{0}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseEdgeSecret(b)
		if err == nil && len(s) < 32 {
			t.Fatalf("accepted %d-byte secret", len(s))
		}
	})
}

func pemOf(t *testing.T, typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseJWTKey(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf(t, "PRIVATE KEY", der)
	}
	sec1, _ := x509.MarshalECPrivateKey(p256)
	gen := func(alg string) []byte { return testKeyPEM(t, alg) }
	tests := []struct {
		name    string
		in      []byte
		wantAlg string // "" means error
	}{
		{"ES256 pkcs8", gen(AlgES256), AlgES256},
		{"ES384 pkcs8", gen(AlgES384), AlgES384},
		{"RS256 pkcs8", gen(AlgRS256), AlgRS256},
		{"EdDSA pkcs8", gen(AlgEdDSA), AlgEdDSA},
		{"EC sec1", pemOf(t, "EC PRIVATE KEY", sec1), AlgES256},
		{"P-521", pkcs8(p521), ""},
		{"RSA 1024", pkcs8(rsa1024), ""},
		{"public key", pemOf(t, "PUBLIC KEY", []byte{1, 2}), ""},
		{"garbage", []byte("not pem"), ""},
		{"bad der", pemOf(t, "PRIVATE KEY", []byte{1, 2, 3}), ""},
		{"two blocks", append(gen(AlgES256), gen(AlgES256)...), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, alg, err := ParseJWTKey(tt.in)
			if tt.wantAlg == "" {
				if !errors.Is(err, ErrKeyMaterial) {
					t.Errorf("err = %v, want ErrKeyMaterial", err)
				}
				return
			}
			if err != nil || alg.String() != tt.wantAlg || k == nil {
				t.Errorf("got %v %v, want %s", alg, err, tt.wantAlg)
			}
		})
	}
}
