package ireval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

// ErrMultipleResults: the plan produced more than one distinct result.
var ErrMultipleResults = errors.New("ireval: more than one result")

var keyResult = ast.InternedTerm("result")

var errTwoOutputs = errors.New("ireval: built-in produced more than one value")

// emptySet and emptyObject are the shared values of collections made by
// MakeSetStmt and MakeObjectStmt until their first element; they are never
// mutated.
var (
	emptySet    = ast.NewSet()
	emptyObject = ast.NewObject()
)

// Index maps large objects of the data document (by the identity of their
// term) to a Go map of the same entries, which lookups use instead of the
// object's own hash table: fewer pointers to chase in a catalog of tens of
// thousands of entities. It must list exactly the object's entries.
type Index map[*ast.Term]map[string]*ast.Term

// indexMin is the size from which an object is looked up in the Index.
const indexMin = 64

// EvalInput is one evaluation's input, data and clock.
type EvalInput struct {
	Input, Data *ast.Term
	Time        time.Time // for built-ins that read the time
	Index       Index     // optional
}

// Eval runs the program and returns the value of the entrypoint (the
// "result" binding of its single result), nil when it is undefined. Errors
// are evaluation errors (conflicts, halting built-in errors) or
// ErrMultipleResults; the caller must treat them as a denial.
func (p *Program) Eval(ctx context.Context, in EvalInput) (*ast.Term, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	input, data, now := in.Input, in.Data, in.Time
	st := p.state()
	defer p.release(st)
	st.index = in.Index
	st.bctx.Context = ctx
	if p.needsTime {
		st.bctx.Time = ast.NumberTerm(json.Number(strconv.FormatInt(now.UnixNano(), 10)))
	}
	st.stack = append(st.stack[:0], make([]*ast.Term, p.nlocals)...)
	st.used = len(st.stack)
	st.stack[0], st.stack[1] = input, data
	for _, b := range p.plan {
		if _, ret, err := st.exec(0, b); err != nil {
			return nil, err
		} else if ret {
			break
		}
	}
	var result *ast.Term
	for _, r := range st.results {
		obj, ok := r.Value.(ast.Object)
		if !ok {
			continue
		}
		v := obj.Get(keyResult)
		if v == nil {
			continue
		}
		if result != nil && result.Value.Compare(v.Value) != 0 {
			return nil, ErrMultipleResults
		}
		result = v
	}
	return result, nil
}

// state is the scratch space of one evaluation, pooled per program.
type state struct {
	p        *Program
	stack    []*ast.Term
	memo     []*ast.Term
	memoDone []bool
	results  []*ast.Term
	ret      *ast.Term
	bctx     topdown.BuiltinContext
	ops      []*ast.Term
	out      *ast.Term
	iter     func(*ast.Term) error
	pathBuf  []byte
	scans    []*scanFrame
	depth    int
	index    Index
	used     int // the most of stack any frame reached, for release
	dots     [dotSlots]dotEntry
	dotsUsed bool
	findKey  string                    // what finder looks for
	found    *ast.Term                 // what it found
	finder   func(k, v *ast.Term) bool // made once per state: Until does not allocate
}

func (p *Program) state() *state {
	if st, ok := p.states.Get().(*state); ok {
		return st
	}
	st := &state{
		p:        p,
		stack:    make([]*ast.Term, 0, p.stackHint),
		memo:     make([]*ast.Term, len(p.funcs)),
		memoDone: make([]bool, len(p.funcs)),
		ops:      make([]*ast.Term, 0, 8),
	}
	st.bctx.Cache = builtins.Cache{}
	st.bctx.Capabilities = p.caps
	st.bctx.Metrics = metrics.NoOp()     // for built-ins that count
	st.bctx.Cancel = topdown.NewCancel() // never cancelled: evaluations are short
	st.finder = func(k, v *ast.Term) bool {
		if s, ok := k.Value.(ast.String); ok && string(s) == st.findKey {
			st.found = v
			return true
		}
		return false
	}
	st.iter = func(t *ast.Term) error {
		if st.out != nil {
			return errTwoOutputs // relations are refused at compile time; never serve one of several
		}
		st.out = t
		return nil
	}
	return st
}

func (p *Program) release(st *state) {
	clear(st.stack[:st.used]) // no terms kept alive by a pooled state
	clear(st.memo)
	clear(st.memoDone)
	clear(st.results)
	st.results = st.results[:0]
	st.ret, st.out, st.index = nil, nil, nil
	if st.dotsUsed { // nothing carried into the next evaluation, no data kept alive
		clear(st.dots[:])
		st.dotsUsed = false
	}
	st.bctx.Context, st.bctx.Time, st.bctx.Location = nil, nil, nil
	clear(st.bctx.Cache)
	p.states.Put(st)
}

// get reads an operand as it is, for statements that only move it (to a
// local, into a call); use reads it for a statement that looks at its value.
func (st *state) get(base int, o *operand) *ast.Term {
	if o.local < 0 {
		return o.term
	}
	return st.stack[base+int(o.local)]
}

// use is get for a value the statement looks at: a lazy object (the input)
// becomes the whole object. Only DotStmt reads members of a lazy object.
func (st *state) use(base int, o *operand) *ast.Term {
	if o.local < 0 {
		return o.term
	}
	return whole(st.stack[base+int(o.local)])
}

// exec runs one block. It returns done == -1 when every statement was
// defined and the block ran to its end, otherwise the number of enclosing
// blocks still to leave (0: only this one, as for an undefined statement),
// and ret when a ReturnLocalStmt ran.
func (st *state) exec(base int, b *block) (done int, ret bool, err error) {
	for i := range b.stmts {
		s := &b.stmts[i]
		switch s.op {
		case opNop:
		case opBreak:
			return int(s.n), false, nil
		case opReturnLocal:
			st.ret = st.stack[base+int(s.target)]
			return 0, true, nil
		case opAssignVar:
			v := st.get(base, &s.a)
			if v == nil {
				return 0, false, nil
			}
			st.stack[base+int(s.target)] = v
		case opAssignVarOnce:
			v := st.use(base, &s.a)
			if v == nil {
				return 0, false, nil
			}
			cur := whole(st.stack[base+int(s.target)])
			if cur != nil && cur.Value.Compare(v.Value) != 0 {
				return 0, false, &topdown.Error{Code: topdown.ConflictErr, Message: "complete rules must not produce multiple outputs", Location: s.loc}
			}
			st.stack[base+int(s.target)] = v
		case opAssignInt, opMakeNumberInt, opMakeNumberRef, opMakeNull, opAssignConst:
			st.stack[base+int(s.target)] = s.term
		case opMakeArray:
			st.stack[base+int(s.target)] = &ast.Term{Value: ast.NewArrayWithCapacity(int(s.n)), Location: madeLoc}
		case opMakeObject:
			// Collections filled later (in a scan, or never: most deny rules
			// do not fire) share one empty value until the first insert.
			if s.n > 0 {
				st.stack[base+int(s.target)] = &ast.Term{Value: ast.NewObjectWithCapacity(int(s.n)), Location: madeLoc}
			} else {
				st.stack[base+int(s.target)] = &ast.Term{Value: emptyObject, Location: madeLoc}
			}
		case opMakeSet:
			if s.n > 0 {
				st.stack[base+int(s.target)] = &ast.Term{Value: ast.NewSetWithCapacity(int(s.n)), Location: madeLoc}
			} else {
				st.stack[base+int(s.target)] = &ast.Term{Value: emptySet, Location: madeLoc}
			}
		case opResetLocal:
			st.stack[base+int(s.target)] = nil
		case opIsDefined:
			if st.stack[base+int(s.target)] == nil {
				return 0, false, nil
			}
		case opIsUndefined:
			if st.stack[base+int(s.target)] != nil {
				return 0, false, nil
			}
		case opIsArray, opIsObject, opIsSet:
			v := st.use(base, &s.a)
			if v == nil {
				return 0, false, nil
			}
			ok := false
			switch v.Value.(type) {
			case *ast.Array:
				ok = s.op == opIsArray
			case ast.Object:
				ok = s.op == opIsObject
			case ast.Set:
				ok = s.op == opIsSet
			}
			if !ok {
				return 0, false, nil
			}
		case opEqual, opNotEqual:
			a, b := st.use(base, &s.a), st.use(base, &s.b)
			if a == nil || b == nil {
				return 0, false, nil
			}
			if eq := a.Value.Compare(b.Value) == 0; eq != (s.op == opEqual) {
				return 0, false, nil
			}
		case opDot:
			src, key := st.get(base, &s.a), st.use(base, &s.b) // dot reads a lazy source member by member
			if src == nil || key == nil {
				return 0, false, nil
			}
			v := st.dotMemo(src, key)
			if v == nil {
				return 0, false, nil
			}
			st.stack[base+int(s.target)] = v
		case opLen:
			v := st.use(base, &s.a)
			if v == nil {
				return 0, false, nil
			}
			n, err := length(v)
			if err != nil {
				return 0, false, err
			}
			st.stack[base+int(s.target)] = ast.InternedTerm(n)
		case opArrayAppend:
			v := st.use(base, &s.a)
			t := st.stack[base+int(s.target)]
			if v == nil || t == nil {
				return 0, false, nil
			}
			arr, ok := t.Value.(*ast.Array)
			if !ok {
				return 0, false, fmt.Errorf("ireval: ArrayAppendStmt on %s", ast.ValueName(t.Value))
			}
			if t.Location == constLoc {
				t = &ast.Term{Value: arr.Copy(), Location: madeLoc}
				st.stack[base+int(s.target)] = t
				arr = t.Value.(*ast.Array)
			}
			t.Value = arr.Append(v) // t was made by MakeArrayStmt in this evaluation
		case opSetAdd:
			v := st.use(base, &s.a)
			t := st.stack[base+int(s.target)]
			if v == nil || t == nil {
				return 0, false, nil
			}
			set, ok := t.Value.(ast.Set)
			if !ok {
				return 0, false, fmt.Errorf("ireval: SetAddStmt on %s", ast.ValueName(t.Value))
			}
			switch {
			case t.Location == constLoc: // shared by all evaluations: copy
				set = set.Copy()
				t = &ast.Term{Value: set, Location: madeLoc}
				st.stack[base+int(s.target)] = t
			case set == emptySet: // this evaluation's term: fill in place
				set = ast.NewSet()
				t.Value = set
			}
			set.Add(v)
		case opObjectInsert, opObjectInsertOnce:
			k, v := st.use(base, &s.a), st.use(base, &s.b)
			t := st.stack[base+int(s.target)]
			if k == nil || v == nil || t == nil {
				return 0, false, nil
			}
			obj, ok := t.Value.(ast.Object)
			if !ok {
				return 0, false, fmt.Errorf("ireval: ObjectInsertStmt on %s", ast.ValueName(t.Value))
			}
			switch {
			case t.Location == constLoc:
				obj = obj.Copy()
				t = &ast.Term{Value: obj, Location: madeLoc}
				st.stack[base+int(s.target)] = t
			case obj == emptyObject:
				obj = ast.NewObject()
				t.Value = obj
			}
			if s.op == opObjectInsertOnce {
				if cur := obj.Get(k); cur != nil && cur.Value.Compare(v.Value) != 0 {
					return 0, false, &topdown.Error{Code: topdown.ConflictErr, Message: "object keys must be unique", Location: s.loc}
				}
			}
			obj.Insert(k, v)
		case opResultSetAdd:
			v := whole(st.stack[base+int(s.target)])
			if v == nil {
				return 0, false, nil
			}
			if _, ok := v.Value.(ast.Object); !ok {
				return 0, false, nil
			}
			st.results = append(st.results, v)
		case opBlock:
			for _, nb := range s.blocks {
				d, ret, err := st.exec(base, nb)
				if err != nil || ret {
					return 0, ret, err
				}
				if d >= 1 {
					return d - 1, false, nil
				}
			}
		case opNot:
			d, ret, err := st.exec(base, s.block)
			if err != nil || ret {
				return 0, ret, err
			}
			switch {
			case d == -1: // the negated block is defined
				return 0, false, nil
			case d >= 1:
				return d - 1, false, nil
			}
		case opScan:
			d, ret, err := st.scan(base, s)
			if err != nil || ret {
				return 0, ret, err
			}
			if d >= 0 {
				return d, false, nil
			}
		case opCall, opCallDynamic, opCallBuiltin:
			v, err := st.callStmt(base, s)
			if err != nil {
				return 0, false, err
			}
			if v == nil { // undefined, or an argument was
				return 0, false, nil
			}
			st.stack[base+int(s.target)] = v
		default:
			return 0, false, fmt.Errorf("ireval: unknown opcode %d", s.op)
		}
	}
	return -1, false, nil
}

var errStopScan = errors.New("stop scan")

// scanFrame holds one active ScanStmt; frames are reused across
// evaluations, so iterating objects and sets allocates no closures.
type scanFrame struct {
	st       *state
	base     int
	s        *stmt
	out      int
	ret      bool
	objBody  func(k, v *ast.Term) error
	elemBody func(t *ast.Term) error
}

func (fr *scanFrame) body(k, v *ast.Term) error {
	st, s := fr.st, fr.s
	st.stack[fr.base+int(s.key)], st.stack[fr.base+int(s.value)] = k, v
	d, r, err := st.exec(fr.base, s.block)
	switch {
	case err != nil:
		return err
	case r:
		fr.ret = true
		return errStopScan
	case d == 1:
		return errStopScan
	case d >= 2:
		fr.out = d - 2
		return errStopScan
	}
	return nil
}

func (fr *scanFrame) elem(t *ast.Term) error { return fr.body(t, t) }

// scan runs the body for each element of the source. It returns -1 to
// continue after the scan, or the number of blocks the containing block
// must still leave. In the body, a break of 0 moves to the next element and
// a break of 1 leaves the scan, as in OPA's Wasm compiler.
func (st *state) scan(base int, s *stmt) (int, bool, error) {
	src := whole(st.stack[base+int(s.target)])
	if src == nil {
		return 0, false, nil
	}
	if st.depth == len(st.scans) {
		fr := &scanFrame{st: st}
		fr.objBody, fr.elemBody = fr.body, fr.elem
		st.scans = append(st.scans, fr)
	}
	fr := st.scans[st.depth]
	st.depth++
	defer func() { st.depth-- }()
	fr.base, fr.s, fr.out, fr.ret = base, s, -1, false
	var err error
	switch c := src.Value.(type) {
	case *ast.Array:
		for i := range c.Len() {
			if err = fr.body(ast.InternedTerm(i), c.Elem(i)); err != nil {
				break
			}
		}
	case ast.Object:
		err = c.Iter(fr.objBody)
	case ast.Set:
		err = c.Iter(fr.elemBody)
	}
	out, ret := fr.out, fr.ret
	fr.s = nil
	if err != nil && err != errStopScan {
		return 0, false, err
	}
	return out, ret, nil
}

// madeLoc marks the collections an evaluation builds (MakeArrayStmt and
// friends, and copies of constants): the only terms whose value changes
// during an evaluation (ArrayAppendStmt, SetAddStmt, ObjectInsertStmt).
// Everything else (input, data, constants, built-in results) is immutable.
var madeLoc = &ast.Location{File: "ireval collection"}

// dotSlots is the size of an evaluation's dot memo: 1<<dotBits.
const (
	dotBits  = 6
	dotSlots = 1 << dotBits
)

// dotEntry remembers one lookup of key in src. Entries live for one
// evaluation: release clears them (terms of a finished evaluation can be
// freed and their addresses reused).
type dotEntry struct{ src, key, val *ast.Term }

// dotMemo is dot with a small direct-mapped memo for the evaluation: plans
// look the same things up many times (input.route in every rule that
// checks the environment, data.catalog in every catalog lookup). Lookups in
// collections the evaluation builds are never memoised: they change.
func (st *state) dotMemo(src, key *ast.Term) *ast.Term {
	if src.Location == madeLoc {
		return st.dot(src, key)
	}
	h := (uint64(uintptr(unsafe.Pointer(src)))>>3 ^ uint64(uintptr(unsafe.Pointer(key)))>>2) * 0x9E3779B97F4A7C15
	e := &st.dots[h>>(64-dotBits)]
	if e.src == src && e.key == key {
		return e.val
	}
	v := st.dot(src, key)
	*e = dotEntry{src: src, key: key, val: v}
	st.dotsUsed = true
	return v
}

func (st *state) dot(src, key *ast.Term) *ast.Term {
	switch c := src.Value.(type) {
	case *lazyValue:
		if k, ok := key.Value.(ast.String); ok {
			return c.o.Member(string(k))
		}
		return c.object().Get(key)
	case ast.Object:
		if st.index != nil && c.Len() >= indexMin {
			if m, ok := st.index[src]; ok {
				if k, ok := key.Value.(ast.String); ok {
					return m[string(k)]
				}
				return nil // the indexed objects have string keys only
			}
		}
		if k, ok := key.Value.(ast.String); ok && c.Len() <= scanMax {
			return st.find(c, string(k))
		}
		return c.Get(key)
	case *ast.Array:
		n, ok := key.Value.(ast.Number)
		if !ok {
			return nil
		}
		i, ok := n.Int()
		if !ok || i < 0 || i >= c.Len() {
			return nil
		}
		return c.Elem(i)
	case ast.Set:
		if c.Contains(key) {
			return key
		}
	}
	return nil
}

// scanMax is the size up to which dot finds a string key by walking the
// object's entries rather than through its hash map. A catalog entity
// (9 to 15 members) is found in a few sequential cache lines instead of the
// map's scattered ones, which is what a cold entity costs.
const scanMax = 16

// find is o.Get(key) for a string key, by walking o's entries.
func (st *state) find(o ast.Object, key string) *ast.Term {
	st.findKey, st.found = key, nil
	o.Until(st.finder)
	v := st.found
	st.found = nil
	return v
}

func length(t *ast.Term) (int, error) {
	switch c := t.Value.(type) {
	case *ast.Array:
		return c.Len(), nil
	case ast.Object:
		return c.Len(), nil
	case ast.Set:
		return c.Len(), nil
	case ast.String:
		return utf8.RuneCountInString(string(c)), nil
	}
	return 0, fmt.Errorf("ireval: LenStmt on %s", ast.ValueName(t.Value))
}

// callStmt runs a CallStmt (plan function or built-in) or a
// CallDynamicStmt; nil is undefined.
func (st *state) callStmt(base int, s *stmt) (*ast.Term, error) {
	switch s.op {
	case opCallBuiltin:
		return st.builtin(base, s)
	case opCallDynamic:
		fn, ok := st.dynamic(base, s)
		if !ok {
			return nil, nil
		}
		return st.invoke(base, fn, s.args)
	default:
		return st.invoke(base, s.fn, s.args)
	}
}

// invoke calls plan function fn with args read from the caller's frame.
func (st *state) invoke(base int, fn int32, args []operand) (*ast.Term, error) {
	f := st.p.funcs[fn]
	if f.memo && st.memoDone[fn] {
		return st.memo[fn], nil
	}
	if len(args) != len(f.params) {
		return nil, fmt.Errorf("ireval: %s called with %d arguments, wants %d", f.name, len(args), len(f.params))
	}
	for i := range args {
		if st.get(base, &args[i]) == nil {
			return nil, nil
		}
	}
	nb := len(st.stack)
	st.stack = append(st.stack, make([]*ast.Term, f.nlocals)...) // a zeroed frame
	st.used = max(st.used, len(st.stack))
	for i := range args {
		st.stack[nb+int(f.params[i])] = st.get(base, &args[i])
	}
	var result *ast.Term
	for _, b := range f.blocks {
		_, ret, err := st.exec(nb, b)
		if err != nil {
			return nil, err
		}
		if ret {
			result = st.ret
			st.ret = nil
			break
		}
	}
	st.stack = st.stack[:nb] // the next frame here is zeroed when made; release clears what was used
	if f.memo {
		st.memo[fn], st.memoDone[fn] = result, true
	}
	return result, nil
}

func (st *state) dynamic(base int, s *stmt) (int32, bool) {
	buf := st.pathBuf[:0]
	for i := range s.path {
		t := st.use(base, &s.path[i])
		if t == nil {
			return 0, false
		}
		str, ok := t.Value.(ast.String)
		if !ok {
			return 0, false
		}
		if i > 0 {
			buf = append(buf, '.')
		}
		buf = append(buf, str...)
	}
	st.pathBuf = buf
	fn, ok := st.p.byPath[string(buf)]
	return fn, ok
}

func (st *state) builtin(base int, s *stmt) (*ast.Term, error) {
	ops := st.ops[:0]
	for i := range s.args {
		t := st.use(base, &s.args[i])
		if t == nil {
			return nil, nil
		}
		ops = append(ops, t)
	}
	st.ops = ops
	st.out = nil
	st.bctx.Location = s.loc
	err := s.bi.f(st.bctx, ops, st.iter)
	clear(ops)
	if errors.Is(err, errTwoOutputs) {
		return nil, fmt.Errorf("%s: %w", s.bi.name, err)
	}
	if err != nil {
		var h topdown.Halt
		if errors.As(err, &h) {
			return nil, h.Err
		}
		// Like topdown without strict built-in errors: the call is undefined.
		return nil, nil
	}
	out := st.out
	st.out = nil
	return out, nil
}
