package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"golang.org/x/oauth2"
)

// loginState is sealed in the short-lived login cookie between Login and
// Callback.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
	Created  int64  `json:"t"`
}

const loginValueKey = "l"

// loginSerializer is a securecookie.Serializer for a Values map holding one
// *loginState.
type loginSerializer struct{}

func (loginSerializer) Serialize(src any) ([]byte, error) {
	m, ok := src.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("login serializer: unexpected %T", src)
	}
	ls, ok := m[loginValueKey].(*loginState)
	if !ok || len(m) != 1 {
		return nil, errors.New("login serializer: values must hold exactly one *loginState")
	}
	return json.Marshal(ls)
}

func (loginSerializer) Deserialize(b []byte, dst any) error {
	m, ok := dst.(*map[any]any)
	if !ok {
		return fmt.Errorf("login serializer: unexpected %T", dst)
	}
	var ls loginState
	if err := json.Unmarshal(b, &ls); err != nil {
		return fmt.Errorf("login serializer: %w", err)
	}
	if *m == nil {
		*m = make(map[any]any, 1)
	}
	(*m)[loginValueKey] = &ls
	return nil
}

// Login starts the authorization code flow: it validates returnTo (absolute,
// or a path resolved against the request's host), seals state, nonce and a
// PKCE verifier into a login cookie named after the state, and redirects to
// the provider. An invalid returnTo is a 400 page; an unreachable provider a
// 503 page.
func (a *Authenticator) Login(w http.ResponseWriter, r *http.Request, returnTo string) {
	w.Header().Set("Cache-Control", "no-store")
	target, err := a.resolveReturn(r, returnTo)
	if err != nil {
		a.cfg.log.Warn("auth: login refused: bad return URL", "err", err.Error(), "host", r.Host)
		a.cfg.renderError(w, r, http.StatusBadRequest, "Invalid return address",
			"The address to return to after sign-in is not allowed.")
		return
	}
	p, err := a.provider(r.Context())
	if err != nil {
		a.cfg.log.Error("auth: login unavailable: provider unreachable", "err", err.Error())
		a.cfg.renderError(w, r, http.StatusServiceUnavailable, "Sign-in temporarily unavailable",
			"The identity provider cannot be reached right now. Please try again in a few minutes.")
		return
	}
	ls := &loginState{
		State:    randomString(32),
		Nonce:    randomString(32),
		Verifier: oauth2.GenerateVerifier(),
		ReturnTo: target.String(),
		Created:  a.cfg.now().Unix(),
	}
	name := a.loginCookieName(ls.State)
	encoded, err := securecookie.EncodeMulti(name, map[any]any{loginValueKey: ls}, a.logins.Codecs[0])
	if err != nil {
		a.cfg.log.Error("auth: seal login cookie", "err", err.Error())
		a.cfg.renderError(w, r, http.StatusInternalServerError, "Sign-in failed", "Could not start sign-in.")
		return
	}
	http.SetCookie(w, sessions.NewCookie(name, encoded, a.logins.Options))
	authURL := p.oauth.AuthCodeURL(ls.State, oidc.Nonce(ls.Nonce), oauth2.S256ChallengeOption(ls.Verifier))
	http.Redirect(w, r, authURL, http.StatusFound)
}

// resolveReturn validates raw; a path-only raw ("/x") is resolved against the
// request's host, which must itself be allowed.
func (a *Authenticator) resolveReturn(r *http.Request, raw string) (*url.URL, error) {
	if strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//") && !strings.HasPrefix(raw, "/\\") {
		scheme := "https"
		if a.cfg.InsecureCookies {
			scheme = "http"
		}
		raw = scheme + "://" + r.Host + raw
	}
	return ValidateReturnURL(raw, a.cfg.allowHost)
}

// loginCookieName names the login cookie after a hash of the state, so
// concurrent logins in several tabs do not clobber each other.
func (a *Authenticator) loginCookieName(state string) string {
	h := sha256.Sum256([]byte(state))
	return a.cfg.loginPrefix + hex.EncodeToString(h[:8])
}

// Callback completes the login: it checks state against the login cookie,
// exchanges the code with the PKCE verifier, verifies the ID token (signature
// with the alg allow-list, iss, aud, exp/iat/nbf with bounded skew, nonce),
// reads missing claims from userinfo, writes a fresh session cookie with a
// new session id and redirects to the saved return URL.
func (a *Authenticator) Callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	fail := func(status int, title, detail, reason string, err error) {
		args := []any{"reason", reason}
		if err != nil {
			args = append(args, "err", err.Error())
		}
		a.cfg.log.Warn("auth: callback failed", args...)
		a.cfg.renderError(w, r, status, title, detail)
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" || len(state) > 256 {
		fail(http.StatusBadRequest, "Sign-in failed", "The sign-in response is invalid. Please start again.", "missing or oversized state", nil)
		return
	}
	name := a.loginCookieName(state)
	ls, err := a.readLogin(r, name, state)
	if err != nil {
		fail(http.StatusBadRequest, "Sign-in expired", "This sign-in attempt is unknown or has expired. Please start again.", "login cookie", err)
		return
	}
	// The login cookie is single use, whatever happens next.
	expired := *a.logins.Options
	expired.MaxAge = -1
	http.SetCookie(w, sessions.NewCookie(name, "", &expired))

	// RFC 9207: when the provider names itself, it must be ours (mix-up defence).
	if iss := q.Get("iss"); iss != "" && iss != a.cfg.IssuerURL {
		fail(http.StatusBadRequest, "Sign-in failed", "The sign-in response came from an unexpected identity provider.", "iss parameter mismatch", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusForbidden, "Sign-in refused", "The identity provider refused the sign-in ("+sanitizeCode(e)+").", "provider error "+sanitizeCode(e), nil)
		return
	}
	code := q.Get("code")
	if code == "" {
		fail(http.StatusBadRequest, "Sign-in failed", "The sign-in response has no authorization code.", "missing code", nil)
		return
	}
	p, err := a.provider(r.Context())
	if err != nil {
		fail(http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "The identity provider cannot be reached right now. Please try again in a few minutes.", "discovery", err)
		return
	}
	ctx := a.clientCtx(r.Context())
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		if isRejection(err) {
			fail(http.StatusUnauthorized, "Sign-in failed", "The identity provider rejected the sign-in. Please start again.", "code exchange rejected", err)
		} else {
			fail(http.StatusServiceUnavailable, "Sign-in temporarily unavailable", "The identity provider cannot be reached right now. Please try again in a few minutes.", "code exchange", err)
		}
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail(http.StatusUnauthorized, "Sign-in failed", "The identity provider returned no ID token.", "no id_token", nil)
		return
	}
	cl, err := a.verifyIDToken(ctx, p, raw, tok, ls.Nonce)
	if err != nil {
		fail(http.StatusUnauthorized, "Sign-in failed", "The identity provider's response could not be verified.", "id token", err)
		return
	}
	if err := a.fillFromUserInfo(ctx, p, tok, cl); err != nil {
		fail(http.StatusServiceUnavailable, "Sign-in failed", "Your profile could not be read from the identity provider. Please try again.", "userinfo", err)
		return
	}
	now := a.cfg.now()
	s := &Session{
		ID:          randomString(16),
		Subject:     cl.Subject,
		Issuer:      a.cfg.IssuerURL,
		IssuedAt:    now,
		LastSeen:    now,
		ExpiresAt:   now.Add(a.cfg.SessionLifetime),
		RefreshedAt: now,
	}
	cl.apply(s)
	if a.cfg.refreshOn {
		s.refreshToken = tok.RefreshToken
	}
	if err := a.saveSession(w, r, s); err != nil {
		fail(http.StatusInternalServerError, "Sign-in failed", "Your session could not be created (too many groups?).", "save session", err)
		return
	}
	a.cfg.log.Info("auth: signed in", "session", s.ID, "sub", s.Subject, "groups", len(s.Groups), "refresh", s.refreshToken != "")
	http.Redirect(w, r, ls.ReturnTo, http.StatusFound)
}

func (a *Authenticator) readLogin(r *http.Request, name, state string) (*loginState, error) {
	value, ok := cookieValue(r, name)
	if !ok {
		return nil, errors.New("no login cookie for this state")
	}
	if len(value) > MaxCookieLen {
		return nil, fmt.Errorf("login cookie is %d bytes", len(value))
	}
	vals := make(map[any]any, 1)
	if err := securecookie.DecodeMulti(name, value, &vals, a.logins.Codecs...); err != nil {
		return nil, fmt.Errorf("decode login cookie: %w", err)
	}
	ls, ok := vals[loginValueKey].(*loginState)
	if !ok {
		return nil, errors.New("login cookie has no state")
	}
	if subtle.ConstantTimeCompare([]byte(ls.State), []byte(state)) != 1 {
		return nil, errors.New("state does not match the login cookie")
	}
	now := a.cfg.now()
	created := time.Unix(ls.Created, 0)
	if now.Sub(created) > LoginTTL || created.After(now.Add(a.cfg.ClockSkew)) {
		return nil, fmt.Errorf("login started at %s is outside the %v window", created.UTC().Format(time.RFC3339), LoginTTL)
	}
	if ls.Nonce == "" || ls.Verifier == "" {
		return nil, errors.New("login cookie lacks nonce or verifier")
	}
	return ls, nil
}

// Logout clears the session cookie, then redirects to the provider's
// end_session_endpoint (with client_id and post_logout_redirect_uri) when
// discovery advertised one, else to PostLogoutRedirectURL, else renders a
// local "Signed out" page with status 200. Cookies copied before logout stay
// cryptographically valid until they expire (sessions are stateless).
func (a *Authenticator) Logout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if s, err := a.Session(r); err == nil {
		a.cache.revoke(s.ID, s.ExpiresAt, a.cfg.now())
		a.cfg.log.Info("auth: signed out", "session", s.ID, "sub", s.Subject)
	}
	a.clearSession(w)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if p, err := a.provider(ctx); err == nil && p.endSession != "" {
		u, err := url.Parse(p.endSession)
		if err == nil {
			q := u.Query()
			q.Set("client_id", a.cfg.ClientID)
			if a.cfg.loggedOutURL != nil {
				q.Set("post_logout_redirect_uri", a.cfg.loggedOutURL.String())
			}
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusFound)
			return
		}
	} else if err != nil {
		a.cfg.log.Warn("auth: logout is local only: provider unreachable", "err", err.Error())
	}
	if a.cfg.loggedOutURL != nil {
		http.Redirect(w, r, a.cfg.loggedOutURL.String(), http.StatusFound)
		return
	}
	a.cfg.renderError(w, r, http.StatusOK, "Signed out", "You have been signed out.")
}

// Touch keeps a session alive: when the refresh interval has passed and a
// refresh token is held it refreshes the claims (a provider rejection ends
// the session: the cookie is cleared and ErrNoSession returned; an
// unreachable provider keeps the session and retries after the interval),
// and it bumps LastSeen for the idle timeout, rewriting the cookie at most
// once a minute. s is checked first and updated in place.
func (a *Authenticator) Touch(w http.ResponseWriter, r *http.Request, s *Session) error {
	now := a.cfg.now()
	if err := a.checkSession(s, now); err != nil {
		a.clearSession(w)
		return fmt.Errorf("%w: %w", ErrNoSession, err)
	}
	t, err := a.touch(w, r, s, now)
	if err != nil {
		return err
	}
	*s = *t
	return nil
}

// touch does Touch's refresh and bump for a checked session and returns
// the session to use from then on: s itself when nothing was due, else a
// changed copy. s is never changed: it may be the cached session that
// every request with the same cookie shares.
func (a *Authenticator) touch(w http.ResponseWriter, r *http.Request, s *Session, now time.Time) (*Session, error) {
	refreshDue := a.cfg.refreshOn && s.refreshToken != "" && now.Sub(s.RefreshedAt) >= a.cfg.RefreshInterval
	bumpDue := now.Sub(s.LastSeen) >= touchInterval
	if !refreshDue && !bumpDue {
		return s, nil
	}
	s = s.clone()
	if refreshDue {
		err := a.refresh(r.Context(), s, now)
		switch {
		case err == nil:
		case errors.Is(err, ErrProviderUnavailable):
			a.cfg.log.Warn("auth: refresh postponed: provider unreachable", "session", s.ID, "err", err.Error())
			s.RefreshedAt = now
		default:
			a.cfg.log.Warn("auth: session ended: refresh rejected", "session", s.ID, "sub", s.Subject, "err", err.Error())
			a.cache.revoke(s.ID, s.ExpiresAt, now)
			a.clearSession(w)
			return nil, fmt.Errorf("%w: refresh: %w", ErrNoSession, err)
		}
	}
	if bumpDue {
		s.LastSeen = now
	}
	return s, a.saveSession(w, r, s)
}

// refresh redeems the session's refresh token (shared with concurrent
// requests carrying the same token, see refreshGroup) and applies the result
// to s.
func (a *Authenticator) refresh(ctx context.Context, s *Session, now time.Time) error {
	res, err := a.refreshes.do(ctx, s.ID, s.refreshToken, now, func(ctx context.Context) (*refreshResult, error) {
		return a.redeem(ctx, s.Subject, s.refreshToken)
	})
	if err != nil {
		return err
	}
	if res.claims != nil {
		res.claims.apply(s)
	}
	if res.refreshToken != "" {
		s.refreshToken = res.refreshToken
	}
	s.RefreshedAt = now
	return nil
}

// refreshResult is what a refresh learnt: new claims (nil = keep the
// session's) and a rotated refresh token ("" = keep).
type refreshResult struct {
	claims       *claims
	refreshToken string
}

// redeem runs the refresh_token grant and re-reads the claims from the new
// ID token (or userinfo when none is returned).
func (a *Authenticator) redeem(ctx context.Context, subject, refreshToken string) (*refreshResult, error) {
	p, err := a.provider(ctx)
	if err != nil {
		return nil, err
	}
	ctx = a.clientCtx(ctx)
	old := &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}
	tok, err := p.oauth.TokenSource(ctx, old).Token()
	if err != nil {
		if isRejection(err) {
			return nil, fmt.Errorf("refresh token rejected: %w", err)
		}
		return nil, fmt.Errorf("%w: refresh: %w", ErrProviderUnavailable, err)
	}
	res := &refreshResult{}
	if tok.RefreshToken != refreshToken {
		res.refreshToken = tok.RefreshToken
	}
	cl := &claims{}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		if cl, err = a.verifyIDToken(ctx, p, raw, tok, ""); err != nil {
			return nil, fmt.Errorf("refreshed id token: %w", err)
		}
		if cl.Subject != subject {
			return nil, fmt.Errorf("refreshed id token subject %q differs from session subject", cl.Subject)
		}
	} else {
		cl.Subject = subject
		if p.oidc.UserInfoEndpoint() == "" {
			return res, nil // nothing to re-read the claims from; keep them
		}
	}
	if err := a.fillFromUserInfo(ctx, p, tok, cl); err != nil {
		return nil, fmt.Errorf("%w: refresh userinfo: %w", ErrProviderUnavailable, err)
	}
	res.claims = cl
	return res, nil
}

// isRejection reports whether a token endpoint error is the provider saying
// no (4xx, e.g. invalid_grant) rather than being unreachable or failing.
func isRejection(err error) bool {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode >= 400 && re.Response.StatusCode < 500
	}
	return false
}

// claims are the identity claims copied into a session.
type claims struct {
	Subject       string
	Email         string
	Name          string
	Username      string
	Groups        []string
	groupsPresent bool
}

func (c *claims) apply(s *Session) {
	s.Email, s.Name, s.Username, s.Groups = c.Email, c.Name, c.Username, c.Groups
}

// verifyIDToken runs go-oidc's verification (signature, alg allow-list, iss,
// aud, exp with skew) and the checks it leaves to the caller: nonce, iat and
// nbf with the configured skew, azp, at_hash.
func (a *Authenticator) verifyIDToken(ctx context.Context, p *provider, raw string, tok *oauth2.Token, nonce string) (*claims, error) {
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("id token nonce does not match the login")
	}
	now, skew := a.cfg.now(), a.cfg.ClockSkew
	if idt.IssuedAt.IsZero() || idt.IssuedAt.After(now.Add(skew)) {
		return nil, fmt.Errorf("id token iat %v is missing or in the future", idt.IssuedAt.UTC())
	}
	var extra struct {
		NotBefore *float64 `json:"nbf"`
		AZP       string   `json:"azp"`
	}
	var all map[string]json.RawMessage
	if err := idt.Claims(&all); err != nil {
		return nil, fmt.Errorf("id token claims: %w", err)
	}
	if err := idt.Claims(&extra); err != nil {
		return nil, fmt.Errorf("id token claims: %w", err)
	}
	if extra.NotBefore != nil && time.Unix(int64(*extra.NotBefore), 0).After(now.Add(skew)) {
		return nil, errors.New("id token nbf is in the future")
	}
	if (len(idt.Audience) > 1 || extra.AZP != "") && extra.AZP != a.cfg.ClientID {
		return nil, fmt.Errorf("id token azp %q is not the client id", extra.AZP)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("id token at_hash: %w", err)
		}
	}
	if idt.Subject == "" {
		return nil, errors.New("id token has no sub")
	}
	cl := &claims{Subject: idt.Subject}
	if err := a.readClaims(all, cl); err != nil {
		return nil, fmt.Errorf("id token: %w", err)
	}
	return cl, nil
}

// fillFromUserInfo fetches userinfo when email, name or the groups claim is
// missing, and fills only the missing fields. Its sub must match.
func (a *Authenticator) fillFromUserInfo(ctx context.Context, p *provider, tok *oauth2.Token, cl *claims) error {
	if (cl.Email != "" && cl.Name != "" && cl.groupsPresent) || p.oidc.UserInfoEndpoint() == "" || tok.AccessToken == "" {
		return nil
	}
	ui, err := p.oidc.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return err
	}
	if ui.Subject != cl.Subject {
		return fmt.Errorf("userinfo sub %q does not match id token sub %q", ui.Subject, cl.Subject)
	}
	var all map[string]json.RawMessage
	if err := ui.Claims(&all); err != nil {
		return fmt.Errorf("userinfo claims: %w", err)
	}
	u := &claims{}
	if err := a.readClaims(all, u); err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	if cl.Email == "" {
		cl.Email = u.Email
	}
	if cl.Name == "" {
		cl.Name = u.Name
	}
	if cl.Username == "" {
		cl.Username = u.Username
	}
	if !cl.groupsPresent && u.groupsPresent {
		cl.Groups, cl.groupsPresent = u.Groups, true
	}
	return nil
}

func (a *Authenticator) readClaims(all map[string]json.RawMessage, cl *claims) error {
	for _, f := range []struct {
		name string
		dst  *string
	}{{"email", &cl.Email}, {"name", &cl.Name}, {"preferred_username", &cl.Username}} {
		if v, ok := all[f.name]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return fmt.Errorf("claim %q is not a string", f.name)
			}
		}
	}
	v, ok := all[a.cfg.GroupsClaim]
	if !ok || string(v) == "null" {
		return nil
	}
	var one string
	if err := json.Unmarshal(v, &one); err == nil {
		cl.Groups, cl.groupsPresent = []string{one}, true
		return nil
	}
	var many []string
	if err := json.Unmarshal(v, &many); err != nil {
		return fmt.Errorf("claim %q is neither a string nor an array of strings", a.cfg.GroupsClaim)
	}
	if len(many) > maxGroups {
		return fmt.Errorf("claim %q has %d groups, limit %d", a.cfg.GroupsClaim, len(many), maxGroups)
	}
	cl.Groups, cl.groupsPresent = many, true
	return nil
}

// sanitizeCode keeps an OAuth error code printable and short for pages/logs.
func sanitizeCode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 64; i++ {
		if c := s[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
