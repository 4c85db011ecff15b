// Package demo provides what `backgate demo` runs beside the proxy: a demo
// OpenID Provider with public demo users, and demo upstream apps that stand in
// for "BIG-IP + the real app" and show whether backgate's identity headers
// verify.
//
// NewProvider wraps zitadel's certified op package (code flow with PKCE S256,
// RS256 ID tokens with a groups claim, userinfo, rotating refresh tokens,
// end_session) with an in-memory store and an embedded login page. It is
// for loopback demos only: http issuers are allowed and the passwords are
// printed on the login page. The op package logs through slog.Default.
//
// NewApp serves a report of each request (HTML, or JSON with ?format=json)
// with the received headers, credentials masked, and the outcome of checking
// the edge token (package proxy/edgetoken) and the assertion JWT (jwx against
// a JWKS, audience = request host); /ws echoes WebSocket messages and
// /stream flushes lines slowly, for testing the proxy's upgrade and
// streaming paths.
package demo
