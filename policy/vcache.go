package policy

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// vcache is a topdown.VirtualCache (the per-evaluation memo of rule and
// function results) that allocates nothing once warm: entries live in flat
// slices that are reset and pooled between evaluations. topdown's default
// cache is a trie with a hash map per ref element, which costs about five
// allocations per level for every rule an evaluation touches.
//
// A decision evaluates a few dozen distinct refs, so lookups are a linear
// scan that compares the last ref element (the rule name or the function
// arguments) first.
type vcache struct {
	frames  []int     // index into entries where each pushed frame starts
	entries []vcEntry // all frames, innermost last
	terms   []*ast.Term
}

type vcEntry struct {
	off, n    int // ref terms: terms[off : off+n]
	value     *ast.Term
	undefined bool
}

func newVCache() *vcache {
	return &vcache{
		frames:  make([]int, 1, 4),
		entries: make([]vcEntry, 0, 64),
		terms:   make([]*ast.Term, 0, 256),
	}
}

// release clears the cache (dropping references to terms) and returns it
// to pool.
func (c *vcache) release(pool *sync.Pool) {
	if cap(c.entries) > 4096 || cap(c.terms) > 16384 {
		return // an unusually large evaluation: let the GC have it
	}
	clear(c.entries)
	clear(c.terms)
	c.frames = c.frames[:1]
	c.frames[0] = 0
	c.entries = c.entries[:0]
	c.terms = c.terms[:0]
	pool.Put(c)
}

// Push implements topdown.VirtualCache.
func (c *vcache) Push() { c.frames = append(c.frames, len(c.entries)) }

// Pop implements topdown.VirtualCache.
func (c *vcache) Pop() {
	if len(c.frames) <= 1 {
		return
	}
	start := c.frames[len(c.frames)-1]
	c.frames = c.frames[:len(c.frames)-1]
	if start < len(c.entries) {
		off := c.entries[start].off
		clear(c.entries[start:])
		c.entries = c.entries[:start]
		clear(c.terms[off:])
		c.terms = c.terms[:off]
	}
}

func (c *vcache) find(ref ast.Ref) int {
	start := c.frames[len(c.frames)-1]
	n := len(ref)
	if n == 0 {
		return -1
	}
	last := ref[n-1]
	for i := len(c.entries) - 1; i >= start; i-- {
		en := &c.entries[i]
		if en.n != n || !c.terms[en.off+n-1].Equal(last) {
			continue
		}
		match := true
		for j := n - 2; j >= 0; j-- {
			if !c.terms[en.off+j].Equal(ref[j]) {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// Get implements topdown.VirtualCache.
func (c *vcache) Get(ref ast.Ref) (*ast.Term, bool) {
	i := c.find(ref)
	if i < 0 {
		return nil, false
	}
	if c.entries[i].undefined {
		return nil, true
	}
	return c.entries[i].value, false
}

// Put implements topdown.VirtualCache.
func (c *vcache) Put(ref ast.Ref, value *ast.Term) {
	if i := c.find(ref); i >= 0 {
		c.entries[i].value, c.entries[i].undefined = value, value == nil
		return
	}
	off := len(c.terms)
	c.terms = append(c.terms, ref...)
	c.entries = append(c.entries, vcEntry{off: off, n: len(ref), value: value, undefined: value == nil})
}

// Keys implements topdown.VirtualCache.
func (c *vcache) Keys() []ast.Ref {
	var out []ast.Ref
	for _, en := range c.entries[c.frames[len(c.frames)-1]:] {
		if en.value != nil {
			out = append(out, append(ast.Ref(nil), c.terms[en.off:en.off+en.n]...))
		}
	}
	return out
}

var _ topdown.VirtualCache = (*vcache)(nil)
