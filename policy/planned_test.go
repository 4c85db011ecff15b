package policy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	shipped "github.com/backgate/backgate/rego"
)

// plannedPair returns two engines on the same policy, catalog and grants:
// one deciding with the planned program (package ireval), one with topdown.
func plannedPair(t testing.TB) (fast, ref *Engine) {
	t.Helper()
	fast = newTestEngine(t, Options{})
	ref = newTestEngine(t, Options{TopdownOnly: true})
	if fast.policy.Load().fast == nil {
		t.Fatal("the shipped policy is not evaluated by the planned program")
	}
	if ref.policy.Load().fast != nil {
		t.Fatal("TopdownOnly engine has a planned program")
	}
	const pet = "component:default/petstore"
	grants := []Grant{
		{ID: "g-1", User: uref("carol"), Service: pet, Environment: "prod", ExpiresAt: t0.Add(time.Hour), ApprovedBy: []string{uref("alice"), uref("sam")}},
		{ID: "g-2", User: uref("carol"), Service: pet, Environment: "prod", ExpiresAt: t0.Add(2 * time.Hour), ApprovedBy: []string{uref("alice")}},
		{ID: "g-too-long", User: uref("gina"), Service: pet, Environment: "prod", ExpiresAt: t0.Add(5 * time.Hour)},
		{ID: "g-expired", User: uref("gina"), Service: pet, Environment: "staging", ExpiresAt: t0.Add(-time.Minute)},
		{ID: "g-staging", User: uref("bob"), Service: pet, Environment: "staging", ExpiresAt: t0.Add(time.Hour)},
		{ID: "g-suspended", User: uref("frank"), Service: pet, Environment: "dev", ExpiresAt: t0.Add(time.Hour)},
	}
	for _, e := range []*Engine{fast, ref} {
		if err := e.SetData(smallCatalog("rev-1"), grants); err != nil {
			t.Fatal(err)
		}
	}
	return fast, ref
}

func sameDecision(t testing.TB, label string, fast, ref *Engine, in Input) {
	t.Helper()
	got, gerr := fast.Decide(context.Background(), in)
	want, werr := ref.Decide(context.Background(), in)
	got.ID, want.ID = "", ""
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("%s: planned error %v, topdown error %v", label, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\nplanned %+v\ntopdown %+v", label, got, want)
	}
}

// TestPlannedMatchesTopdown: for every combination of user, service,
// environment and time over the fixture catalog and grants, the planned
// program decides exactly what topdown decides: allow, rules, reasons and
// grant.
func TestPlannedMatchesTopdown(t *testing.T) {
	fast, ref := plannedPair(t)
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "gina", "olivia", "sam", "mallory"}
	services := []string{"component:default/petstore", "component:default/toolbox", "resource:default/orders-db",
		"API:default/petstore-api", "component:default/missing", ""}
	envs := []string{"dev", "staging", "prod", "qa", ""}
	n, allowed := 0, 0
	for _, u := range users {
		for _, s := range services {
			for _, env := range envs {
				for _, at := range []time.Time{t0, t0.Add(90 * time.Minute), t0.Add(3 * time.Hour)} {
					for _, idp := range [][]string{nil, {"okta-sre-oncall"}, {"unknown"}} {
						in := req(u, s, env)
						in.Time, in.User.Groups = at, idp
						sameDecision(t, fmt.Sprintf("%s %s %s %s %v", u, s, env, at.Format(time.Kitchen), idp), fast, ref, in)
						if d, _ := fast.Decide(context.Background(), in); d.Allow {
							allowed++
						}
						n++
					}
				}
			}
		}
	}
	// Both outcomes are exercised, or the comparison proves little.
	if allowed == 0 || allowed == n {
		t.Fatalf("%d of %d decisions allowed", allowed, n)
	}
	t.Logf("%d decisions compared, %d allowed", n, allowed)
	// A grant change swaps only the grants (the catalog's maps are shared):
	// the new grant counts at once, the old one no longer, in both.
	newGrants := []Grant{{ID: "g-new", User: uref("bob"), Service: "component:default/petstore", Environment: "prod",
		ExpiresAt: t0.Add(time.Hour), ApprovedBy: []string{uref("alice")}}}
	for _, e := range []*Engine{fast, ref} {
		if err := e.SetGrants(newGrants); err != nil {
			t.Fatal(err)
		}
	}
	bob, carol := req("bob", "component:default/petstore", "prod"), req("carol", "component:default/petstore", "prod")
	sameDecision(t, "bob after the grant swap", fast, ref, bob)
	sameDecision(t, "carol after the grant swap", fast, ref, carol)
	if d, _ := fast.Decide(context.Background(), bob); !d.Allow || d.GrantID != "g-new" {
		t.Fatalf("bob's new grant: %+v", d)
	}
	if d, _ := fast.Decide(context.Background(), carol); d.Allow {
		t.Fatalf("carol's removed grant still counts: %+v", d)
	}
	// No catalog at all: both deny the same way.
	empty, emptyRef := newTestEngine(t, Options{}), newTestEngine(t, Options{TopdownOnly: true})
	sameDecision(t, "no catalog", empty, emptyRef, req("alice", "component:default/petstore", "dev"))
}

// FuzzPlannedMatchesTopdown: arbitrary identities, services, environments
// and IdP groups get the same decision from both evaluators.
func FuzzPlannedMatchesTopdown(f *testing.F) {
	f.Add("sub-alice", "alice@acme.example", "alice", "component:default/petstore", "staging", "okta-sre-oncall", int64(0))
	f.Add("", "", "", "", "", "", int64(-1))
	f.Add("sub-gina", "GINA@acme.example", "gina", "component:default/petstore", "prod", "okta-sre-oncall", int64(3600))
	f.Add("sub-bob", "bob@acme.example", "bob", "Component:Default/Petstore", "staging", "", int64(7200))
	fast, ref := plannedPair(f)
	f.Fuzz(func(t *testing.T, sub, email, username, service, env, group string, offset int64) {
		in := req("x", service, env)
		in.User = User{Subject: sub, Email: email, Username: username, Issuer: "https://idp.example"}
		if group != "" {
			in.User.Groups = []string{group}
		}
		in.Time = t0.Add(time.Duration(offset%(48*3600)) * time.Second)
		sameDecision(t, "fuzz", fast, ref, in)
	})
}

// BenchmarkDecideTopdown is BenchmarkDecide with the planned program
// switched off: the baseline the planned program is measured against.
func BenchmarkDecideTopdown(b *testing.B) {
	benchDecide(b, decideEngine(b, Options{TopdownOnly: true}), ownerInputs(b, 10000), true)
}

// TestPlannedConcurrent: decisions evaluated at once from several
// goroutines (each planned evaluation borrows pooled scratch space) equal
// the same decisions made one at a time. Run with -race.
func TestPlannedConcurrent(t *testing.T) {
	fast, _ := plannedPair(t)
	var ins []Input
	for _, u := range []string{"alice", "bob", "carol", "erin", "gina", "mallory"} {
		for _, env := range []string{"dev", "staging", "prod"} {
			ins = append(ins, req(u, "component:default/petstore", env))
		}
	}
	want := make([]Decision, len(ins))
	for i, in := range ins {
		d, err := fast.Decide(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		d.ID = ""
		want[i] = d
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				i := (g*7 + k) % len(ins)
				d, err := fast.Decide(context.Background(), ins[i])
				d.ID = ""
				if err != nil || !reflect.DeepEqual(d, want[i]) {
					errs <- fmt.Sprintf("goroutine %d, input %d: %+v %v", g, i, d, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestPlannedFallsBackToTopdown: a policy the planned evaluator cannot run
// (it uses with) is served by topdown, says so, and decides as the same
// policy does without the unsupported part.
func TestPlannedFallsBackToTopdown(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, shipped.FS()); err != nil {
		t.Fatal(err)
	}
	appendTo := func(name, text string) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), append(b, text...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	appendTo("settings.rego", "\nprobe := x if {\n\tx := environments with input.route as {}\n}\n")
	appendTo("authz.rego", "\ndeny contains {\"rule\": \"probe\", \"reason\": \"probe\"} if {\n\tnot settings.probe\n}\n")
	e := newTestEngine(t, Options{PolicyDir: dir})
	if ev := e.Evaluator(); !strings.HasPrefix(ev, "topdown (") || !strings.Contains(ev, "WithStmt") {
		t.Fatalf("Evaluator() = %q, want topdown with the reason", ev)
	}
	planned, _ := plannedPair(t)
	if err := e.SetCatalog(smallCatalog("rev-1")); err != nil {
		t.Fatal(err)
	}
	if err := planned.SetGrants(nil); err != nil {
		t.Fatal(err)
	}
	for _, in := range []Input{req("alice", "component:default/petstore", "staging"), req("carol", "component:default/petstore", "staging")} {
		got, err1 := e.Decide(context.Background(), in)
		want, err2 := planned.Decide(context.Background(), in)
		if err1 != nil || err2 != nil || got.Allow != want.Allow || !reflect.DeepEqual(got.Rules, want.Rules) {
			t.Fatalf("%s: topdown fallback %+v %v, planned %+v %v", in.User.Username, got, err1, want, err2)
		}
	}
}

// TestPlannedBuiltinsNeverReachTheNetwork: built-ins run by the planned
// evaluator get the policy's capabilities, as under topdown: a schema with
// a remote $ref is not fetched by either evaluator, and both decide alike.
func TestPlannedBuiltinsNeverReachTheNetwork(t *testing.T) {
	var fetches atomic.Int64
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_, _ = io.WriteString(w, `{"type": "object"}`)
	}))
	t.Cleanup(remote.Close)
	src := "package backgate.authz\n\nallow if json.verify_schema({\"$ref\": \"" + remote.URL + "/schema.json\"})[0]\n\n" +
		"decision := {\"allow\": true, \"matched\": {{\"rule\": \"r\", \"reason\": \"schema fetched\"}}} if allow\n" +
		"else := {\"allow\": false, \"matched\": {{\"rule\": \"r\", \"reason\": \"no schema\"}}}\n"
	fsys := fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(src)}}
	planned := newTestEngine(t, Options{PolicyFS: fsys})
	ref := newTestEngine(t, Options{PolicyFS: fsys, TopdownOnly: true})
	if planned.policy.Load().fast == nil {
		t.Fatalf("the probe policy is not planned (%s): this test would not exercise the planned evaluator", planned.Evaluator())
	}
	for _, e := range []*Engine{planned, ref} {
		if err := e.SetCatalog(smallCatalog("rev-1")); err != nil {
			t.Fatal(err)
		}
	}
	in := req("alice", "component:default/petstore", "staging")
	got, err1 := planned.Decide(context.Background(), in)
	want, err2 := ref.Decide(context.Background(), in)
	if n := fetches.Load(); n != 0 {
		t.Fatalf("a built-in fetched the remote schema %d times", n)
	}
	if (err1 == nil) != (err2 == nil) || got.Allow != want.Allow || got.Allow {
		t.Fatalf("planned %+v %v, topdown %+v %v: want both to deny", got, err1, want, err2)
	}
}
