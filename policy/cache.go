package policy

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CacheOptions configure a DecisionCache.
type CacheOptions struct {
	// TTL bounds how long a decision is reused; it is what a time-based
	// rule (other than a grant's expiry, which bounds entries on its own)
	// may lag. Zero means DefaultCacheTTL.
	TTL time.Duration
	// MaxEntries bounds the cache; zero means DefaultCacheEntries.
	MaxEntries int
	// Now is the clock for inputs without a Time (an input's Time is the
	// moment it is decided at, and entries age against it); nil means
	// time.Now.
	Now func() time.Time
}

// Defaults of CacheOptions.
const (
	DefaultCacheTTL     = time.Second
	DefaultCacheEntries = 65536
	cacheShards         = 32
)

// DecisionCache reuses decisions of an Engine. An entry is keyed by
// exactly the input fields the compiled policy can read (so it never serves
// one person's decision to another) and is valid only for the policy and
// data snapshot it was made with: a new policy, catalog or set of grants
// (a grant approved or revoked) empties the cache before the next decision.
// An entry lives at most TTL, and an allow that rests on a temporary grant
// no longer than the grant. Every decision, cached or not, is written to the
// decision log with its own id. It is safe for concurrent use.
type DecisionCache struct {
	e      *Engine
	ttl    time.Duration
	max    int
	now    func() time.Time
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	hits   atomic.Uint64
	misses atomic.Uint64
}

type cacheShard struct {
	mu  sync.Mutex
	gen cacheGen
	m   map[string]cacheEntry
}

// cacheGen identifies what a decision was made from.
type cacheGen struct {
	p *compiledPolicy
	s *snapshot
}

type cacheEntry struct {
	d     Decision
	until time.Time
}

// NewDecisionCache wraps e.
func NewDecisionCache(e *Engine, o CacheOptions) *DecisionCache {
	c := &DecisionCache{e: e, ttl: o.TTL, max: o.MaxEntries, now: o.Now, seed: maphash.MakeSeed()}
	if c.ttl <= 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.max <= 0 {
		c.max = DefaultCacheEntries
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Stats returns how many decisions were served from the cache and evaluated.
func (c *DecisionCache) Stats() (hits, misses uint64) { return c.hits.Load(), c.misses.Load() }

// Decide implements Authorizer.
func (c *DecisionCache) Decide(ctx context.Context, in Input) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	gen := cacheGen{p: c.e.policy.Load(), s: c.e.data.Load()}
	if gen.p == nil || gen.s == nil {
		return c.e.Decide(ctx, in)
	}
	now := in.Time // the caller's reading of the clock (the proxy's: when the request arrived)
	if now.IsZero() {
		now = c.now()
		in.Time = now
	}
	var buf [512]byte
	kb := appendCacheKey(buf[:0], gen.p.input, &in) // on the stack unless very long
	sh := &c.shards[maphash.Bytes(c.seed, kb)%cacheShards]

	sh.mu.Lock()
	if sh.gen != gen {
		sh.gen, sh.m = gen, nil // a new policy or data snapshot: nothing old counts
	}
	ent, ok := sh.m[string(kb)] // no allocation for a lookup
	sh.mu.Unlock()
	if ok && now.Before(ent.until) {
		c.hits.Add(1)
		d := ent.d
		d.ID = c.e.nextID()
		if c.e.dlog != nil {
			c.e.dlog.log(c.e.now(), &in, &d, nil)
		}
		return d, nil
	}
	c.misses.Add(1)
	d, err := c.e.Decide(ctx, in)
	if err != nil || d.PolicyRevision != gen.p.revision {
		return d, err // errors are never cached; nor a decision made after a swap
	}
	until := now.Add(c.ttl)
	if !d.GrantExpiry.IsZero() && d.GrantExpiry.Before(until) {
		until = d.GrantExpiry
	}
	sh.mu.Lock()
	if sh.gen == gen { // a swap since the lookup makes this decision unsafe to keep
		if sh.m == nil {
			sh.m = make(map[string]cacheEntry)
		}
		if len(sh.m) >= c.max/cacheShards {
			n := 0
			for k := range sh.m { // drop about a quarter, arbitrary entries
				delete(sh.m, k)
				if n++; n >= len(sh.m)/4+1 {
					break
				}
			}
		}
		sh.m[string(kb)] = cacheEntry{d: d, until: until}
	}
	sh.mu.Unlock()
	return d, nil
}

// appendCacheKey appends the input fields the policy can read, plus the
// identity fields the Backstage user is resolved from. Each field ends with
// a 0 byte; inside a field 0 is written as 1 2 and 1 as 1 3, and the groups
// are preceded by their number, so two different inputs never give the same
// key (one person's decision is never served to another).
func appendCacheKey(b []byte, ib *inputBuilder, in *Input) []byte {
	f := &ib.fields
	w := func(s string) {
		if strings.IndexByte(s, 0) >= 0 || strings.IndexByte(s, 1) >= 0 { // rare: escape
			start := 0
			for i := 0; i < len(s); i++ {
				if c := s[i]; c <= 1 {
					b = append(b, s[start:i]...)
					b = append(b, 1, 2+c)
					start = i + 1
				}
			}
			s = s[start:]
		}
		b = append(b, s...)
		b = append(b, 0)
	}
	// Identity: always, since the user ref is derived from it.
	w(in.User.Subject)
	w(in.User.Issuer)
	w(in.User.Email)
	w(in.User.Username)
	if f.name {
		w(in.User.Name)
	}
	if f.groups {
		b = binary.AppendUvarint(b, uint64(len(in.User.Groups)))
		for _, g := range in.User.Groups {
			w(g)
		}
	}
	if f.method {
		w(in.Request.Method)
	}
	if f.host {
		w(in.Request.Host)
	}
	if f.path {
		w(in.Request.Path)
	}
	if f.route {
		w(in.Route.Name)
		w(in.Route.Host)
		w(in.Route.PathPrefix)
		w(in.Route.Service)
		w(in.Route.Environment)
	}
	return b
}
