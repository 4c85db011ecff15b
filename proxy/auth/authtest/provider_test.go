package authtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"
)

func noRedirect(p *Provider) *http.Client {
	c := p.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func authorize(t *testing.T, p *Provider, challenge string) string {
	t.Helper()
	q := url.Values{
		"response_type": {"code"}, "client_id": {p.ClientID()}, "redirect_uri": {"http://rp.localhost/cb"},
		"scope": {"openid email"}, "state": {"st"}, "nonce": {"no"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	resp, err := noRedirect(p).Get(p.Issuer() + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "st" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func exchange(t *testing.T, p *Provider, code, verifier string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://rp.localhost/cb"},
		"code_verifier": {verifier}, "client_id": {p.ClientID()}, "client_secret": {p.ClientSecret()}}
	resp, err := p.Client().Post(p.Issuer()+"/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestTokenEndpointEnforcesPKCEAndOneTimeCodes(t *testing.T) {
	p := New(t, Options{SigningAlg: "ES256"})
	p.SetUser(User{Subject: "u1", Email: "u1@example.com", Groups: []string{"g1", "g2"}})
	verifier := oauth2.GenerateVerifier()

	code := authorize(t, p, oauth2.S256ChallengeFromVerifier(verifier))
	if status, m := exchange(t, p, code, oauth2.GenerateVerifier()); status != 400 || m["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", status, m)
	}
	if status, _ := exchange(t, p, code, verifier); status != 400 {
		t.Fatalf("code reused after a failed exchange: %d", status)
	}

	code = authorize(t, p, oauth2.S256ChallengeFromVerifier(verifier))
	status, m := exchange(t, p, code, verifier)
	if status != 200 {
		t.Fatalf("exchange: %d %v", status, m)
	}
	if status, _ := exchange(t, p, code, verifier); status != 400 {
		t.Fatalf("replayed code accepted: %d", status)
	}

	// The ID token verifies against the published JWKS and carries the user.
	set, err := jwk.Fetch(t.Context(), p.Issuer()+"/jwks", jwk.WithHTTPClient(p.Client()))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse([]byte(m["id_token"].(string)), jwt.WithKeySet(set), jwt.WithIssuer(p.Issuer()),
		jwt.WithAudience(p.ClientID()), jwt.WithClaimValue("nonce", "no"))
	if err != nil {
		t.Fatalf("id token does not verify: %v", err)
	}
	groups, _ := tok.Get("groups")
	if tok.Subject() != "u1" || !slices.Equal(toStrings(groups), []string{"g1", "g2"}) {
		t.Fatalf("id token claims: sub=%q groups=%v", tok.Subject(), groups)
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}
