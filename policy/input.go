package policy

import (
	"strconv"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/backgate/backgate/policy/ireval"
)

// Input keys, allocated once.
var (
	kUser        = ast.StringTerm("user")
	kRequest     = ast.StringTerm("request")
	kRoute       = ast.StringTerm("route")
	kTime        = ast.StringTerm("time")
	kApproval    = ast.StringTerm("approval")
	kSub         = ast.StringTerm("sub")
	kIss         = ast.StringTerm("iss")
	kEmail       = ast.StringTerm("email")
	kName        = ast.StringTerm("name")
	kUsername    = ast.StringTerm("username")
	kGroups      = ast.StringTerm("groups")
	kRef         = ast.StringTerm("ref")
	kMethod      = ast.StringTerm("method")
	kHost        = ast.StringTerm("host")
	kPath        = ast.StringTerm("path")
	kPathPrefix  = ast.StringTerm("path_prefix")
	kService     = ast.StringTerm("service")
	kEnvironment = ast.StringTerm("environment")
	kRequester   = ast.StringTerm("requester")
	kApprover    = ast.StringTerm("approver")
	kApprovedBy  = ast.StringTerm("approved_by")
	kDurationNs  = ast.StringTerm("duration_ns")
	emptyString  = ast.StringTerm("")
	emptyArray   = ast.ArrayTerm()
)

// str, strArray and nanos allocate each term on its own (termSlab's nil
// receiver); decision inputs use a termSlab.
func str(s string) *ast.Term         { return (*termSlab)(nil).str(s) }
func strArray(ss []string) *ast.Term { return (*termSlab)(nil).strArray(ss) }
func nanos(n int64) *ast.Term        { return (*termSlab)(nil).nanos(n) }

// inputUse records which input fields a policy can read, found by walking
// every ref rooted at input in the compiled modules. A field the policy
// cannot reach is left out of the input it is given: the result cannot
// differ, and building it is most of the per-decision input cost. Any ref
// that is not a plain ground path (input as a whole, input[x],
// input.user[k], a function taking input.user) marks everything below it
// as used, so the analysis errs towards building more.
type inputUse struct {
	all  bool
	top  map[string]bool // input.<key> read (at least partly)
	full map[string]bool // input.<key> read as a whole or with a non-ground key
	sub  map[string]bool // "<key>.<field>" read
}

// Only the rules query can reach count (the compiler's rule dependency
// graph, which also resolves non-ground refs such as data.backgate[x] to
// every rule they may reach), so approval rules reading input as a whole do
// not make every decision build the full input.
func analyseInput(c *ast.Compiler, query string) *inputUse {
	u := &inputUse{top: map[string]bool{}, full: map[string]bool{}, sub: map[string]bool{}}
	var nodes []any
	if r, err := ast.ParseRef(query); err == nil {
		nodes = reachableRules(c, r)
	}
	if nodes == nil {
		for _, m := range c.Modules {
			nodes = append(nodes, m)
		}
	}
	for _, n := range nodes {
		ast.WalkRefs(n, func(r ast.Ref) bool {
			if !r.HasPrefix(ast.InputRootRef) {
				return false
			}
			if len(r) == 1 {
				u.all = true
				return false
			}
			k, ok := r[1].Value.(ast.String)
			if !ok {
				u.all = true
				return false
			}
			u.top[string(k)] = true
			if len(r) == 2 {
				u.full[string(k)] = true
				return false
			}
			f, ok := r[2].Value.(ast.String)
			if !ok {
				u.full[string(k)] = true
				return false
			}
			u.sub[string(k)+"."+string(f)] = true
			return false
		})
	}
	return u
}

// reachableRules lists the rules query depends on, or nil if it names no
// rule.
func reachableRules(c *ast.Compiler, query ast.Ref) []any {
	start := c.GetRules(query)
	if len(start) == 0 {
		return nil
	}
	seen := map[*ast.Rule]bool{}
	var out []any
	stack := start
	for len(stack) > 0 {
		rule := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[rule] {
			continue
		}
		seen[rule] = true
		out = append(out, rule)
		if rule.Else != nil {
			stack = append(stack, rule.Else) // else branches are graph nodes of their own
		}
		for dep := range c.Graph.Dependencies(rule) {
			if r, ok := dep.(*ast.Rule); ok {
				stack = append(stack, r)
			}
		}
	}
	return out
}

// reads reports whether the policy may read input.<key>.<field> ("" field:
// anything under key).
func (u *inputUse) reads(key, field string) bool {
	if u == nil || u.all || u.full[key] {
		return true
	}
	if field == "" {
		return u.top[key]
	}
	return u.sub[key+"."+field]
}

// inputBuilder builds decision inputs directly as AST values for one
// compiled policy, leaving out what that policy cannot read and reusing the
// route part (routes come from a bounded configuration) across decisions.
type inputBuilder struct {
	use    *inputUse
	fields struct {
		user, request, route, time                    bool
		sub, iss, email, name, username, groups, ref  bool
		method, host, path                            bool
		rname, rhost, rprefix, rservice, renvironment bool
	}
	routes sync.Map // Route -> *ast.Term
	nroute int64
	mu     sync.Mutex
}

// maxCachedRoutes bounds the route cache: enough for a catalog that gives
// each of 10,000 components a route in several environments.
const maxCachedRoutes = 32768

func newInputBuilder(use *inputUse) *inputBuilder {
	b := &inputBuilder{use: use}
	f := &b.fields
	f.user, f.request, f.route, f.time = use.reads("user", ""), use.reads("request", ""), use.reads("route", ""), use.reads("time", "")
	f.sub, f.iss, f.email = use.reads("user", "sub"), use.reads("user", "iss"), use.reads("user", "email")
	f.name, f.username, f.groups, f.ref = use.reads("user", "name"), use.reads("user", "username"), use.reads("user", "groups"), use.reads("user", "ref")
	f.method, f.host, f.path = use.reads("request", "method"), use.reads("request", "host"), use.reads("request", "path")
	f.rname, f.rhost, f.rprefix = use.reads("route", "name"), use.reads("route", "host"), use.reads("route", "path_prefix")
	f.rservice, f.renvironment = use.reads("route", "service"), use.reads("route", "environment")
	return b
}

// build builds the policy input. Its shape is rego/schemas/input.json.
func (b *inputBuilder) build(in *Input, userRef string) ast.Value {
	ts := termSlab{buf: make([]ast.Term, 0, 12)} // one allocation for the input's terms
	return b.object(&ts, in, userRef, nil)
}

// Members of input (kind nil), input.user and input.request, in the order
// they are built.
var (
	rootKeys    = [...]*ast.Term{kUser, kRequest, kRoute, kTime}
	userKeys    = [...]*ast.Term{kSub, kIss, kEmail, kName, kUsername, kGroups, kRef}
	requestKeys = [...]*ast.Term{kMethod, kHost, kPath}
)

func keysOf(kind *ast.Term) []*ast.Term {
	switch kind {
	case kUser:
		return userKeys[:]
	case kRequest:
		return requestKeys[:]
	}
	return rootKeys[:]
}

// object builds input (kind nil), input.user or input.request: the members
// the policy can read.
func (b *inputBuilder) object(ts *termSlab, in *Input, userRef string, kind *ast.Term) ast.Object {
	var items [8][2]*ast.Term // on the stack until copied by NewObject
	obj := items[:0]
	sub := func(k *ast.Term) *ast.Term { return ts.term(b.object(ts, in, userRef, k)) }
	for _, k := range keysOf(kind) {
		if v := b.member(ts, in, userRef, kind, k, sub); v != nil {
			obj = append(obj, [2]*ast.Term{k, v})
		}
	}
	return ast.NewObject(obj...)
}

// member builds member key of input (kind nil), input.user or
// input.request, or returns nil when the policy cannot read it. sub makes
// input.user and input.request (whole, or lazily).
func (b *inputBuilder) member(ts *termSlab, in *Input, userRef string, kind, key *ast.Term, sub func(kind *ast.Term) *ast.Term) *ast.Term {
	f := &b.fields
	switch kind {
	case nil:
		switch {
		case key == kUser && f.user:
			return sub(kUser)
		case key == kRequest && f.request:
			return sub(kRequest)
		case key == kRoute && f.route:
			return b.route(in.Route)
		case key == kTime && f.time:
			return ts.nanos(in.Time.UnixNano())
		}
	case kUser:
		switch {
		case key == kSub && f.sub:
			return ts.str(in.User.Subject)
		case key == kIss && f.iss:
			return ts.str(in.User.Issuer)
		case key == kEmail && f.email:
			return ts.str(in.User.Email)
		case key == kName && f.name:
			return ts.str(in.User.Name)
		case key == kUsername && f.username:
			return ts.str(in.User.Username)
		case key == kGroups && f.groups:
			return ts.strArray(in.User.Groups)
		case key == kRef && f.ref:
			return ts.str(userRef)
		}
	case kRequest:
		switch {
		case key == kMethod && f.method:
			return ts.str(in.Request.Method)
		case key == kHost && f.host:
			return ts.str(in.Request.Host)
		case key == kPath && f.path:
			return ts.str(in.Request.Path)
		}
	}
	return nil
}

// lazy is the input for the planned evaluator: the same object as build's,
// but each member is made when the policy first looks it up (most of a
// decision input is never read). One lazyInput holds everything a decision
// makes, so it costs a few allocations where build costs about twenty.
func (b *inputBuilder) lazy(in *Input, userRef string) *ast.Term { return &b.newLazy(in, userRef).root }

func (b *inputBuilder) newLazy(in *Input, userRef string) *lazyInput {
	li := &lazyInput{b: b, in: *in, userRef: userRef}
	li.ts.buf = li.terms[:0]
	li.rootView = lazyView{li: li, made: li.made[:len(rootKeys)]}
	li.userView = lazyView{li: li, kind: kUser, made: li.made[len(rootKeys) : len(rootKeys)+len(userKeys)]}
	li.requestView = lazyView{li: li, kind: kRequest, made: li.made[len(rootKeys)+len(userKeys):]}
	li.root.Value = ireval.LazyValue(&li.rootView)
	return li
}

type lazyInput struct {
	b       *inputBuilder
	in      Input
	userRef string
	ts      termSlab
	terms   [8]ast.Term // the first terms of ts
	root    ast.Term
	// Views of input, input.user and input.request, and the members they
	// made (each made once).
	rootView, userView, requestView lazyView
	made                            [len(rootKeys) + len(userKeys) + len(requestKeys)]*ast.Term
}

// lazyView is one lazy object of a lazyInput: input (kind nil),
// input.user or input.request.
type lazyView struct {
	li   *lazyInput
	kind *ast.Term
	made []*ast.Term // by position in keysOf(kind)
}

func (v *lazyView) Member(key string) *ast.Term {
	li := v.li
	for i, k := range keysOf(v.kind) {
		if string(k.Value.(ast.String)) != key {
			continue
		}
		if v.made[i] == nil {
			v.made[i] = li.b.member(&li.ts, &li.in, li.userRef, v.kind, k, li.sub)
		}
		return v.made[i]
	}
	return nil
}

// sub is input.user or input.request as a lazy object.
func (li *lazyInput) sub(kind *ast.Term) *ast.Term {
	view := &li.userView
	if kind == kRequest {
		view = &li.requestView
	}
	return &ast.Term{Value: ireval.LazyValue(view)}
}

func (v *lazyView) Object() ast.Object {
	return v.li.b.object(&v.li.ts, &v.li.in, v.li.userRef, v.kind)
}

// termSlab hands out terms from blocks, so an input's dozen terms cost one
// allocation and a catalog's million a thousand; the terms of a block live
// as long as any of them is referenced. New blocks hold block terms (16
// when 0). A nil *termSlab allocates each term on its own.
type termSlab struct {
	buf   []ast.Term
	block int
}

func (ts *termSlab) term(v ast.Value) *ast.Term {
	if ts == nil {
		return ast.NewTerm(v)
	}
	if len(ts.buf) == cap(ts.buf) {
		ts.buf = make([]ast.Term, 0, max(ts.block, 16)) // earlier terms stay in the old block
	}
	ts.buf = append(ts.buf, ast.Term{Value: v})
	return &ts.buf[len(ts.buf)-1]
}

func (ts *termSlab) str(s string) *ast.Term {
	if s == "" {
		return emptyString
	}
	return ts.term(ast.String(s))
}

func (ts *termSlab) strArray(ss []string) *ast.Term {
	if len(ss) == 0 {
		return emptyArray
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = ts.str(s)
	}
	return ts.term(ast.NewArray(terms...))
}

func (ts *termSlab) nanos(n int64) *ast.Term {
	return ts.term(ast.Number(strconv.FormatInt(n, 10)))
}

func (b *inputBuilder) route(r Route) *ast.Term {
	if t, ok := b.routes.Load(r); ok {
		return t.(*ast.Term)
	}
	f := &b.fields
	var items [5][2]*ast.Term
	obj := items[:0]
	if f.rname {
		obj = append(obj, [2]*ast.Term{kName, str(r.Name)})
	}
	if f.rhost {
		obj = append(obj, [2]*ast.Term{kHost, str(r.Host)})
	}
	if f.rprefix {
		obj = append(obj, [2]*ast.Term{kPathPrefix, str(r.PathPrefix)})
	}
	if f.rservice {
		obj = append(obj, [2]*ast.Term{kService, str(strings.ToLower(r.Service))})
	}
	if f.renvironment {
		obj = append(obj, [2]*ast.Term{kEnvironment, str(strings.ToLower(r.Environment))})
	}
	t := ast.NewTerm(ast.NewObject(obj...))
	b.mu.Lock()
	if b.nroute < maxCachedRoutes {
		b.nroute++
		b.routes.Store(r, t)
	}
	b.mu.Unlock()
	return t
}

// buildInput builds the complete input, every field present (tools and
// tests use it; decisions use a policy's inputBuilder).
func buildInput(in *Input, userRef string) ast.Value {
	return newInputBuilder(&inputUse{all: true}).build(in, userRef)
}
