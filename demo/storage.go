package demo

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// errNotFound is what the store returns for unknown or expired ids, codes
// and tokens; zitadel turns it into the matching OAuth error.
var errNotFound = errors.New("demo: not found or expired")

type storageConfig struct {
	users        []DemoUser
	clients      []DemoClient
	now          func() time.Time
	random       io.Reader
	idLifetime   time.Duration
	atLifetime   time.Duration
	rtLifetime   time.Duration
	signingKey   *rsa.PrivateKey
	signingKeyID string
}

// storage is the in-memory op.Storage of the demo provider.
type storage struct {
	cfg     storageConfig
	users   map[string]*DemoUser // by subject
	byLogin map[string]*DemoUser // by username
	clients map[string]*client

	mu            sync.Mutex
	authRequests  map[string]*authRequest
	codes         map[string]string // code -> auth request id
	accessTokens  map[string]*accessToken
	refreshTokens map[string]*refreshToken
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
	_ op.AuthRequest               = (*authRequest)(nil)
	_ op.RefreshTokenRequest       = (*refreshRequest)(nil)
	_ op.Client                    = (*client)(nil)
)

func newStorage(cfg storageConfig) *storage {
	s := &storage{
		cfg:           cfg,
		users:         map[string]*DemoUser{},
		byLogin:       map[string]*DemoUser{},
		clients:       map[string]*client{},
		authRequests:  map[string]*authRequest{},
		codes:         map[string]string{},
		accessTokens:  map[string]*accessToken{},
		refreshTokens: map[string]*refreshToken{},
	}
	for i := range cfg.users {
		u := &cfg.users[i]
		s.users[u.subject()] = u
		s.byLogin[u.Username] = u
	}
	for _, c := range cfg.clients {
		s.clients[c.ID] = &client{DemoClient: c, idLifetime: cfg.idLifetime}
	}
	return s
}

func (s *storage) newID() (string, error) {
	var b [18]byte
	if _, err := io.ReadFull(s.cfg.random, b[:]); err != nil {
		return "", fmt.Errorf("demo: random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// authRequest is one /authorize request on its way through the login page.
type authRequest struct {
	id            string
	created       time.Time
	clientID      string
	redirectURI   string
	state         string
	nonce         string
	scopes        []string
	responseType  oidc.ResponseType
	responseMode  oidc.ResponseMode
	codeChallenge *oidc.CodeChallenge
	prompt        []string
	maxAge        *uint

	subject  string
	done     bool
	authTime time.Time
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.codeChallenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }
func (a *authRequest) GetAMR() []string {
	if a.done {
		return []string{"pwd"}
	}
	return nil
}

// forcesLogin reports whether the relying party asked for a fresh login
// (prompt=login or max_age shorter than the session's age).
func (a *authRequest) forcesLogin(sessionAuth, now time.Time) bool {
	if slices.Contains(a.prompt, oidc.PromptLogin) || slices.Contains(a.prompt, oidc.PromptSelectAccount) {
		return true
	}
	return a.maxAge != nil && now.Sub(sessionAuth) > time.Duration(*a.maxAge)*time.Second
}

type accessToken struct {
	id             string
	clientID       string
	subject        string
	refreshTokenID string
	audience       []string
	scopes         []string
	expiry         time.Time
}

type refreshToken struct {
	token         string
	clientID      string
	subject       string
	audience      []string
	scopes        []string
	amr           []string
	authTime      time.Time
	expiry        time.Time
	accessTokenID string
}

// refreshRequest is a refresh_token grant on its way to new tokens.
type refreshRequest struct{ rt refreshToken }

func (r *refreshRequest) GetAMR() []string             { return r.rt.amr }
func (r *refreshRequest) GetAudience() []string        { return r.rt.audience }
func (r *refreshRequest) GetAuthTime() time.Time       { return r.rt.authTime }
func (r *refreshRequest) GetClientID() string          { return r.rt.clientID }
func (r *refreshRequest) GetScopes() []string          { return r.rt.scopes }
func (r *refreshRequest) GetSubject() string           { return r.rt.subject }
func (r *refreshRequest) SetCurrentScopes(sc []string) { r.rt.scopes = sc }

// CreateAuthRequest stores a validated /authorize request. PKCE with S256 is
// required; prompt=none cannot be served because login is interactive.
func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired()
	}
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method=S256 is required")
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	scopes := slices.Clone(req.Scopes)
	if !slices.Contains(scopes, oidc.ScopeOfflineAccess) {
		// The demo always issues refresh tokens, so the proxy's refresh path
		// runs whether or not it asks for offline_access.
		scopes = append(scopes, oidc.ScopeOfflineAccess)
	}
	now := s.cfg.now()
	a := &authRequest{
		id:           id,
		created:      now,
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		state:        req.State,
		nonce:        req.Nonce,
		scopes:       scopes,
		responseType: req.ResponseType,
		responseMode: req.ResponseMode,
		codeChallenge: &oidc.CodeChallenge{
			Challenge: req.CodeChallenge,
			Method:    req.CodeChallengeMethod,
		},
		prompt: slices.Clone([]string(req.Prompt)),
		maxAge: req.MaxAge,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(now)
	s.authRequests[id] = a
	return a, nil
}

// pruneLocked drops expired entries so a long-running demo does not grow.
func (s *storage) pruneLocked(now time.Time) {
	for id, a := range s.authRequests {
		if now.Sub(a.created) > authRequestLifetime {
			delete(s.authRequests, id)
		}
	}
	for code, id := range s.codes {
		if _, ok := s.authRequests[id]; !ok {
			delete(s.codes, code)
		}
	}
	for id, t := range s.accessTokens {
		if !now.Before(t.expiry) {
			delete(s.accessTokens, id)
		}
	}
	for tok, rt := range s.refreshTokens {
		if !now.Before(rt.expiry) {
			delete(s.refreshTokens, tok)
		}
	}
}

func (s *storage) authRequestLocked(id string) (*authRequest, error) {
	a, ok := s.authRequests[id]
	if !ok || s.cfg.now().Sub(a.created) > authRequestLifetime {
		return nil, fmt.Errorf("auth request: %w", errNotFound)
	}
	return a, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authRequestLocked(id)
}

func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, fmt.Errorf("code: %w", errNotFound)
	}
	return s.authRequestLocked(id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.authRequestLocked(id); err != nil {
		return err
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called once the code was redeemed, so a code works
// only once.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authRequests, id)
	for code, reqID := range s.codes {
		if reqID == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// completeLogin marks the auth request as authenticated for the user.
func (s *storage) completeLogin(id string, u *DemoUser, authTime time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.authRequestLocked(id)
	if err != nil {
		return err
	}
	a.subject = u.subject()
	a.done = true
	a.authTime = authTime
	return nil
}

// pendingRequest returns a copy of the auth request for the login page.
func (s *storage) pendingRequest(id string) (authRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.authRequestLocked(id)
	if err != nil {
		return authRequest{}, false
	}
	return *a, true
}

func (s *storage) newAccessTokenLocked(clientID, refreshID, subject string, audience, scopes []string) (*accessToken, error) {
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	t := &accessToken{
		id:             id,
		clientID:       clientID,
		subject:        subject,
		refreshTokenID: refreshID,
		audience:       audience,
		scopes:         scopes,
		expiry:         s.cfg.now().Add(s.cfg.atLifetime),
	}
	s.accessTokens[id] = t
	return t, nil
}

func clientIDOf(req op.TokenRequest) string {
	switch r := req.(type) {
	case *authRequest:
		return r.clientID
	case *refreshRequest:
		return r.rt.clientID
	}
	return ""
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.newAccessTokenLocked(clientIDOf(req), "", req.GetSubject(), req.GetAudience(), req.GetScopes())
	if err != nil {
		return "", time.Time{}, err
	}
	return t.id, t.expiry, nil
}

// CreateAccessAndRefreshTokens issues an access token and a new refresh
// token; on a refresh grant the presented refresh token is used up
// (rotation).
func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.now()
	rt := refreshToken{
		clientID: clientIDOf(req),
		subject:  req.GetSubject(),
		audience: req.GetAudience(),
		scopes:   req.GetScopes(),
	}
	switch r := req.(type) {
	case *authRequest:
		rt.amr, rt.authTime = r.GetAMR(), r.authTime
	case *refreshRequest:
		rt.amr, rt.authTime = r.rt.amr, r.rt.authTime
	default:
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	if current != "" {
		old, ok := s.refreshTokens[current]
		if !ok || !now.Before(old.expiry) || old.clientID != rt.clientID {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token invalid or expired")
		}
		delete(s.refreshTokens, current)
		delete(s.accessTokens, old.accessTokenID)
	}
	tok, err := s.newID()
	if err != nil {
		return "", "", time.Time{}, err
	}
	at, err := s.newAccessTokenLocked(rt.clientID, tok, rt.subject, rt.audience, rt.scopes)
	if err != nil {
		return "", "", time.Time{}, err
	}
	rt.token = tok
	rt.expiry = now.Add(s.cfg.rtLifetime)
	rt.accessTokenID = at.id
	s.refreshTokens[tok] = &rt
	return at.id, tok, at.expiry, nil
}

func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refreshTokens[token]
	if !ok || !s.cfg.now().Before(rt.expiry) {
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token invalid or expired")
	}
	return &refreshRequest{rt: *rt}, nil
}

// TerminateSession revokes every token of the user at the client.
func (s *storage) TerminateSession(_ context.Context, subject, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.accessTokens {
		if t.subject == subject && (clientID == "" || t.clientID == clientID) {
			delete(s.accessTokens, id)
		}
	}
	for tok, rt := range s.refreshTokens {
		if rt.subject == subject && (clientID == "" || rt.clientID == clientID) {
			delete(s.refreshTokens, tok)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.accessTokens[tokenOrID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.accessTokens, tokenOrID)
		return nil
	}
	if rt, ok := s.refreshTokens[tokenOrID]; ok {
		if rt.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.refreshTokens, tokenOrID)
		delete(s.accessTokens, rt.accessTokenID)
	}
	return nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refreshTokens[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.subject, rt.token, nil
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{id: s.cfg.signingKeyID, key: s.cfg.signingKey}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{signingKey{id: s.cfg.signingKeyID, key: s.cfg.signingKey}}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("client %q: %w", id, errNotFound)
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok {
		return fmt.Errorf("client %q: %w", id, errNotFound)
	}
	if c.Secret == "" || !constantTimeEqual(c.Secret, secret) {
		return fmt.Errorf("client %q: wrong secret", id)
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does the work.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's user claims.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(info, req.GetSubject(), scopes)
}

// SetUserinfoFromToken answers the userinfo endpoint.
func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.accessTokens[tokenID]
	valid := ok && s.cfg.now().Before(t.expiry) && t.subject == subject
	var scopes []string
	if valid {
		scopes = t.scopes
	}
	s.mu.Unlock()
	if !valid {
		return fmt.Errorf("access token: %w", errNotFound)
	}
	return s.setUserinfo(info, subject, scopes)
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	s.mu.Lock()
	t, ok := s.accessTokens[tokenID]
	valid := ok && s.cfg.now().Before(t.expiry) && t.subject == subject && slices.Contains(t.audience, clientID)
	var scopes []string
	var expiry time.Time
	var owner string
	if valid {
		scopes, expiry, owner = t.scopes, t.expiry, t.clientID
	}
	s.mu.Unlock()
	if !valid {
		return fmt.Errorf("access token: %w", errNotFound)
	}
	info := new(oidc.UserInfo)
	if err := s.setUserinfo(info, subject, scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = scopes
	resp.ClientID = owner
	resp.Expiration = oidc.FromTime(expiry)
	return nil
}

// setUserinfo sets the claims of the user the scopes allow; groups go with
// the openid scope, as the demo's relying party is backgate itself.
func (s *storage) setUserinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	u, ok := s.users[subject]
	if !ok {
		return fmt.Errorf("user %q: %w", subject, errNotFound)
	}
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeOpenID:
			info.Subject = u.subject()
			info.AppendClaims(groupsClaim, append([]string{}, u.Groups...))
		case oidc.ScopeEmail:
			info.Email = u.Email
			info.EmailVerified = oidc.Bool(true)
		case oidc.ScopeProfile:
			info.Name = u.displayName()
			info.PreferredUsername = u.Username
		}
	}
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, fmt.Errorf("demo: private_key_jwt is not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, fmt.Errorf("demo: JWT profile grant is not supported")
}

func (s *storage) Health(context.Context) error { return nil }

// client is a DemoClient as op sees it.
type client struct {
	DemoClient
	idLifetime time.Duration
}

func (c *client) GetID() string                    { return c.ID }
func (c *client) RedirectURIs() []string           { return c.DemoClient.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.DemoClient.PostLogoutRedirectURIs }
func (c *client) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.Secret == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

func (c *client) LoginURL(id string) string {
	return LoginPath + "?authRequestID=" + id
}

func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return c.idLifetime }

// DevMode lets the demo's http://*.localhost redirect URIs through; they must
// still match a registered URI exactly.
func (c *client) DevMode() bool { return true }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) IsScopeAllowed(scope string) bool { return scope == groupsClaim }

// IDTokenUserinfoClaimsAssertion puts the profile and email claims into the
// ID token even though an access token is issued too: backgate reads the
// identity from the ID token.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
