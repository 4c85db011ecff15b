package signer

import (
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCacheSize is the number of minted header sets kept when
// Options.CacheSize is zero.
const DefaultCacheSize = 4096

const cacheShards = 16

// headerCache keeps minted headers by everything that went into them. It
// is a sharded LRU; every shard has its own lock. Entries of an older key
// set generation are dropped as soon as a newer one is seen.
type headerCache struct {
	seed     maphash.Seed
	perShard int
	gen      atomic.Uint64
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu   sync.Mutex
	m    map[string]*centry
	head centry // sentinel: head.next is most recently used
}

type centry struct {
	key        string
	h          Headers
	iat        time.Time
	prev, next *centry
}

func newHeaderCache(size int) *headerCache {
	c := &headerCache{seed: maphash.MakeSeed(), perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].reset()
	}
	return c
}

func (s *cacheShard) reset() {
	s.m = make(map[string]*centry)
	s.head.next, s.head.prev = &s.head, &s.head
}

func (s *cacheShard) unlink(e *centry) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (s *cacheShard) pushFront(e *centry) {
	e.prev, e.next = &s.head, s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (c *headerCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
}

// sync drops every entry when gen differs from the cache's generation.
func (c *headerCache) sync(gen uint64) {
	if c.gen.Load() == gen {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.reset()
		s.mu.Unlock()
	}
	c.gen.Store(gen)
}

// get returns the headers for key if they may still be reused at now: more
// than half their lifetime is left. (Their expiry never passes NotAfter,
// which is part of the key.)
func (c *headerCache) get(key []byte, now time.Time) (Headers, bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[string(key)]
	if !ok {
		return Headers{}, false
	}
	if !reusable(e.iat, e.h.Expiry, now) {
		s.unlink(e)
		delete(s.m, e.key)
		return Headers{}, false
	}
	s.unlink(e)
	s.pushFront(e)
	return e.h, true
}

func reusable(iat, exp, now time.Time) bool {
	return !now.Before(iat) && 2*exp.Sub(now) > exp.Sub(iat)
}

func (c *headerCache) put(key []byte, h Headers, iat time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[string(key)]; ok {
		e.h, e.iat = h, iat
		s.unlink(e)
		s.pushFront(e)
		return
	}
	if len(s.m) >= c.perShard {
		old := s.head.prev
		s.unlink(old)
		delete(s.m, old.key)
	}
	e := &centry{key: string(key), h: h, iat: iat}
	s.m[e.key] = e
	s.pushFront(e)
}

func (c *headerCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// appendCacheKey encodes every input of a signature unambiguously: each
// string is length-prefixed, so no choice of field contents can make two
// different requests produce the same key.
func appendCacheKey(b []byte, gen uint64, edgeID, jwtID, host string, r *SignRequest) []byte {
	b = strconv.AppendUint(b, gen, 10)
	b = append(b, '|')
	for _, s := range [...]string{edgeID, jwtID, host, r.Subject, r.Email, r.Name, r.UserRef, r.Service, r.Environment} {
		b = appendField(b, s)
	}
	b = strconv.AppendInt(b, int64(len(r.Groups)), 10)
	b = append(b, '|')
	for _, g := range r.Groups {
		b = appendField(b, g)
	}
	b = strconv.AppendInt(b, r.NotAfter.Unix(), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(r.NotAfter.Nanosecond()), 10)
	return b
}

func appendField(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}
