package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

type cacheClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *cacheClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *cacheClock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *cacheClock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

func newCache(t *testing.T, dir string) (*Engine, *DecisionCache, *cacheClock) {
	t.Helper()
	e := newTestEngine(t, Options{PolicyDir: dir})
	if err := e.SetCatalog(smallCatalog("c1")); err != nil {
		t.Fatal(err)
	}
	clk := &cacheClock{t: t0}
	return e, NewDecisionCache(e, CacheOptions{TTL: time.Minute, Now: clk.Now}), clk
}

// step decides and checks the answer and whether it was evaluated.
func step(t *testing.T, c *DecisionCache, in Input, wantAllow, wantEval bool) Decision {
	t.Helper()
	_, m0 := c.Stats()
	d, err := c.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	_, m1 := c.Stats()
	if d.Allow != wantAllow {
		t.Fatalf("%s: allow = %v, want %v (%v)", in.User.Username, d.Allow, wantAllow, d.Reasons)
	}
	if evaluated := m1 > m0; evaluated != wantEval {
		t.Fatalf("%s: evaluated = %v, want %v", in.User.Username, evaluated, wantEval)
	}
	return d
}

func TestDecisionCacheNeverCrossesPeople(t *testing.T) {
	_, c, _ := newCache(t, "")
	alice := req("alice", "component:default/petstore", "staging")
	carol := req("carol", "component:default/petstore", "staging")
	d1 := step(t, c, alice, true, true)
	d2 := step(t, c, alice, true, false)
	if d1.ID == d2.ID {
		t.Error("a cached decision reused the decision id")
	}
	step(t, c, carol, false, true) // same route, other person: evaluated, denied
	step(t, c, carol, false, false)
	step(t, c, alice, true, false)

	// Any field the policy reads is part of the key: same subject, other e-mail.
	// Whatever it resolves to, it is evaluated, and answered as uncached.
	sneaky := alice
	sneaky.User.Email = "carol@acme.example"
	sneaky.User.Username = "carol"
	direct, err := c.e.Decide(context.Background(), sneaky)
	if err != nil {
		t.Fatal(err)
	}
	step(t, c, sneaky, direct.Allow, true)
	// With the subject too it is exactly carol's identity: carol's decision.
	sneaky.User.Subject = "sub-carol"
	step(t, c, sneaky, false, false)
	// Other route, same person.
	prod := req("alice", "component:default/toolbox", "prod")
	step(t, c, prod, false, true)
}

func TestDecisionCacheInvalidatedAtOnce(t *testing.T) {
	e, c, _ := newCache(t, "")
	carol := req("carol", "component:default/petstore", "staging")
	step(t, c, carol, false, true)
	step(t, c, carol, false, false)

	grant := Grant{ID: "g1", User: "user:default/carol", Service: "component:default/petstore", Environment: "staging", ExpiresAt: t0.Add(time.Hour)}
	if err := e.SetGrants([]Grant{grant}); err != nil {
		t.Fatal(err)
	}
	if d := step(t, c, carol, true, true); d.GrantID != "g1" {
		t.Fatalf("grant not reported: %+v", d)
	}
	step(t, c, carol, true, false)

	if err := e.SetGrants(nil); err != nil { // revoked
		t.Fatal(err)
	}
	step(t, c, carol, false, true)

	cat := smallCatalog("c2") // a new catalog: carol is still not an owner, but it must be re-evaluated
	if err := e.SetCatalog(cat); err != nil {
		t.Fatal(err)
	}
	step(t, c, carol, false, true)
}

func TestDecisionCacheInvalidatedByNewPolicy(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../rego")); err != nil {
		t.Fatal(err)
	}
	e, c, _ := newCache(t, dir)
	olivia := req("olivia", "component:default/toolbox", "staging") // owns it directly
	step(t, c, olivia, true, true)
	step(t, c, olivia, true, false)
	// The security team adds a deny rule for olivia and the policy reloads.
	rule := "\n# METADATA\n# title: test deny\ndeny contains {\"rule\": \"test\", \"reason\": \"test\"} if input.user.ref == \"user:default/olivia\"\n"
	f, err := os.OpenFile(filepath.Join(dir, "authz.rego"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(rule)
	f.Close()
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	step(t, c, olivia, false, true)
}

func TestDecisionCacheExpiry(t *testing.T) {
	e, c, clk := newCache(t, "")
	alice := req("alice", "component:default/petstore", "staging")
	step(t, c, alice, true, true)
	clk.Add(59 * time.Second)
	alice.Time = clk.Now()
	step(t, c, alice, true, false)
	clk.Add(2 * time.Second) // past the TTL
	alice.Time = clk.Now()
	step(t, c, alice, true, true)

	// An allow resting on a grant ends with the grant, whatever the TTL.
	carol := req("carol", "component:default/petstore", "staging")
	carol.Time = clk.Now()
	exp := clk.Now().Add(10 * time.Second)
	if err := e.SetGrants([]Grant{{ID: "g2", User: "user:default/carol", Service: "component:default/petstore", Environment: "staging", ExpiresAt: exp}}); err != nil {
		t.Fatal(err)
	}
	step(t, c, carol, true, true)
	clk.Set(exp.Add(-time.Nanosecond))
	carol.Time = clk.Now()
	step(t, c, carol, true, false)
	clk.Set(exp)
	carol.Time = clk.Now()
	step(t, c, carol, false, true)
}

func TestDecisionCacheConcurrentSwap(t *testing.T) {
	e, c, _ := newCache(t, "")
	carol := req("carol", "component:default/petstore", "staging")
	grant := []Grant{{ID: "g", User: "user:default/carol", Service: "component:default/petstore", Environment: "staging", ExpiresAt: t0.Add(time.Hour)}}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Decide(context.Background(), carol); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 50; i++ {
		g := grant
		if i%2 == 1 {
			g = nil
		}
		if err := e.SetGrants(g); err != nil {
			t.Fatal(err)
		}
		// Right after the swap returns, the cache answers for the new data.
		d, err := c.Decide(context.Background(), carol)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow != (g != nil) {
			t.Fatalf("round %d: allow = %v right after grants changed to %d", i, d.Allow, len(g))
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkDecideCached(b *testing.B) {
	e := newTestEngine(b, Options{})
	if err := e.SetCatalog(smallCatalog("s")); err != nil {
		b.Fatal(err)
	}
	c := NewDecisionCache(e, CacheOptions{TTL: time.Hour})
	in := req("alice", "component:default/petstore", "staging")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCacheKeyIsInjective: inputs that differ in any field the key covers
// never share a key, however the fields' bytes are arranged (NUL and 0x01
// inside claims, groups split differently). Under the earlier escaping
// ("\x00" as "\x00\x01", groups ended by 0x01) the first two pairs collided.
func TestCacheKeyIsInjective(t *testing.T) {
	e := newTestEngine(t, Options{})
	ib := e.policy.Load().input
	if !ib.fields.groups {
		t.Fatal("the shipped policy reads input.user.groups; this test needs it in the key")
	}
	mk := func(sub, iss, email, user string, groups ...string) Input {
		in := req("x", "component:default/petstore", "staging")
		in.User = User{Subject: sub, Issuer: iss, Email: email, Username: user, Groups: groups}
		return in
	}
	pairs := [][2]Input{
		{mk("a", "\x01b", "c\x00d", "u"), mk("a\x00b", "c", "\x01d", "u")},
		{mk("a", "i", "e", "u", "g\x00"), mk("a", "i", "e", "u", "g", "\x01")},
		{mk("a", "\x01b", "e", "u"), mk("a\x00b", "", "e", "u")},
		{mk("a", "i", "e", "u", "g\x00"), mk("a", "i", "e", "u", "g", "")},
		{mk("a", "i", "e", "u", "x", "y"), mk("a", "i", "e", "u", "x\x00y")},
		{mk("a", "i", "e", "u"), mk("a", "i", "e", "u", "")},
		{mk("a\x01", "i", "e", "u"), mk("a", "\x01i", "e", "u")},
	}
	for i, p := range pairs {
		k1 := string(appendCacheKey(nil, ib, &p[0]))
		k2 := string(appendCacheKey(nil, ib, &p[1]))
		if k1 == k2 {
			t.Errorf("pair %d: %q and %q share the key %q", i, fmt.Sprint(p[0].User), fmt.Sprint(p[1].User), k1)
		}
	}
}

func FuzzCacheKeyIsInjective(f *testing.F) {
	f.Add("a", "\x01b", "a\x00b", "", "g")
	e := newTestEngine(f, Options{})
	ib := e.policy.Load().input
	f.Fuzz(func(t *testing.T, sub1, iss1, sub2, iss2, group string) {
		a := req("x", "component:default/petstore", "staging")
		b := a
		a.User = User{Subject: sub1, Issuer: iss1, Groups: []string{group}}
		b.User = User{Subject: sub2, Issuer: iss2, Groups: []string{group}}
		same := sub1 == sub2 && iss1 == iss2
		if k1, k2 := string(appendCacheKey(nil, ib, &a)), string(appendCacheKey(nil, ib, &b)); (k1 == k2) != same {
			t.Fatalf("keys equal = %v for %q/%q vs %q/%q", k1 == k2, sub1, iss1, sub2, iss2)
		}
	})
}

// TestDecisionCacheAgesByInputTime: an entry ages against the input's Time
// (the moment the proxy read when the request arrived), and the cache's own
// clock counts only for inputs without one.
func TestDecisionCacheAgesByInputTime(t *testing.T) {
	_, c, clk := newCache(t, "")
	alice := req("alice", "component:default/petstore", "staging") // Time: t0
	step(t, c, alice, true, true)
	clk.Add(time.Hour) // the cache's clock is not what the entry ages against
	step(t, c, alice, true, false)
	alice.Time = t0.Add(61 * time.Second) // past the TTL by the input's time
	step(t, c, alice, true, true)

	bob := req("bob", "component:default/petstore", "staging")
	bob.Time = time.Time{} // no time: the cache's clock, now t0+1h
	step(t, c, bob, true, true)
	step(t, c, bob, true, false)
	clk.Add(61 * time.Second)
	step(t, c, bob, true, true)
}
