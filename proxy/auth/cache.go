package auth

import (
	"slices"
	"sync"
	"time"
)

// sessionCache memoises cookie decoding (MAC check, decryption, parsing)
// keyed by the exact cookie value, and remembers sessions ended on this
// instance (logout, rejected refresh) until they would have expired.
//
// It cannot extend a session: the cached *Session is immutable, every hit is
// re-checked against the clock (lifetime, idle timeout) exactly like a fresh
// decode, and the revocation set is consulted on every call.
type sessionCache struct {
	mu      sync.RWMutex
	max     int
	decoded map[string]*Session  // cookie value -> decoded session (never mutated)
	revoked map[string]time.Time // session ID -> ExpiresAt
}

const (
	sessionCacheSize = 4096
	maxRevoked       = 100_000
)

func newSessionCache(max int) *sessionCache {
	return &sessionCache{max: max, decoded: make(map[string]*Session), revoked: make(map[string]time.Time)}
}

func (c *sessionCache) get(value string) (*Session, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.decoded[value]
	return s, ok
}

func (c *sessionCache) put(value string, s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.decoded) >= c.max {
		for k := range c.decoded { // evict an arbitrary entry
			delete(c.decoded, k)
			break
		}
	}
	c.decoded[value] = s
}

func (c *sessionCache) isRevoked(id string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.revoked[id]
	return ok
}

// revoke ends session id on this instance; entries are pruned once the
// session would have expired anyway.
func (c *sessionCache) revoke(id string, expires, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, exp := range c.revoked {
		if !now.Before(exp) {
			delete(c.revoked, k)
		}
	}
	if len(c.revoked) < maxRevoked {
		c.revoked[id] = expires
	}
}

// clone returns a copy the caller may modify.
func (s *Session) clone() *Session {
	cp := *s
	cp.Groups = slices.Clone(s.Groups)
	return &cp
}
