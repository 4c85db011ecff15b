package ireval_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/compile"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/backgate/backgate/policy/ireval"
)

// plan compiles module with OPA's planner for entry (e.g. "t/out").
func plan(t *testing.T, module, entry string) (*ireval.Program, error) {
	t.Helper()
	m, err := ast.ParseModuleWithOpts("t.rego", module, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	b := &bundle.Bundle{Data: map[string]any{}, Modules: []bundle.ModuleFile{{URL: "t.rego", Path: "t.rego", Raw: []byte(module), Parsed: m}}}
	c := compile.New().WithTarget(compile.TargetPlan).WithEntrypoints(entry).WithBundle(b).WithRegoVersion(ast.RegoV1)
	if err := c.Build(context.Background()); err != nil {
		t.Fatalf("plan: %v", err)
	}
	return ireval.Compile(c.Bundle().PlanModules[0].Raw, entry, nil)
}

// topdown evaluates data.<entry> with OPA's reference evaluator.
func topdown(t *testing.T, module, entry string, input, data map[string]any) (*ast.Term, error) {
	t.Helper()
	r := rego.New(
		rego.Query("data."+strings.ReplaceAll(entry, "/", ".")),
		rego.Module("t.rego", module),
		rego.Store(inmem.NewFromObject(data)),
		rego.SetRegoVersion(ast.RegoV1),
	)
	pq, err := r.PrepareForEval(context.Background())
	if err != nil {
		return nil, err
	}
	rs, err := pq.Eval(context.Background(), rego.EvalInput(input), rego.EvalSortSets(true))
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, nil
	}
	v, err := ast.InterfaceToValue(rs[0].Expressions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return ast.NewTerm(v), nil
}

func evalPlanned(t *testing.T, p *ireval.Program, input, data map[string]any) (*ast.Term, error) {
	t.Helper()
	in, err := ast.InterfaceToValue(input)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ast.InterfaceToValue(data)
	if err != nil {
		t.Fatal(err)
	}
	return p.Eval(context.Background(), ireval.EvalInput{Input: ast.NewTerm(in), Data: ast.NewTerm(d), Time: time.Unix(1700000000, 0)})
}

var testData = map[string]any{
	"users": map[string]any{
		"alice": map[string]any{"groups": []any{"a", "b"}, "age": 30, "tags": map[string]any{"x": 1}},
		"bob":   map[string]any{"groups": []any{}, "age": 17.5},
	},
	"list":  []any{3, 1, 2, "two", nil, true},
	"empty": map[string]any{},
}

var inputs = []map[string]any{
	{"user": "alice", "n": 3, "env": "dev", "groups": []any{"x", "a"}},
	{"user": "bob", "n": 0, "env": "prod"},
	{"user": "nobody", "n": -1.5, "env": 7},
	{},
	{"user": []any{"alice"}, "n": "3", "env": nil, "groups": map[string]any{"a": true}},
}

// Each policy is evaluated by both evaluators on every input; results (or
// the fact of an error) must be identical.
func TestMatchesTopdown(t *testing.T) {
	policies := []struct{ name, module string }{
		{"complete and else", `package t
out := "adult" if data.users[input.user].age >= 18
else := "minor" if data.users[input.user]
else := "unknown"`},
		{"partial set with some-in and not", `package t
out contains g if { some g in data.users[input.user].groups; not g == "b" }
out contains concat("-", ["env", input.env]) if is_string(input.env)`},
		{"object rule and comprehensions", `package t
out := {
	"arr": [x | some x in data.list; is_number(x); x > 1],
	"set": {x | some x in data.list},
	"obj": {k: count(v.groups) | some k, v in data.users},
	"n": count(data.list),
	"sum": sum([x | some x in data.list; is_number(x)]),
}`},
		{"functions with arguments", `package t
member(u, g) if g in data.users[u].groups
member(u, g) if { some ig in input.groups; ig == g; data.users[u] }
out := [g | some g in ["a", "b", "x", "z"]; member(input.user, g)]`},
		{"every and negation", `package t
default out := false
out if {
	every g in data.users[input.user].groups { startswith(g, "a") }
	not input.blocked
}`},
		{"ref head rules and dynamic lookup", `package t
model["dev"] := "open"
model["prod"] := sprintf("closed for %s", [input.user])
out := model[input.env]`},
		{"sprintf, concat, sort, time", `package t
out := sprintf("%s has %d groups (%s) at %s", [
	input.user, count(data.users[input.user].groups),
	concat(",", sort(data.users[input.user].groups)), time.format(0),
])`},
		{"conflict is an error", `package t
out := 1 if input.n >= 0
out := 2 if input.n >= 0`},
		{"builtin error is undefined", `package t
out := x if { x := to_number(input.user) }
else := "not a number"`},
		{"arrays, indexes and objects", `package t
out := {"first": data.list[0], "third": data.list[2], "missing": object.get(data.users, ["carol", "age"], "none"), "keys": {k | some k, _ in data.users}}`},
		{"numbers", `package t
out := [input.n + 1, input.n * 2, input.n / 2, input.n == 3.0, abs(input.n)] if is_number(input.n)`},
		{"constant and mixed literals", `package t
envs := {"dev", "staging", "prod"}
out := {
	"s": {"a", "b"}, "o": {"k": "v", "n": true}, "a": ["x", "y"],
	"mixed": {"a", input.env}, "arr": ["x", input.user], "obj": {"k": input.n},
	"in": input.env in {"dev", "staging"}, "union": envs | {input.env},
	"grown": [x | some x in ["p", "q"]], "dup": {"k": "v", "k2": "v"},
}`},
		{"string, regex, glob and encoding built-ins", `package t
out := {
	"re": regex.match("^[a-z]+$", input.user),
	"glob": glob.match("a*", [], input.user),
	"split": split(concat("/", ["a", "b", "c"]), "/"),
	"upper": upper(input.user),
	"json": json.marshal({"u": input.user, "n": input.n}),
	"b64": base64.encode(input.user),
	"sprintf": sprintf("%v-%d", [input.user, 7]),
	"startswith": startswith(input.user, "al"),
	"trim": trim_space("  x  "),
	"lower in set": lower(input.user) in {"alice", "bob"},
} if is_string(input.user)`},
		{"array comprehensions over objects and sets keep topdown's order", `package t
# The order of an array built from a set literal that mixes constants and
# variables is not defined by Rego (topdown puts the variables' values after
# the sorted constants, the planned evaluator sorts all): sort() it, as
# docs/policy.md says.
out := {
	"keys": [k | some k, _ in data.users],
	"values": [v.age | some v in data.users],
	"set": sort([x | some x in {"b", "a", "c", input.env}]),
	"set of constants": [x | some x in {"b", "a", "c"}],
	"comprehension set": [x | some x in {y | some y in ["q", "p", input.env]}],
	"big": [k | some k, _ in {"z": 1, "y": 2, "x": 3, "a0": 4, "b9": 5, "m": 6, "n": 7, "c": 8, "d": 9, "e": 10}],
}`},
		{"undefined result", `package t
out := 1 if input.nothing`},
		{"array destructuring", `package t
out := {"first": a, "second": b} if {
	[a, b] := input.groups
}
else := {"six": count(x)} if {
	x := data.list
	[_, _, _, _, _, _] := x
}`},
		{"ref head conflict at run time", `package t
model["dev"] := "open"
model[input.env] := "other" if input.n > 1
out := model`},
		{"some and every stop early", `package t
out := {"any": any_admin, "first": first, "all": every_grouped}
first := [u | some u, v in data.users; "a" in v.groups][0]
any_admin if { some _, v in data.users; "a" in v.groups }
every_grouped if { every _, v in data.users { count(v.groups) > 0 } }`},
		{"nested breaks", `package t
out contains x if {
	some u, v in data.users
	some g in v.groups
	x := concat(":", [u, g])
	not input.skip[x]
}`},
	}
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			p, err := plan(t, tc.module, "t/out")
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			for i, in := range inputs {
				want, wantErr := topdown(t, tc.module, "t/out", in, testData)
				got, gotErr := evalPlanned(t, p, in, testData)
				if (wantErr != nil) != (gotErr != nil) {
					t.Fatalf("input %d: error topdown=%v planned=%v", i, wantErr, gotErr)
				}
				if wantErr != nil {
					continue
				}
				if (want == nil) != (got == nil) || (want != nil && !sameJSON(t, want, got)) {
					t.Fatalf("input %d: topdown=%v planned=%v", i, want, got)
				}
			}
		})
	}
}

func TestUnsupportedIsReported(t *testing.T) {
	for name, module := range map[string]string{
		"with":      "package t\nf := input.x\nout := x if { x := f with input.x as 1 }",
		"http.send": "package t\nout := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:1\"})",
		"walk":      "package t\nout := [p | walk(input, [p, _])]",
	} {
		if _, err := plan(t, module, "t/out"); !errors.Is(err, ireval.ErrUnsupported) {
			t.Errorf("%s: err = %v, want ErrUnsupported", name, err)
		}
	}
}

func TestCancelledContext(t *testing.T) {
	p, err := plan(t, "package t\nout := 1", "t/out")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Eval(ctx, ireval.EvalInput{Input: ast.NullTerm(), Data: ast.ObjectTerm(), Time: time.Now()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// sameJSON compares as OPA's result API does: sets become sorted arrays.
func sameJSON(t *testing.T, want, got *ast.Term) bool {
	t.Helper()
	g, err := ast.JSONWithOpt(got.Value, ast.JSONOpt{SortSets: true})
	if err != nil {
		t.Fatal(err)
	}
	gv, err := ast.InterfaceToValue(g)
	if err != nil {
		t.Fatal(err)
	}
	return want.Value.Compare(gv) == 0
}

// TestIndexedLookups: with an Index for a large object, lookups (present,
// missing, non-string keys) and iteration give what topdown gives.
func TestIndexedLookups(t *testing.T) {
	const module = `package t
out := {
	"hit": data.big[input.key],
	"miss": object.get(data.big, "nope", "default"),
	"number key": object.get(data.big, 1, "default"),
	"count": count(data.big),
	"some": [v | some k in input.keys; v := data.big[k]],
}`
	big := map[string]any{}
	for i := range 100 {
		big[fmt.Sprintf("k%d", i)] = map[string]any{"n": i}
	}
	data := map[string]any{"big": big}
	p, err := plan(t, module, "t/out")
	if err != nil {
		t.Fatal(err)
	}
	dv, err := ast.InterfaceToValue(data)
	if err != nil {
		t.Fatal(err)
	}
	bigTerm := dv.(ast.Object).Get(ast.StringTerm("big"))
	idx := map[string]*ast.Term{}
	bigTerm.Value.(ast.Object).Foreach(func(k, v *ast.Term) { idx[string(k.Value.(ast.String))] = v })
	for _, in := range []map[string]any{
		{"key": "k7", "keys": []any{"k1", "k99", "zzz"}},
		{"key": "absent", "keys": []any{}},
		{"key": 3},
	} {
		iv, _ := ast.InterfaceToValue(in)
		got, err := p.Eval(context.Background(), ireval.EvalInput{Input: ast.NewTerm(iv), Data: ast.NewTerm(dv),
			Index: ireval.Index{bigTerm: idx}})
		if err != nil {
			t.Fatal(err)
		}
		want, err := topdown(t, module, "t/out", in, data)
		if err != nil {
			t.Fatal(err)
		}
		if (want == nil) != (got == nil) || (want != nil && !sameJSON(t, want, got)) {
			t.Fatalf("input %v: topdown=%v planned=%v", in, want, got)
		}
	}
}

// TestRepeatedLookupsPerEvaluation: a plan looks the same thing up many
// times (ireval remembers lookups within one evaluation). Every evaluation
// sees its own input, even one handed in at the same address as the last,
// and lookups in collections the evaluation is still building see them
// grow.
func TestRepeatedLookupsPerEvaluation(t *testing.T) {
	const module = `package t
a := input.x.y == "one"
b := input.x.y == "two"
obj := {k: v | some k, v in input.x}
out := {
	"a": a, "b": b,
	"y": input.x.y,
	"again": [input.x.y, input.x.y],
	"built": obj.y,
	"sizes": [n | some i in numbers.range(1, 3); n := count([j | some j in numbers.range(1, i)])],
}`
	p, err := plan(t, module, "t/out")
	if err != nil {
		t.Fatal(err)
	}
	in, data := ast.NewTerm(ast.NewObject()), ast.NewTerm(ast.NewObject())
	for _, y := range []string{"one", "two", "one"} {
		input := map[string]any{"x": map[string]any{"y": y}}
		iv, _ := ast.InterfaceToValue(input)
		in.Value = iv // the same term, a new value: nothing of the last evaluation may count
		got, err := p.Eval(context.Background(), ireval.EvalInput{Input: in, Data: data, Time: time.Unix(1700000000, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want, err := topdown(t, module, "t/out", input, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		if want == nil || got == nil || !sameJSON(t, want, got) {
			t.Fatalf("y=%s: topdown=%v planned=%v", y, want, got)
		}
	}
}

// fakeLazy is a LazyObject over a real object, counting what is asked of it.
type fakeLazy struct {
	obj              ast.Object
	members, objects int
}

func (f *fakeLazy) Member(key string) *ast.Term {
	f.members++
	v := f.obj.Get(ast.StringTerm(key))
	if v != nil {
		if o, ok := v.Value.(ast.Object); ok { // nested objects are lazy too
			return &ast.Term{Value: ireval.LazyValue(&fakeLazy{obj: o})}
		}
	}
	return v
}

func (f *fakeLazy) Object() ast.Object { f.objects++; return f.obj }

// TestLazyInput: an input given as a LazyObject decides exactly as the
// whole object does, however the policy uses it (members, the whole
// object or a sub-object compared, counted, iterated, marshalled, passed
// to functions, looked up with computed keys), and a policy that only
// reads members never has the whole object built.
func TestLazyInput(t *testing.T) {
	input := map[string]any{
		"user":  map[string]any{"ref": "user:default/alice", "groups": []any{"g1", "g2"}, "email": "a@example.com"},
		"route": map[string]any{"service": "component:default/app", "environment": "staging"},
		"time":  1700000000,
	}
	tests := []struct {
		name, body string
		whole      bool // the policy needs the whole input built
	}{
		{"members only", `out := {"ref": input.user.ref, "env": input.route.environment, "n": input.time, "missing": object.get(input.user, "nope", "x"), "again": input.user.ref}`, true},
		{"members, no whole object", `out := [input.user.ref, input.route.environment, input.time]`, false},
		{"absent member", `out := {"x": 1} if { not input.user.nope; not input.nope.deeper }`, false},
		{"whole input compared", `out := input == {"user": input.user, "route": input.route, "time": input.time}`, true},
		{"sub-object counted and iterated", `out := {"n": count(input.user), "keys": sort([k | some k, _ in input.user]), "groups": [g | some g in input.user.groups]}`, true},
		{"marshalled", `out := json.marshal(input.route)`, true},
		{"function argument", "f(x) := x.ref\ng(x) := count(x)\nout := [f(input.user), g(input.user)]", true},
		{"computed key", "k := \"ref\"\nout := [input.user[k], input[\"route\"].service]", false},
		{"in a collection", `out := {"u": input.user, "list": [input.route], "set": {input.time}}`, true},
		{"object.keys of input", `out := sort(object.keys(input))`, true},
	}
	iv, err := ast.InterfaceToValue(input)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			module := "package t\n" + tc.body
			p, err := plan(t, module, "t/out")
			if err != nil {
				t.Fatal(err)
			}
			want, err := topdown(t, module, "t/out", input, map[string]any{})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second evaluation reuses the pooled state
				lz := &fakeLazy{obj: iv.(ast.Object)}
				got, err := p.Eval(context.Background(), ireval.EvalInput{Input: &ast.Term{Value: ireval.LazyValue(lz)},
					Data: ast.NewTerm(ast.NewObject()), Time: time.Unix(1700000000, 0)})
				if err != nil {
					t.Fatal(err)
				}
				if (want == nil) != (got == nil) || want != nil && !sameJSON(t, want, got) {
					t.Fatalf("topdown=%v planned=%v", want, got)
				}
				if !tc.whole && lz.objects > 0 {
					t.Errorf("the whole input was built %d times for a policy that only reads members", lz.objects)
				}
			}
		})
	}
}

// TestObjectLookups: looking a key up in objects of every size around the
// point where ireval stops walking entries and uses the hash map, with
// string, number and boolean keys present and absent, gives what topdown
// gives.
func TestObjectLookups(t *testing.T) {
	const module = `package t
mixed := {1: "number one", true: "true", "k0": "zero", "1": "string one"}
objs := array.concat(data.objs, [mixed])
out := [v |
	some o in objs
	some k in ["k0", "k7", "k15", "k16", "k20", "nope", 1, true, "1"]
	v := object.get(o, k, "absent")
]
direct := {
	"strings": [[o.k0, o["1"], object.get(o, "k15", "-")] | some o in objs; o.k0],
	"around the limit": [[o.k14, o.k15, o.k16, o.k20] | some o in objs; o.k20],
	"numbers": [o[1] | some o in objs],
	"booleans": [o[true] | some o in objs],
	"absent": count([o | some o in objs; not o.nope; not o.k99]),
}`
	objs := []any{}
	for _, n := range []int{1, 8, 15, 16, 17, 21} {
		o := map[string]any{"1": "string one"}
		for i := range n {
			o[fmt.Sprintf("k%d", i)] = i
		}
		objs = append(objs, o)
	}
	data := map[string]any{"objs": objs}
	for _, entry := range []string{"t/out", "t/direct"} {
		p, err := plan(t, module, entry)
		if err != nil {
			t.Fatal(err)
		}
		got, err := evalPlanned(t, p, map[string]any{}, data)
		if err != nil {
			t.Fatal(err)
		}
		want, err := topdown(t, module, entry, map[string]any{}, data)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil || got == nil || !sameJSON(t, want, got) {
			t.Fatalf("%s: topdown=%v planned=%v", entry, want, got)
		}
	}
}
