package policy

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
)

// The input a policy is given leaves out only fields it cannot read; a
// policy that reads a field, or input as a whole, sees it.
func TestInputFieldsFollowPolicy(t *testing.T) {
	tests := []struct {
		name, rule string
		allow      bool
	}{
		{"path read directly", `allow if input.request.path == "/admin"`, true},
		{"method via object.get on the request", `allow if object.get(input.request, "method", "") == "POST"`, true},
		{"issuer via dynamic key", `allow if { k := "iss"; input.user[k] == "https://idp.example" }`, true},
		{"whole input", `allow if { i := input; i.route.path_prefix == "/p" }`, true},
		{"whole input via walk", `allow if { some path, v in input; path == "request"; v.host == "svc.example" }`, true},
		{"absent field stays absent", `allow if input.request.path == "/other"`, false},
		{"read by a rule reached through a dynamic ref", `allow if { n := concat("", ["hel", "per"]); data.backgate.extra[n] }`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "package backgate.authz\n\ndefault allow := false\n\n" + tc.rule + "\n\ndecision := {\"allow\": allow, \"matched\": {{\"rule\": \"r\", \"reason\": \"r\"}}}\n"
			extra := "package backgate.extra\n\nhelper if input.request.path == \"/admin\"\n"
			e := newTestEngine(t, Options{PolicyFS: fstest.MapFS{
				"authz.rego": &fstest.MapFile{Data: []byte(src)},
				"extra.rego": &fstest.MapFile{Data: []byte(extra)},
			}})
			in := req("alice", "component:default/petstore", "dev")
			in.Request = Request{Method: "POST", Host: "svc.example", Path: "/admin"}
			in.Route.PathPrefix = "/p"
			d, err := e.Decide(context.Background(), in)
			if err != nil || d.Allow != tc.allow {
				t.Fatalf("allow=%v err=%v, want %v", d.Allow, err, tc.allow)
			}
		})
	}
}

func TestInputAnalysisOfShippedPolicy(t *testing.T) {
	e := newTestEngine(t, Options{})
	f := e.policy.Load().input.fields
	if !f.user || !f.ref || !f.email || !f.sub || !f.groups || !f.route || !f.rservice || !f.renvironment || !f.time {
		t.Fatalf("a field the shipped policy reads is left out: %+v", f)
	}
	if f.request || f.iss || f.username {
		t.Errorf("fields the shipped policy never reads are built: %+v", f)
	}
	full := buildInput(&Input{User: User{Groups: []string{"g"}}}, "user:default/x").String()
	for _, k := range []string{`"request"`, `"iss"`, `"path_prefix"`, `"time"`, `"groups": ["g"]`} {
		if !strings.Contains(full, k) {
			t.Errorf("full input lacks %s: %s", k, full)
		}
	}
}

func TestConverter(t *testing.T) {
	members := []any{"user:default/a", "user:default/b"}
	doc := map[string]any{
		"groups": map[string]any{
			"g1": map[string]any{"all_members": members},
			"g2": map[string]any{"all_members": []any{"user:default/a", "user:default/b"}}, // equal content, other slice
		},
		"owner_users": members, // same slice
		"n":           json.Number("12"),
		"i":           7,
		"i64":         int64(1) << 40,
		"f":           1.5,
		"b":           true,
		"null":        nil,
		"typed":       []string{"x"},
		"other":       struct{ A int }{1},
		"empty":       []any{},
	}
	v, err := catalogValue(doc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ast.InterfaceToValue(map[string]any{
		"groups": map[string]any{
			"g1": map[string]any{"all_members": []any{"user:default/a", "user:default/b"}},
			"g2": map[string]any{"all_members": []any{"user:default/a", "user:default/b"}},
		},
		"owner_users": []any{"user:default/a", "user:default/b"},
		"n":           json.Number("12"), "i": 7, "i64": int64(1) << 40, "f": 1.5, "b": true, "null": nil,
		"typed": []any{"x"}, "other": map[string]any{"A": 1}, "empty": []any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.Compare(want) != 0 {
		t.Fatalf("converted\n%v\nwant\n%v", v, want)
	}
	get := func(path ...string) *ast.Term {
		r := ast.Ref{ast.DefaultRootDocument}
		for _, p := range path {
			r = append(r, ast.StringTerm(p))
		}
		x, err := v.Find(r[1:])
		if err != nil {
			t.Fatal(err)
		}
		return ast.NewTerm(x)
	}
	a1, a2, a3 := get("groups", "g1", "all_members"), get("groups", "g2", "all_members"), get("owner_users")
	if a1.Value.(*ast.Array) != a2.Value.(*ast.Array) || a1.Value.(*ast.Array) != a3.Value.(*ast.Array) {
		t.Error("equal string lists are not shared")
	}
	if _, err := catalogValue(map[string]any{"users": map[string]any{"u": []any{math.NaN()}}}); err == nil || !strings.Contains(err.Error(), "users: u: [0]") {
		t.Errorf("NaN: err = %v, want one naming users: u: [0]", err)
	}
	if _, err := catalogValue(map[string]any{"x": make(chan int)}); err == nil {
		t.Error("channel accepted")
	}
}

func TestSnapshotStoreReads(t *testing.T) {
	e := newTestEngine(t, Options{})
	if err := e.SetCatalog(smallCatalog("r")); err != nil {
		t.Fatal(err)
	}
	snap := e.data.Load()
	ctx := context.Background()
	var st snapshotStore
	tests := []struct {
		path storage.Path
		want string // substring of the value, "" = not found
	}{
		{storage.Path{"catalog", "revision"}, `"r"`},
		{storage.Path{"catalog", "users", "user:default/alice", "name"}, `"alice"`},
		{storage.Path{"catalog", "users", "user:default/alice", "groups", "0"}, `"group:default/team-c"`},
		{storage.Path{"catalog", "users", "user:default/alice", "groups", "9"}, ""},
		{storage.Path{"catalog", "users", "user:default/alice", "groups", "x"}, ""},
		{storage.Path{"catalog", "users", "user:default/alice", "name", "x"}, ""},
		{storage.Path{"catalog", "users", "user:default/nobody"}, ""},
		{storage.Path{"catalog", "nope"}, ""},
		{storage.Path{"grants"}, "{}"},
		{storage.Path{"other"}, ""},
		{storage.Path{}, `"catalog"`},
	}
	for _, tc := range tests {
		v, err := st.Read(ctx, snap, tc.path)
		switch {
		case tc.want == "" && !storage.IsNotFound(err):
			t.Errorf("Read(%v) = %v, %v; want not found", tc.path, v, err)
		case tc.want != "" && (err != nil || !strings.Contains(v.(ast.Value).String(), tc.want)):
			t.Errorf("Read(%v) = %v, %v; want %s", tc.path, v, err, tc.want)
		}
	}
	if _, err := st.Read(ctx, nil, storage.Path{"grants"}); err == nil {
		t.Error("read with a foreign transaction")
	}
	if _, err := st.Read(ctx, newSnapshot(0, nil, nil, nil), storage.Path{"catalog"}); !storage.IsNotFound(err) {
		t.Errorf("catalog before SetCatalog: %v", err)
	}
	if _, err := st.NewTransaction(ctx); err == nil {
		t.Error("store opened a transaction")
	}
	if st.Write(ctx, snap, storage.AddOp, storage.Path{"x"}, 1) == nil || st.Truncate(ctx, snap, storage.WriteParams, nil) == nil ||
		st.UpsertPolicy(ctx, snap, "p", nil) == nil || st.DeletePolicy(ctx, snap, "p") == nil {
		t.Error("read-only store accepted a write")
	}
	if _, err := st.Register(ctx, snap, storage.TriggerConfig{}); err == nil {
		t.Error("trigger registered")
	}
	if _, err := st.GetPolicy(ctx, snap, "p"); !storage.IsNotFound(err) {
		t.Error("GetPolicy found something")
	}
	if ps, err := st.ListPolicies(ctx, snap); err != nil || len(ps) != 0 {
		t.Error("ListPolicies not empty")
	}
	if st.Commit(ctx, snap) != nil {
		t.Error("commit failed")
	}
	st.Abort(ctx, snap)
	if snap.Get(ast.MustParseRef("input.x")) != nil || snap.Get(ast.MustParseRef("data.nope")) != nil ||
		snap.Get(ast.MustParseRef(`data.catalog.users["user:default/zed"]`)) != nil {
		t.Error("base cache answered for a missing document")
	}
	if snap.Get(ast.MustParseRef("data")) == nil || snap.Get(ast.MustParseRef(`data.catalog.users["user:default/alice"].name`)) == nil {
		t.Error("base cache missed a document")
	}
}

// A policy using `with` makes topdown push and pop virtual-cache frames;
// a value cached inside the frame must not leak out of it.
func TestVirtualCacheFrames(t *testing.T) {
	src := `package backgate.authz

env := input.route.environment

inner := x if {
	x := env with input.route.environment as "prod"
}

decision := {"allow": inner == "prod", "matched": {{"rule": env, "reason": inner}}}
`
	e := newTestEngine(t, Options{PolicyFS: fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(src)}}})
	for range 3 { // pooled caches are reused
		d, err := e.Decide(context.Background(), req("alice", "component:default/x", "dev"))
		if err != nil || !d.Allow || d.Rules[0] != "dev" || d.Reasons[0] != "prod" {
			t.Fatalf("%+v %v", d, err)
		}
	}
	var pool sync.Pool
	c := newVCache()
	defer c.release(&pool)
	r1, r2 := ast.MustParseRef("data.a.b"), ast.MustParseRef("data.a.c")
	c.Put(r1, ast.StringTerm("x"))
	c.Push()
	c.Put(r2, nil)
	if _, undef := c.Get(r2); !undef {
		t.Error("undefined not remembered")
	}
	if v, _ := c.Get(r1); v != nil {
		t.Error("outer frame visible in inner frame")
	}
	if len(c.Keys()) != 0 {
		t.Error("undefined entries listed as keys")
	}
	c.Pop()
	c.Pop() // popping the base frame is a no-op
	if v, _ := c.Get(r1); v == nil || len(c.Keys()) != 1 {
		t.Error("outer value lost")
	}
	c.Put(r1, ast.StringTerm("y"))
	if v, _ := c.Get(r1); v.Value.(ast.String) != "y" {
		t.Error("overwrite lost")
	}
}

// TestLazyInputMatchesBuild: the planned evaluator's lazy input has, member
// by member and as a whole, exactly the value build makes for the topdown
// evaluator, whichever fields a policy reads.
func TestLazyInputMatchesBuild(t *testing.T) {
	shipped := newTestEngine(t, Options{}).policy.Load().input
	builders := map[string]*inputBuilder{
		"everything":    newInputBuilder(&inputUse{all: true}),
		"shipped":       shipped,
		"request path":  newInputBuilder(&inputUse{top: map[string]bool{"request": true}, sub: map[string]bool{"request.path": true}}),
		"user as whole": newInputBuilder(&inputUse{top: map[string]bool{"user": true}, full: map[string]bool{"user": true}}),
	}
	full := req("alice", "component:default/Petstore", "Staging")
	full.User.Groups, full.User.Name, full.Request = []string{"okta-eng", "okta-sre"}, "Alice", Request{Method: "GET", Host: "svc.example", Path: "/a"}
	inputs := map[string]Input{"full": full, "empty": {}, "no groups": req("bob", "component:default/x", "dev")}

	// The whole input, written out, for a policy that reads everything (the
	// comparisons below hold lazy and eager to each other; this holds both
	// to the input's documented shape).
	written, err := ast.InterfaceToValue(map[string]any{
		"user": map[string]any{"sub": "sub-alice", "iss": "https://idp.example", "email": "alice@acme.example", "name": "Alice",
			"username": "alice", "groups": []any{"okta-eng", "okta-sre"}, "ref": "user:default/alice"},
		"request": map[string]any{"method": "GET", "host": "svc.example", "path": "/a"},
		"route": map[string]any{"name": "r1", "host": "svc.example", "path_prefix": "", "service": "component:default/petstore",
			"environment": "staging"},
		"time": json.Number(strconv.FormatInt(t0.UnixNano(), 10)),
	})
	if err != nil {
		t.Fatal(err)
	}
	everything := builders["everything"]
	for name, got := range map[string]ast.Value{
		"lazy":  everything.newLazy(&full, "user:default/alice").rootView.Object(),
		"build": everything.build(&full, "user:default/alice"),
	} {
		if got.Compare(written) != 0 {
			t.Errorf("%s input %v, want %v", name, got, written)
		}
	}

	for bn, b := range builders {
		for inName, in := range inputs {
			want := b.build(&in, "user:default/alice").(ast.Object)
			li := b.newLazy(&in, "user:default/alice")
			if got := li.rootView.Object(); got.Compare(want) != 0 {
				t.Errorf("%s, %s: whole lazy input %v, build %v", bn, inName, got, want)
			}
			for _, k := range []string{"user", "request", "route", "time", "approval", "nope"} {
				got, w := li.rootView.Member(k), want.Get(ast.StringTerm(k))
				if (got == nil) != (w == nil) || got != nil && got.Value.Compare(w.Value) != 0 {
					t.Errorf("%s, %s: input.%s lazy %v, build %v", bn, inName, k, got, w)
				}
				view := map[string]*lazyView{"user": &li.userView, "request": &li.requestView}[k]
				if view == nil || w == nil {
					continue
				}
				sub := w.Value.(ast.Object)
				if got := view.Object(); got.Compare(sub) != 0 {
					t.Errorf("%s, %s: whole input.%s lazy %v, build %v", bn, inName, k, got, sub)
				}
				for _, f := range []string{"sub", "iss", "email", "name", "username", "groups", "ref", "method", "host", "path", "x"} {
					g, w := view.Member(f), sub.Get(ast.StringTerm(f))
					if (g == nil) != (w == nil) || g != nil && g.Value.Compare(w.Value) != 0 {
						t.Errorf("%s, %s: input.%s.%s lazy %v, build %v", bn, inName, k, f, g, w)
					}
				}
			}
		}
	}
}
