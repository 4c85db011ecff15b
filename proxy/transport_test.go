package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpstreamTLS: backgate reaches a TLS virtual server only when it
// trusts the configured CA and the certificate matches the server name.
func TestUpstreamTLS(t *testing.T) {
	vs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls upstream")
	}))
	defer vs.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vs.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	// A CA of our own (every httptest server shares one certificate).
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, DNSNames: []string{"example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)

	tests := []struct {
		name   string
		opts   TransportOptions
		status int
	}{
		{"configured CA", TransportOptions{CAFile: caFile}, 200},
		{"CA and server name in the certificate", TransportOptions{CAFile: caFile, ServerName: "example.com"}, 200},
		{"server name not in the certificate", TransportOptions{CAFile: caFile, ServerName: "bigip.corp.example"}, 502},
		{"system roots only", TransportOptions{}, 502},
		{"another CA", TransportOptions{CAFile: otherCA}, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := LoadTransport(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			up, _ := url.Parse(vs.URL)
			f := newFixture(t, authzFunc(allowAlice), nil, func(o *Options) {
				o.Routes = []Route{{Name: "tls", Host: "app.test", PathPrefix: "/", Service: "component:default/app",
					Environment: "prod", Upstream: up, Transport: tr}}
			})
			resp := f.do(t, "GET", "/", "alice@example.com", nil)
			if b := body(t, resp); resp.StatusCode != tt.status || tt.status == 200 && b != "tls upstream" {
				t.Fatalf("status %d body %q", resp.StatusCode, b)
			}
		})
	}
}

func TestLoadTransportErrors(t *testing.T) {
	if _, err := LoadTransport(TransportOptions{CAFile: filepath.Join(t.TempDir(), "missing.pem")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing CA file: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	if _, err := LoadTransport(TransportOptions{CAFile: junk}); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Errorf("junk CA file: %v", err)
	}
}
