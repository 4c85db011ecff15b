package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// User is an identity the provider vouches for.
type User struct {
	Subject  string
	Email    string
	Name     string
	Username string // preferred_username
	Groups   []string
	// Extra claims merged into the ID token and userinfo.
	Extra map[string]any
}

// Misbehavior makes the provider issue bad ID tokens, for negative tests.
type Misbehavior int

// Misbehaviours; each applies to every ID token issued while it is set.
const (
	Honest             Misbehavior = iota
	AlgNone                        // alg "none", no signature
	HS256WithPublicKey             // HS256 keyed with the RSA public key PEM (alg confusion)
	WrongAudience                  // aud is another client
	WrongIssuer                    // iss is another issuer
	ExpiredIDToken                 // exp 10 minutes in the past
	WrongNonce                     // nonce differs from the authorization request
	UnknownKID                     // signed by a key whose kid is not in the JWKS
	FutureIssuedAt                 // iat 10 minutes in the future
)

// Options configures the provider. Zero values are usable.
type Options struct {
	// ClientID and ClientSecret of the one registered client. Empty means
	// "backgate" / "backgate-secret".
	ClientID, ClientSecret string
	// RedirectURIs allowed at /authorize and /token. Empty means any.
	RedirectURIs []string
	// Now is the provider's clock. Nil means time.Now.
	Now func() time.Time
	// IDTokenTTL is the ID token lifetime. Zero means 5m.
	IDTokenTTL time.Duration
	// NoEndSession omits end_session_endpoint from discovery.
	NoEndSession bool
	// NoRefreshTokens stops the token endpoint from issuing refresh tokens.
	NoRefreshTokens bool
	// RotateRefreshTokens makes each refresh return a new refresh token and
	// invalidate the old one.
	RotateRefreshTokens bool
	// GroupsOnlyInUserInfo leaves the groups and email claims out of ID
	// tokens, so a relying party must read them from userinfo.
	GroupsOnlyInUserInfo bool
	// SigningAlg is RS256 (default) or ES256.
	SigningAlg string
}

// Provider is an in-process OpenID Provider on a loopback httptest server.
// It auto-approves the user set with SetUser, really signs ID tokens
// (jwx/v2) and publishes its JWKS. All methods are safe for concurrent use.
type Provider struct {
	srv  *httptest.Server
	opts Options
	now  func() time.Time

	signKey  jwk.Key // private
	pubSet   jwk.Set
	rogueKey jwk.Key // private, kid not published
	pubPEM   []byte

	mu          sync.Mutex
	down        bool
	mis         Misbehavior
	users       map[string]User // by subject
	next        string          // subject approved at /authorize
	codes       map[string]*authCode
	access      map[string]grant
	refresh     map[string]grant
	endSessions []url.Values
	tokenCalls  int
	refreshes   int
}

type authCode struct {
	clientID, redirectURI, challenge, nonce, sub, scope string
	expires                                             time.Time
}

type grant struct {
	sub, clientID, scope string
	expires              time.Time
}

// New starts a provider on 127.0.0.1 and stops it when tb ends.
func New(tb testing.TB, opts Options) *Provider {
	tb.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "backgate"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "backgate-secret"
	}
	if opts.IDTokenTTL == 0 {
		opts.IDTokenTTL = 5 * time.Minute
	}
	if opts.SigningAlg == "" {
		opts.SigningAlg = "RS256"
	}
	p := &Provider{
		opts:    opts,
		now:     opts.Now,
		users:   map[string]User{},
		codes:   map[string]*authCode{},
		access:  map[string]grant{},
		refresh: map[string]grant{},
	}
	if p.now == nil {
		p.now = time.Now
	}
	if err := p.initKeys(); err != nil {
		tb.Fatalf("authtest: keys: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /userinfo", p.userinfo)
	mux.HandleFunc("GET /end_session", p.endSession)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			panic(http.ErrAbortHandler) // drop the connection: looks unreachable
		}
		mux.ServeHTTP(w, r)
	}))
	tb.Cleanup(p.srv.Close)
	return p
}

func (p *Provider) initKeys() error {
	var raw crypto.Signer
	var err error
	switch p.opts.SigningAlg {
	case "RS256":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return fmt.Errorf("SigningAlg %q: want RS256 or ES256", p.opts.SigningAlg)
	}
	if err != nil {
		return err
	}
	if p.signKey, err = jwk.FromRaw(raw); err != nil {
		return err
	}
	if err := jwk.AssignKeyID(p.signKey); err != nil {
		return err
	}
	_ = p.signKey.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(p.opts.SigningAlg))
	_ = p.signKey.Set(jwk.KeyUsageKey, "sig")
	pub, err := jwk.PublicKeyOf(p.signKey)
	if err != nil {
		return err
	}
	p.pubSet = jwk.NewSet()
	if err := p.pubSet.AddKey(pub); err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(raw.Public())
	if err != nil {
		return err
	}
	p.pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	rogue, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if p.rogueKey, err = jwk.FromRaw(rogue); err != nil {
		return err
	}
	return p.rogueKey.Set(jwk.KeyIDKey, "unknown-kid")
}

// Issuer is the issuer URL (http://127.0.0.1:port).
func (p *Provider) Issuer() string { return p.srv.URL }

// Client is an HTTP client for reaching the provider.
func (p *Provider) Client() *http.Client { return p.srv.Client() }

// ClientID and ClientSecret of the registered client.
func (p *Provider) ClientID() string     { return p.opts.ClientID }
func (p *Provider) ClientSecret() string { return p.opts.ClientSecret }

// SetUser adds or updates u and makes it the user /authorize approves.
// Updating a user's groups is visible to later refreshes and userinfo.
func (p *Provider) SetUser(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u.Groups = slices.Clone(u.Groups)
	p.users[u.Subject] = u
	p.next = u.Subject
}

// SetMisbehavior changes how ID tokens are issued from now on.
func (p *Provider) SetMisbehavior(m Misbehavior) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mis = m
}

// SetDown makes the provider drop every connection (true) or serve again.
func (p *Provider) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// Close stops the server for good.
func (p *Provider) Close() { p.srv.Close() }

// RevokeRefreshTokens invalidates every refresh token issued so far.
func (p *Provider) RevokeRefreshTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.refresh)
}

// EndSessionCalls returns the query of each /end_session request.
func (p *Provider) EndSessionCalls() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.endSessions)
}

// Refreshes counts successful refresh_token grants.
func (p *Provider) Refreshes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refreshes
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	iss := p.srv.URL
	doc := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + "/authorize",
		"token_endpoint":                        iss + "/token",
		"userinfo_endpoint":                     iss + "/userinfo",
		"jwks_uri":                              iss + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{p.opts.SigningAlg},
		"scopes_supported":                      []string{"openid", "email", "profile", "offline_access"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	}
	if !p.opts.NoEndSession {
		doc["end_session_endpoint"] = iss + "/end_session"
	}
	writeJSON(w, http.StatusOK, doc)
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, p.pubSet)
}

func (p *Provider) redirectOK(uri string) bool {
	return len(p.opts.RedirectURIs) == 0 || slices.Contains(p.opts.RedirectURIs, uri)
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	if q.Get("client_id") != p.opts.ClientID || redirect == "" || err != nil || !ru.IsAbs() || !p.redirectOK(redirect) {
		http.Error(w, "authtest: unknown client_id or redirect_uri", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		params.Set("state", q.Get("state"))
		rq := ru.Query()
		for k, v := range params {
			rq[k] = v
		}
		ru.RawQuery = rq.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
	}
	switch {
	case q.Get("response_type") != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		back(url.Values{"error": {"invalid_scope"}})
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE S256 required"}})
		return
	}
	p.mu.Lock()
	sub := p.next
	if hint := q.Get("login_hint"); hint != "" {
		sub = hint
	}
	_, known := p.users[sub]
	code := random()
	if known {
		p.codes[code] = &authCode{
			clientID: p.opts.ClientID, redirectURI: redirect, challenge: q.Get("code_challenge"),
			nonce: q.Get("nonce"), sub: sub, scope: q.Get("scope"), expires: p.now().Add(time.Minute),
		}
	}
	p.mu.Unlock()
	if !known {
		back(url.Values{"error": {"access_denied"}})
		return
	}
	back(url.Values{"code": {code}})
}

func (p *Provider) clientAuth(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.opts.ClientID && subtle.ConstantTimeCompare([]byte(secret), []byte(p.opts.ClientSecret)) == 1
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !p.clientAuth(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="authtest"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenCalls++
	now := p.now()
	var sub, scope, nonce string
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		code := r.PostForm.Get("code")
		c, ok := p.codes[code]
		delete(p.codes, code) // one-time, even when the rest fails
		if !ok || now.After(c.expires) || c.redirectURI != r.PostForm.Get("redirect_uri") {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		sub, scope, nonce = c.sub, c.scope, c.nonce
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		g, ok := p.refresh[rt]
		if !ok || g.clientID != p.opts.ClientID {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		if _, ok := p.users[g.sub]; !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		if p.opts.RotateRefreshTokens {
			delete(p.refresh, rt)
		}
		p.refreshes++
		sub, scope = g.sub, g.scope
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	user := p.users[sub]
	idt, err := p.idToken(user, nonce, now)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	at := random()
	p.access[at] = grant{sub: sub, clientID: p.opts.ClientID, scope: scope, expires: now.Add(time.Hour)}
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   3600,
		"id_token":     idt,
		"scope":        scope,
	}
	if !p.opts.NoRefreshTokens {
		if rt := r.PostForm.Get("refresh_token"); rt != "" && !p.opts.RotateRefreshTokens {
			resp["refresh_token"] = rt
		} else {
			nrt := random()
			p.refresh[nrt] = grant{sub: sub, clientID: p.opts.ClientID, scope: scope}
			resp["refresh_token"] = nrt
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) userClaims(u User, withGroups bool) map[string]any {
	c := map[string]any{"sub": u.Subject}
	for k, v := range u.Extra {
		c[k] = v
	}
	if u.Name != "" {
		c["name"] = u.Name
	}
	if u.Username != "" {
		c["preferred_username"] = u.Username
	}
	if withGroups {
		if u.Email != "" {
			c["email"] = u.Email
		}
		if u.Groups != nil {
			c["groups"] = u.Groups
		}
	}
	return c
}

// idToken mints an ID token for u, applying the current misbehaviour. The
// caller holds p.mu.
func (p *Provider) idToken(u User, nonce string, now time.Time) (string, error) {
	t := jwt.New()
	for k, v := range p.userClaims(u, !p.opts.GroupsOnlyInUserInfo) {
		if err := t.Set(k, v); err != nil {
			return "", err
		}
	}
	iss, aud := p.srv.URL, p.opts.ClientID
	iat, exp := now, now.Add(p.opts.IDTokenTTL)
	switch p.mis {
	case WrongAudience:
		aud = "some-other-client"
	case WrongIssuer:
		iss = "https://evil.example"
	case ExpiredIDToken:
		iat, exp = now.Add(-20*time.Minute), now.Add(-10*time.Minute)
	case WrongNonce:
		nonce = "not-the-" + nonce
	case FutureIssuedAt:
		iat = now.Add(10 * time.Minute)
		exp = iat.Add(p.opts.IDTokenTTL)
	}
	_ = t.Set(jwt.IssuerKey, iss)
	_ = t.Set(jwt.AudienceKey, []string{aud})
	_ = t.Set(jwt.IssuedAtKey, iat)
	_ = t.Set(jwt.ExpirationKey, exp)
	if nonce != "" {
		_ = t.Set("nonce", nonce)
	}
	var signed []byte
	var err error
	switch p.mis {
	case AlgNone:
		signed, err = jwt.Sign(t, jwt.WithInsecureNoSignature())
	case HS256WithPublicKey:
		var k jwk.Key
		if k, err = jwk.FromRaw(p.pubPEM); err == nil {
			_ = k.Set(jwk.KeyIDKey, p.signKey.KeyID())
			signed, err = jwt.Sign(t, jwt.WithKey(jwa.HS256, k))
		}
	case UnknownKID:
		signed, err = jwt.Sign(t, jwt.WithKey(jwa.ES256, p.rogueKey))
	default:
		signed, err = jwt.Sign(t, jwt.WithKey(jwa.SignatureAlgorithm(p.opts.SigningAlg), p.signKey))
	}
	return string(signed), err
}

func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	at, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	g, found := p.access[at]
	u, known := p.users[g.sub]
	now := p.now()
	p.mu.Unlock()
	if !ok || !found || !known || now.After(g.expires) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token")
		return
	}
	writeJSON(w, http.StatusOK, p.userClaims(u, true))
}

func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.endSessions = append(p.endSessions, q)
	p.mu.Unlock()
	if q.Get("client_id") != p.opts.ClientID {
		http.Error(w, "authtest: unknown client_id", http.StatusBadRequest)
		return
	}
	if post := q.Get("post_logout_redirect_uri"); post != "" {
		http.Redirect(w, r, post, http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintln(w, "authtest: signed out")
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func random() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
