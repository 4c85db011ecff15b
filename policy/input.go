package policy

import (
	"strconv"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
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
	f := &b.fields
	var items [16][2]*ast.Term                   // root 4 + user 7 + request 3, on the stack until copied by NewObject
	ts := termSlab{buf: make([]ast.Term, 0, 12)} // one allocation for the input's terms
	root := items[:0:4]
	if f.user {
		user := items[4:4:11]
		if f.sub {
			user = append(user, [2]*ast.Term{kSub, ts.str(in.User.Subject)})
		}
		if f.iss {
			user = append(user, [2]*ast.Term{kIss, ts.str(in.User.Issuer)})
		}
		if f.email {
			user = append(user, [2]*ast.Term{kEmail, ts.str(in.User.Email)})
		}
		if f.name {
			user = append(user, [2]*ast.Term{kName, ts.str(in.User.Name)})
		}
		if f.username {
			user = append(user, [2]*ast.Term{kUsername, ts.str(in.User.Username)})
		}
		if f.groups {
			user = append(user, [2]*ast.Term{kGroups, ts.strArray(in.User.Groups)})
		}
		if f.ref {
			user = append(user, [2]*ast.Term{kRef, ts.str(userRef)})
		}
		root = append(root, [2]*ast.Term{kUser, ts.term(ast.NewObject(user...))})
	}
	if f.request {
		req := items[11:11:14]
		if f.method {
			req = append(req, [2]*ast.Term{kMethod, ts.str(in.Request.Method)})
		}
		if f.host {
			req = append(req, [2]*ast.Term{kHost, ts.str(in.Request.Host)})
		}
		if f.path {
			req = append(req, [2]*ast.Term{kPath, ts.str(in.Request.Path)})
		}
		root = append(root, [2]*ast.Term{kRequest, ts.term(ast.NewObject(req...))})
	}
	if f.route {
		root = append(root, [2]*ast.Term{kRoute, b.route(in.Route)})
	}
	if f.time {
		root = append(root, [2]*ast.Term{kTime, ts.nanos(in.Time.UnixNano())})
	}
	return ast.NewObject(root...)
}

// termSlab hands out terms from one block, so an input's dozen terms cost
// one allocation; the terms live as long as any of them is referenced. A nil
// *termSlab allocates each term on its own.
type termSlab struct{ buf []ast.Term }

func (ts *termSlab) term(v ast.Value) *ast.Term {
	if ts == nil {
		return ast.NewTerm(v)
	}
	if len(ts.buf) == cap(ts.buf) {
		ts.buf = make([]ast.Term, 0, 16) // earlier terms stay in the old block
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
