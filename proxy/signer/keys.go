package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/backgate/backgate/proxy/edgetoken"
)

// Supported JWT signature algorithms.
const (
	AlgES256 = "ES256" // ECDSA P-256, the default
	AlgES384 = "ES384" // ECDSA P-384
	AlgRS256 = "RS256" // RSA PKCS#1 v1.5, 3072-bit when generated
	AlgEdDSA = "EdDSA" // Ed25519
)

// DefaultAlgorithm is used for generated JWT keys when none is configured.
const DefaultAlgorithm = AlgES256

const (
	edgeSecretLen  = 32   // bytes of a generated edge secret
	rsaGenBits     = 3072 // size of a generated RSA key
	rsaMinBits     = 2048 // smallest RSA key accepted from a file
	maxKeyFileSize = 64 << 10
)

// ErrKeyMaterial is wrapped by every error about the content of a key file.
var ErrKeyMaterial = errors.New("signer: bad key material")

// ParseAlgorithm returns the jwa algorithm named by s ("" means
// DefaultAlgorithm). Only ES256, ES384, RS256 and EdDSA are accepted.
func ParseAlgorithm(s string) (jwa.SignatureAlgorithm, error) {
	switch s {
	case "", AlgES256:
		return jwa.ES256, nil
	case AlgES384:
		return jwa.ES384, nil
	case AlgRS256:
		return jwa.RS256, nil
	case AlgEdDSA:
		return jwa.EdDSA, nil
	}
	return "", fmt.Errorf("signer: algorithm %q: want one of %s, %s, %s, %s", s, AlgES256, AlgES384, AlgRS256, AlgEdDSA)
}

// ParseEdgeSecret decodes an edge key file: if the content, without
// surrounding white space, is only hex digits of even length it is hex,
// otherwise the file's bytes are the secret as they are. Either way the
// secret must be at least edgetoken.MinSecretLen bytes.
func ParseEdgeSecret(b []byte) ([]byte, error) {
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: edge key is %d bytes, more than %d", ErrKeyMaterial, len(b), maxKeyFileSize)
	}
	t := bytes.TrimSpace(b)
	secret := b
	if len(t) > 0 && len(t)%2 == 0 && isHex(t) {
		d := make([]byte, hex.DecodedLen(len(t)))
		if _, err := hex.Decode(d, t); err != nil {
			return nil, fmt.Errorf("%w: edge key hex: %v", ErrKeyMaterial, err)
		}
		secret = d
	} else {
		secret = bytes.Clone(secret)
	}
	if len(secret) < edgetoken.MinSecretLen {
		return nil, fmt.Errorf("%w: edge key is %d bytes, need at least %d", ErrKeyMaterial, len(secret), edgetoken.MinSecretLen)
	}
	return secret, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// encodeEdgeSecret is the on-disk form of a generated edge secret.
func encodeEdgeSecret(secret []byte) []byte {
	return []byte(hex.EncodeToString(secret) + "\n")
}

func newEdgeSecret() ([]byte, error) {
	s := make([]byte, edgeSecretLen)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("signer: generate edge key: %w", err)
	}
	return s, nil
}

// ParseJWTKey decodes a PEM private key: PKCS#8 ("PRIVATE KEY") holding an
// ECDSA P-256/P-384, RSA (2048 bits or more) or Ed25519 key, or for
// convenience SEC 1 ("EC PRIVATE KEY") and PKCS#1 ("RSA PRIVATE KEY"). It
// returns the key and the algorithm its type implies.
func ParseJWTKey(b []byte) (crypto.Signer, jwa.SignatureAlgorithm, error) {
	if len(b) > maxKeyFileSize {
		return nil, "", fmt.Errorf("%w: JWT key is %d bytes, more than %d", ErrKeyMaterial, len(b), maxKeyFileSize)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, "", fmt.Errorf("%w: JWT key: no PEM block", ErrKeyMaterial)
	}
	if p, _ := pem.Decode(rest); p != nil {
		return nil, "", fmt.Errorf("%w: JWT key: more than one PEM block", ErrKeyMaterial)
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("%w: JWT key: PEM type %q, want PRIVATE KEY", ErrKeyMaterial, block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: JWT key: %v", ErrKeyMaterial, err)
	}
	return classifyKey(key)
}

func classifyKey(key any) (crypto.Signer, jwa.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return k, jwa.ES256, nil
		case elliptic.P384():
			return k, jwa.ES384, nil
		}
		return nil, "", fmt.Errorf("%w: JWT key: EC curve %s, want P-256 or P-384", ErrKeyMaterial, k.Curve.Params().Name)
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < rsaMinBits {
			return nil, "", fmt.Errorf("%w: JWT key: RSA key of %d bits, need at least %d", ErrKeyMaterial, bits, rsaMinBits)
		}
		return k, jwa.RS256, nil
	case ed25519.PrivateKey:
		return k, jwa.EdDSA, nil
	}
	return nil, "", fmt.Errorf("%w: JWT key: unsupported key type %T", ErrKeyMaterial, key)
}

// newJWTKey generates a key for alg and returns it with its PKCS#8 PEM form.
func newJWTKey(alg jwa.SignatureAlgorithm) (crypto.Signer, []byte, error) {
	var (
		key crypto.Signer
		err error
	)
	switch alg {
	case jwa.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jwa.RS256:
		key, err = rsa.GenerateKey(rand.Reader, rsaGenBits)
	case jwa.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, nil, fmt.Errorf("signer: generate JWT key: unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("signer: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("signer: encode %s key: %w", alg, err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// jwkPair builds the private JWK used for signing and the public JWK
// published in the JWKS, both carrying kid, alg and use=sig.
func jwkPair(id string, alg jwa.SignatureAlgorithm, key crypto.Signer) (priv, pub jwk.Key, err error) {
	priv, err = jwk.FromRaw(key)
	if err != nil {
		return nil, nil, fmt.Errorf("signer: JWT key %q: %w", id, err)
	}
	for _, kv := range []struct {
		k string
		v any
	}{{jwk.KeyIDKey, id}, {jwk.AlgorithmKey, alg}, {jwk.KeyUsageKey, jwk.ForSignature}} {
		if err := priv.Set(kv.k, kv.v); err != nil {
			return nil, nil, fmt.Errorf("signer: JWT key %q: set %s: %w", id, kv.k, err)
		}
	}
	pub, err = jwk.PublicKeyOf(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("signer: JWT key %q: public key: %w", id, err)
	}
	return priv, pub, nil
}
