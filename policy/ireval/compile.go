package ireval

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// ErrUnsupported: the plan uses a statement or built-in this evaluator does
// not implement; evaluate the policy with topdown instead.
var ErrUnsupported = errors.New("ireval: unsupported")

type opcode uint8

const (
	opArrayAppend opcode = iota + 1
	opAssignInt
	opAssignVar
	opAssignVarOnce
	opBlock
	opBreak
	opCall
	opCallBuiltin
	opCallDynamic
	opDot
	opEqual
	opNotEqual
	opIsArray
	opIsObject
	opIsSet
	opIsDefined
	opIsUndefined
	opLen
	opMakeArray
	opMakeNull
	opMakeNumberInt
	opMakeNumberRef
	opMakeObject
	opMakeSet
	opNop
	opNot
	opObjectInsert
	opObjectInsertOnce
	opResetLocal
	opResultSetAdd
	opReturnLocal
	opScan
	opSetAdd
	opAssignConst // a collection literal folded at compile time (foldLiterals)
)

// operand is a local (local >= 0) or a constant term.
type operand struct {
	local int32
	term  *ast.Term
}

// stmt is one compiled statement. Which fields are used depends on op.
type stmt struct {
	op     opcode
	a, b   operand // source/key/value operands
	target int32   // target local (also: array/object/set local, scan source)
	key    int32   // scan key local
	value  int32   // scan value local
	n      int64   // break index, int values, capacity
	term   *ast.Term
	block  *block   // not, scan
	blocks []*block // block stmt
	fn     int32    // plan function index (opCall)
	bi     *builtin // opCallBuiltin
	args   []operand
	path   []operand // opCallDynamic
	loc    *ast.Location
}

type block struct{ stmts []stmt }

type function struct {
	name    string
	params  []int32
	ret     int32
	nlocals int32
	blocks  []*block
	memo    bool // depends only on input and data: evaluated at most once per query
}

type builtin struct {
	name string
	f    topdown.BuiltinFunc
}

// Program is a compiled plan, immutable and safe for concurrent use.
type Program struct {
	plan      []*block
	nlocals   int32
	funcs     []*function
	byPath    map[string]int32 // function path joined with "." -> index, for CallDynamic
	files     []string
	stackHint int
	needsTime bool              // a built-in reads the evaluation time (time.now_ns)
	caps      *ast.Capabilities // what built-ins may do (AllowNet), as topdown is told
	states    sync.Pool         // *state
}

// Compile prepares the plan named entry (e.g. "backgate/authz/decision")
// from a policy serialised by OPA's planner (plan.json). caps are the
// capabilities the policy was compiled with: a built-in they do not list is
// refused, and built-ins get them at run time exactly as under topdown (for
// example AllowNet, which keeps json.verify_schema from fetching a remote
// $ref). nil means OPA's defaults.
func Compile(planJSON []byte, entry string, caps *ast.Capabilities) (*Program, error) {
	var pol ir.Policy
	if err := json.Unmarshal(planJSON, &pol); err != nil {
		return nil, fmt.Errorf("ireval: decode plan: %w", err)
	}
	return compilePolicy(&pol, entry, caps)
}

func compilePolicy(pol *ir.Policy, entry string, caps *ast.Capabilities) (*Program, error) {
	if pol.Static == nil || pol.Plans == nil {
		return nil, fmt.Errorf("ireval: plan has no static section or no plans")
	}
	c := &compiler{pol: pol, p: &Program{byPath: map[string]int32{}, caps: caps}, fnIndex: map[string]int32{}}
	if caps != nil {
		c.allowed = make(map[string]bool, len(caps.Builtins))
		for _, b := range caps.Builtins {
			c.allowed[b.Name] = true
		}
	}
	for _, f := range pol.Static.Files {
		c.p.files = append(c.p.files, f.Value)
	}
	c.strings = make([]*ast.Term, len(pol.Static.Strings))
	for i, s := range pol.Static.Strings {
		c.strings[i] = ast.InternedTerm(s.Value)
	}
	if pol.Funcs != nil {
		for i, f := range pol.Funcs.Funcs {
			c.fnIndex[f.Name] = int32(i)
			if len(f.Path) > 0 {
				c.p.byPath[strings.Join(f.Path, ".")] = int32(i)
			}
		}
		c.p.funcs = make([]*function, len(pol.Funcs.Funcs))
		for i, f := range pol.Funcs.Funcs {
			fn, err := c.function(f)
			if err != nil {
				return nil, err
			}
			c.p.funcs[i] = fn
		}
	}
	var plan *ir.Plan
	for _, pl := range pol.Plans.Plans {
		if pl.Name == entry {
			plan = pl
		}
	}
	if plan == nil {
		return nil, fmt.Errorf("ireval: plan %q not found", entry)
	}
	c.maxLocal = int32(ir.Data)
	blocks, err := c.blocks(plan.Blocks)
	if err != nil {
		return nil, fmt.Errorf("ireval: plan %s: %w", entry, err)
	}
	c.p.plan, c.p.nlocals = blocks, c.maxLocal+1
	for _, f := range c.p.funcs {
		c.p.stackHint += int(f.nlocals)
	}
	c.p.stackHint += int(c.p.nlocals)
	return c.p, nil
}

type compiler struct {
	pol      *ir.Policy
	p        *Program
	strings  []*ast.Term
	fnIndex  map[string]int32
	allowed  map[string]bool // built-ins the capabilities list; nil: any
	maxLocal int32
}

func (c *compiler) function(f *ir.Func) (*function, error) {
	c.maxLocal = int32(f.Return)
	fn := &function{name: f.Name, ret: int32(f.Return)}
	for _, p := range f.Params {
		fn.params = append(fn.params, int32(p))
		c.maxLocal = max(c.maxLocal, int32(p))
	}
	fn.memo = len(f.Params) == 2 && f.Params[0] == ir.Input && f.Params[1] == ir.Data
	blocks, err := c.blocks(f.Blocks)
	if err != nil {
		return nil, fmt.Errorf("ireval: function %s: %w", f.Name, err)
	}
	fn.blocks, fn.nlocals = blocks, c.maxLocal+1
	return fn, nil
}

func (c *compiler) blocks(in []*ir.Block) ([]*block, error) {
	out := make([]*block, len(in))
	for i, b := range in {
		cb, err := c.block(b)
		if err != nil {
			return nil, err
		}
		out[i] = cb
	}
	return out, nil
}

func (c *compiler) local(l ir.Local) int32 {
	c.maxLocal = max(c.maxLocal, int32(l))
	return int32(l)
}

func (c *compiler) operand(o ir.Operand) (operand, error) {
	v := o.Value
	switch p := v.(type) { // decoded plans hold pointers
	case *ir.Local:
		v = *p
	case *ir.StringIndex:
		v = *p
	case *ir.Bool:
		v = *p
	}
	switch v := v.(type) {
	case ir.Local:
		return operand{local: c.local(v)}, nil
	case ir.StringIndex:
		if int(v) < 0 || int(v) >= len(c.strings) {
			return operand{}, fmt.Errorf("string index %d out of range", v)
		}
		return operand{local: -1, term: c.strings[v]}, nil
	case ir.Bool:
		return operand{local: -1, term: ast.InternedTerm(bool(v))}, nil
	default:
		return operand{}, fmt.Errorf("%w: operand %T", ErrUnsupported, v)
	}
}

func (c *compiler) location(l *ir.Location) *ast.Location {
	file := ""
	if l.File >= 0 && l.File < len(c.p.files) {
		file = c.p.files[l.File]
	}
	return &ast.Location{File: file, Row: l.Row, Col: l.Col}
}

func (c *compiler) block(b *ir.Block) (*block, error) {
	out := &block{stmts: make([]stmt, 0, len(b.Stmts))}
	for _, s := range b.Stmts {
		cs, err := c.stmt(s)
		if err != nil {
			return nil, err
		}
		out.stmts = append(out.stmts, cs)
	}
	out.stmts = foldLiterals(out.stmts)
	return out, nil
}

// constLoc marks terms built at compile time and shared by every
// evaluation; statements that add to a collection copy such a term first.
var constLoc = &ast.Location{File: "ireval constant"}

// foldLiterals rewrites a collection literal whose elements are all
// constants (MakeSetStmt followed by SetAddStmts of string or boolean
// constants, and the same for arrays and objects) into one assignment of a
// value built here, and gives the others a capacity hint: the number of
// elements added right after they are made.
func foldLiterals(in []stmt) []stmt {
	out := in[:0]
	for i := 0; i < len(in); i++ {
		s := in[i]
		var add opcode
		switch s.op {
		case opMakeSet:
			add = opSetAdd
		case opMakeArray:
			add = opArrayAppend
		case opMakeObject:
			add = opObjectInsert
		default:
			out = append(out, s)
			continue
		}
		n, constant := 0, true
		for j := i + 1; j < len(in); j++ {
			a := &in[j]
			if a.target != s.target || (a.op != add && !(add == opObjectInsert && a.op == opObjectInsertOnce)) {
				break
			}
			n++
			constant = constant && a.a.local < 0 && (add != opObjectInsert || a.b.local < 0)
		}
		if n == 0 || !constant {
			s.n = max(s.n, int64(n))
			out = append(out, s)
			continue
		}
		adds := in[i+1 : i+1+n]
		var v ast.Value
		switch s.op {
		case opMakeSet:
			set := ast.NewSetWithCapacity(n)
			for _, a := range adds {
				set.Add(a.a.term)
			}
			v = set
		case opMakeArray:
			elems := make([]*ast.Term, n)
			for k, a := range adds {
				elems[k] = a.a.term
			}
			v = ast.NewArray(elems...)
		case opMakeObject:
			obj, dup := ast.NewObjectWithCapacity(n), false
			for _, a := range adds {
				if cur := obj.Get(a.a.term); cur != nil && !cur.Equal(a.b.term) {
					dup = true // a conflict (ObjectInsertOnce) must happen at run time
				}
				obj.Insert(a.a.term, a.b.term)
			}
			if dup {
				s.n = int64(n)
				out = append(out, s)
				continue
			}
			v = obj
		}
		out = append(out, stmt{op: opAssignConst, target: s.target, term: &ast.Term{Value: v, Location: constLoc}})
		i += n
	}
	return out
}

func (c *compiler) stmt(s ir.Stmt) (stmt, error) {
	var out stmt
	var err error
	ops := func(dst *operand, o ir.Operand) {
		if err == nil {
			*dst, err = c.operand(o)
		}
	}
	switch s := s.(type) {
	case *ir.ArrayAppendStmt:
		out = stmt{op: opArrayAppend, target: c.local(s.Array)}
		ops(&out.a, s.Value)
	case *ir.AssignIntStmt:
		out = stmt{op: opAssignInt, target: c.local(s.Target), term: ast.InternedTerm(int(s.Value))}
	case *ir.AssignVarStmt:
		out = stmt{op: opAssignVar, target: c.local(s.Target)}
		ops(&out.a, s.Source)
	case *ir.AssignVarOnceStmt:
		out = stmt{op: opAssignVarOnce, target: c.local(s.Target), loc: c.location(&s.Location)}
		ops(&out.a, s.Source)
	case *ir.BlockStmt:
		out = stmt{op: opBlock}
		out.blocks, err = c.blocks(s.Blocks)
	case *ir.BreakStmt:
		out = stmt{op: opBreak, n: int64(s.Index)}
	case *ir.CallStmt:
		out, err = c.call(s)
	case *ir.CallDynamicStmt:
		out = stmt{op: opCallDynamic, target: c.local(s.Result)}
		for _, a := range s.Args {
			out.args = append(out.args, operand{local: c.local(a)})
		}
		out.path = make([]operand, len(s.Path))
		for i, p := range s.Path {
			ops(&out.path[i], p)
		}
	case *ir.DotStmt:
		out = stmt{op: opDot, target: c.local(s.Target)}
		ops(&out.a, s.Source)
		ops(&out.b, s.Key)
	case *ir.EqualStmt:
		out = stmt{op: opEqual}
		ops(&out.a, s.A)
		ops(&out.b, s.B)
	case *ir.NotEqualStmt:
		out = stmt{op: opNotEqual}
		ops(&out.a, s.A)
		ops(&out.b, s.B)
	case *ir.IsArrayStmt:
		out = stmt{op: opIsArray}
		ops(&out.a, s.Source)
	case *ir.IsObjectStmt:
		out = stmt{op: opIsObject}
		ops(&out.a, s.Source)
	case *ir.IsSetStmt:
		out = stmt{op: opIsSet}
		ops(&out.a, s.Source)
	case *ir.IsDefinedStmt:
		out = stmt{op: opIsDefined, target: c.local(s.Source)}
	case *ir.IsUndefinedStmt:
		out = stmt{op: opIsUndefined, target: c.local(s.Source)}
	case *ir.LenStmt:
		out = stmt{op: opLen, target: c.local(s.Target)}
		ops(&out.a, s.Source)
	case *ir.MakeArrayStmt:
		out = stmt{op: opMakeArray, target: c.local(s.Target), n: int64(max(s.Capacity, 0))}
	case *ir.MakeNullStmt:
		out = stmt{op: opMakeNull, target: c.local(s.Target), term: ast.InternedNullTerm}
	case *ir.MakeNumberIntStmt:
		out = stmt{op: opMakeNumberInt, target: c.local(s.Target), term: ast.InternedTerm(int(s.Value))}
	case *ir.MakeNumberRefStmt:
		if s.Index < 0 || s.Index >= len(c.strings) {
			return stmt{}, fmt.Errorf("number string index %d out of range", s.Index)
		}
		out = stmt{op: opMakeNumberRef, target: c.local(s.Target), term: ast.NumberTerm(json.Number(c.pol.Static.Strings[s.Index].Value))}
	case *ir.MakeObjectStmt:
		out = stmt{op: opMakeObject, target: c.local(s.Target)}
	case *ir.MakeSetStmt:
		out = stmt{op: opMakeSet, target: c.local(s.Target)}
	case *ir.NopStmt:
		out = stmt{op: opNop}
	case *ir.NotStmt:
		out = stmt{op: opNot}
		out.block, err = c.block(s.Block)
	case *ir.ObjectInsertStmt:
		out = stmt{op: opObjectInsert, target: c.local(s.Object)}
		ops(&out.a, s.Key)
		ops(&out.b, s.Value)
	case *ir.ObjectInsertOnceStmt:
		out = stmt{op: opObjectInsertOnce, target: c.local(s.Object), loc: c.location(&s.Location)}
		ops(&out.a, s.Key)
		ops(&out.b, s.Value)
	case *ir.ResetLocalStmt:
		out = stmt{op: opResetLocal, target: c.local(s.Target)}
	case *ir.ResultSetAddStmt:
		out = stmt{op: opResultSetAdd, target: c.local(s.Value)}
	case *ir.ReturnLocalStmt:
		out = stmt{op: opReturnLocal, target: c.local(s.Source)}
	case *ir.ScanStmt:
		out = stmt{op: opScan, target: c.local(s.Source), key: c.local(s.Key), value: c.local(s.Value)}
		out.block, err = c.block(s.Block)
	case *ir.SetAddStmt:
		out = stmt{op: opSetAdd, target: c.local(s.Set)}
		ops(&out.a, s.Value)
	default:
		// WithStmt, ObjectMergeStmt and anything newer: topdown handles them.
		return stmt{}, fmt.Errorf("%w: statement %T", ErrUnsupported, s)
	}
	return out, err
}

// Built-ins that read state this evaluator does not provide (the request
// context's caches, HTTP, randomness, tracing, printing) are refused, so a
// policy using them is evaluated by topdown.
var refusedBuiltins = map[string]bool{
	"http.send": true, "net.lookup_ip_addr": true, "opa.runtime": true, "trace": true,
	"internal.print": true, "rand.intn": true, "uuid.rfc4122": true, "io.jwt.decode_verify": true,
	"internal.test_case": true, "internal.template_string": true,
}

func (c *compiler) call(s *ir.CallStmt) (stmt, error) {
	out := stmt{target: c.local(s.Result), loc: c.location(&s.Location)}
	out.args = make([]operand, len(s.Args))
	for i, a := range s.Args {
		o, err := c.operand(a)
		if err != nil {
			return stmt{}, err
		}
		out.args[i] = o
	}
	if i, ok := c.fnIndex[s.Func]; ok {
		out.op, out.fn = opCall, i
		return out, nil
	}
	if refusedBuiltins[s.Func] || c.allowed != nil && !c.allowed[s.Func] {
		return stmt{}, fmt.Errorf("%w: built-in %s", ErrUnsupported, s.Func)
	}
	if b, ok := ast.BuiltinMap[s.Func]; ok && b.Relation {
		// A relation (walk) yields many values; a call statement takes one.
		return stmt{}, fmt.Errorf("%w: relation built-in %s", ErrUnsupported, s.Func)
	}
	f := topdown.GetBuiltin(s.Func)
	if f == nil {
		return stmt{}, fmt.Errorf("%w: built-in %s", ErrUnsupported, s.Func)
	}
	if s.Func == ast.NowNanos.Name {
		c.p.needsTime = true
	}
	out.op, out.bi = opCallBuiltin, &builtin{name: s.Func, f: f}
	return out, nil
}
