// Package authtest runs an in-process OpenID Provider on a loopback httptest
// server for tests: discovery, JWKS, auto-approving /authorize, /token with
// PKCE and one-time codes, refresh tokens, /userinfo and /end_session, with
// knobs that make it misbehave (bad signatures, claims, or being down).
package authtest
