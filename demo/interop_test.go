package demo

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/backgate/backgate/proxy/signer"
)

// TestAppAcceptsSignerHeaders checks the app against backgate's real header
// signer: its keyring, its JWKS handler and its claim names.
func TestAppAcceptsSignerHeaders(t *testing.T) {
	clock := &fakeClock{t: testT0}
	ring, err := signer.OpenKeyring(signer.KeyringOptions{Dir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := signer.New(signer.Options{Keyring: ring, Issuer: "http://127.0.0.1:8080", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(sg.JWKSHandler())
	defer jwks.Close()
	h, err := NewApp(AppOptions{
		Name: "petstore", JWKSURL: jwks.URL + signer.JWKSPath, HTTPClient: jwks.Client(),
		EdgeKeys: ring.EdgeSecret, Issuer: "http://127.0.0.1:8080", Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := sg.Sign(signer.SignRequest{
		Host: testHost + ":8080", Subject: "alice", Email: "alice@example.com", Name: "Alice Anders",
		Groups: []string{"team-c"}, UserRef: "user:default/alice", Service: "component:default/petstore",
		Environment: "prod", NotAfter: testT0.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, host string
		verified   bool
	}{
		{name: "route host", host: testHost + ":8080", verified: true},
		{name: "other host", host: "wayback.localhost:8080", verified: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://"+tc.host+"/?format=json", nil)
			hs.Apply(req.Header)
			code, rep, _ := getReport(t, h, req)
			if rep.Verified != tc.verified || (code == http.StatusOK) != tc.verified {
				t.Fatalf("status %d verified=%v reason=%q, want verified=%v", code, rep.Verified, rep.Reason, tc.verified)
			}
			if !tc.verified {
				return
			}
			id := rep.Identity
			if id.Subject != "alice" || id.Email != "alice@example.com" || id.Name != "Alice Anders" ||
				!slices.Equal(id.Groups, []string{"team-c"}) || id.UserRef != "user:default/alice" ||
				id.Service != "component:default/petstore" || id.Environment != "prod" || id.Expiry.IsZero() {
				t.Errorf("identity %+v", id)
			}
		})
	}
}
