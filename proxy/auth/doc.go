// Package auth is backgate's OpenID Connect relying party: it runs the
// authorization code flow with PKCE, state and nonce against the configured
// provider and keeps the resulting identity in an encrypted, authenticated,
// stateless cookie session that is checked on every request without network
// calls. Package authtest provides an in-process OpenID Provider for tests.
package auth
