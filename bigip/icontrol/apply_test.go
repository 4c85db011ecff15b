package icontrol

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/backgate/backgate/bigip"
)

func TestApplyLifecycle(t *testing.T) {
	ctx := context.Background()
	s := device(t)
	c := dial(t, s)
	d := desired()

	p, err := c.Plan(ctx, d)
	must(t, err)
	if got := len(p.Changes); got != 5 {
		t.Fatalf("plan on empty device: %d changes, want 5:\n%s", got, p)
	}
	if s.Writes() != 0 {
		t.Fatalf("Plan made %d writes", s.Writes())
	}

	p, err = c.Apply(ctx, d)
	must(t, err)
	if p.Empty() {
		t.Fatal("first Apply returned an empty plan")
	}
	if text, ok := s.Rule("/Common/" + bigip.RuleName); !ok || text != d.Rule.Text {
		t.Fatalf("rule on device = %q, %v", text, ok)
	}
	_, recs, ok := s.DataGroup("/Common/" + bigip.KeysDataGroup)
	if !ok || recs["k1"] != keyHex {
		t.Fatalf("keys data group = %v, %v", recs, ok)
	}
	for _, tc := range []struct {
		name  string
		rules []string
	}{
		{"/Common/vs_app", []string{"/Common/other_rule", "/Common/" + bigip.RuleName}},
		{"/Common/vs_api", []string{"/Common/" + bigip.RuleName}},
		{"/Common/vs_unrelated", nil},
	} {
		v, ok := s.Virtual(tc.name)
		if !ok || v.Pool != "/Common/app_pool" || !slices.Equal(v.Rules, tc.rules) {
			t.Errorf("virtual %s = %+v, want pool /Common/app_pool and rules %v", tc.name, v, tc.rules)
		}
	}
	// The virtual servers were changed with a PATCH of rules only.
	for _, r := range s.Requests() {
		if strings.HasPrefix(r.Path, "/mgmt/tm/ltm/virtual/") && r.Method != "GET" {
			if r.Method != "PATCH" || !slices.Equal(r.BodyKeys, []string{"rules"}) {
				t.Errorf("virtual write %s %s with body keys %v, want PATCH of rules only", r.Method, r.Path, r.BodyKeys)
			}
		}
	}

	// Second apply: nothing to do, not a single write.
	s.ResetCounters()
	p, err = c.Apply(ctx, d)
	must(t, err)
	if !p.Empty() || s.Writes() != 0 {
		t.Fatalf("second Apply: plan %q, %d writes; want empty and 0", p, s.Writes())
	}

	// A route and a key added: the plan shows exactly that.
	d2 := desired()
	d2.DataGroups[0].Records = append(d2.DataGroups[0].Records, bigip.Record{Name: "k2", Data: key2Hex})
	d2.DataGroups[1].Records = append(d2.DataGroups[1].Records, bigip.Record{Name: bigip.RouteKey("component:default/ledger", "prod"), Data: "/Common/ledger_pool"})
	p, err = c.Plan(ctx, d2)
	must(t, err)
	want := []Change{
		{Kind: KindDataGroup, Name: "/Common/" + bigip.KeysDataGroup, Action: ActionUpdate, OldType: "string", NewType: "string", Redacted: true,
			Added: []RecordChange{{Name: "k2"}}},
		{Kind: KindDataGroup, Name: "/Common/" + bigip.RoutesDataGroup, Action: ActionUpdate, OldType: "string", NewType: "string",
			Added: []RecordChange{{Name: "component:default/ledger@prod", New: "/Common/ledger_pool"}}},
	}
	if !changesEqual(p.Changes, want) {
		t.Fatalf("plan after adding a key and a route:\n%s\nchanges %+v\nwant %+v", p, p.Changes, want)
	}
	if strings.Contains(p.String(), key2Hex) || strings.Contains(p.String(), keyHex) {
		t.Fatalf("plan shows key material:\n%s", p)
	}
	s.ResetCounters()
	_, err = c.Apply(ctx, d2)
	must(t, err)
	if w := s.Writes(); w != 4 { // transaction, 2 PATCHes, commit
		t.Errorf("apply of two data group changes made %d writes, want 4", w)
	}
	p, err = c.Plan(ctx, d2)
	must(t, err)
	if !p.Empty() {
		t.Fatalf("plan after apply not empty:\n%s", p)
	}
}

func changesEqual(a, b []Change) bool {
	return slices.EqualFunc(a, b, func(x, y Change) bool {
		return x.Kind == y.Kind && x.Name == y.Name && x.Action == y.Action && x.OldType == y.OldType && x.NewType == y.NewType &&
			x.Redacted == y.Redacted && slices.Equal(x.Added, y.Added) && slices.Equal(x.Removed, y.Removed) &&
			slices.Equal(x.Changed, y.Changed) && slices.Equal(x.OldRules, y.OldRules) && slices.Equal(x.NewRules, y.NewRules)
	})
}

func TestApplyMissingVirtual(t *testing.T) {
	s := device(t)
	c := dial(t, s)
	d := desired()
	d.Virtuals = append(d.Virtuals, "vs_gone")
	_, err := c.Apply(context.Background(), d)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "/Common/vs_gone") {
		t.Fatalf("err = %v, want ErrNotFound naming /Common/vs_gone", err)
	}
	if s.Writes() != 0 {
		t.Fatalf("%d writes despite the error", s.Writes())
	}
}
