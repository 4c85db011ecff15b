// Package app builds a running backgate from one configuration: keys and
// signer, policy engine and its decision cache, OIDC login, the catalog
// syncer feeding the engine and the routes, temporary access, and the proxy.
// It is the wiring shared by `backgate serve`, `backgate demo` and the load
// benchmark, so what the benchmark measures is what ships.
package app
