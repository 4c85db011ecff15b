// Package signer mints the signed identity headers backgate adds to every
// allowed request — an assertion JWT (X-Backgate-Assertion) for applications
// and BIG-IP APM, and an HMAC edge token (X-Backgate-Edge) for the BIG-IP
// iRule — strips client-supplied copies of them, and keeps the rotating keys
// behind both, publishing the public JWT keys as a JWKS.
//
// # Keys
//
// A Keyring holds keys of two kinds: edge HMAC secrets and JWT private keys.
// They come from files named in the configuration (always active, never
// retired here) and from a keyring in the data directory:
//
//	DIR/keys/                  mode 0700
//	DIR/keys/keyring.json      mode 0600, rewritten atomically (temp file + rename)
//	DIR/keys/<id>.edge.hex     mode 0600, 32 random bytes in hex
//	DIR/keys/<id>.jwt.pem      mode 0600, PKCS#8 private key
//
// keyring.json lists, for each key, id, kind ("edge-hmac" or "jwt"), alg (JWT
// keys), file, created, activate_at, retire_at (optional) and retired.
// retired means retirement is decided: the key verifies until retire_at, or
// not at all when retire_at is empty; a retire_at alone also ends it. This
// is the model of bigip/icontrol's KeyState, which KeyState converts to. On
// first start one key of each kind that has no configured file is generated,
// active at once. Files readable by group or others are refused; the file
// of a key no longer accepted may be deleted.
//
// The signing key of a kind is the newest key (latest activate_at, then
// latest created) whose activate_at has passed and which is not retired.
// Verifiers — the JWKS and the edge keys exported for BIG-IP — get every key
// that is not retired, pending ones included, so a key can be published
// before it signs and keeps verifying after a newer one takes over.
// Rotation is: Add(activateAt in the future) → publish → activation → later
// Retire(old). A token never outlives the retirement of its keys.
//
// The key set in use is an immutable snapshot behind an atomic pointer.
// Reload re-reads everything and swaps only when some byte changed; Watch
// calls it periodically, so edits by another process (or by the rotation
// code through FileKeyStore) take effect without a restart. Writers in one
// process are serialised; two processes writing the same keyring are not.
//
// # Cache
//
// ES256 signing costs tens of microseconds, so a Signer keeps minted headers
// in a bounded, sharded LRU keyed by every input of a token: the full
// identity, host, service, environment, NotAfter, both key ids and the key
// set generation. An entry is reused while more than half of its lifetime
// is left; it never outlives NotAfter or a key's retirement, and any key
// set change (reload, Add, Retire) empties the cache. A reused token keeps
// its token id, so replay detection on the id (for example a BIG-IP table of
// seen ids) cannot be combined with the cache: set Options.UniqueTokens,
// which disables it, when such a check is deployed.
//
// # Headers
//
// StripBackgateHeaders removes every header in the X-Backgate- namespace in
// any ASCII case and with '_' in place of '-', walking the map because Go
// does not canonicalise names containing '_'. Headers.Apply strips before it
// sets backgate's own headers.
package signer
