package access

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		changes := 0
		f := newFixture(t, k, func(o *Options) { o.OnChange = func() { changes++ } })
		carol, alice := user("carol"), user("alice")

		r, existing, err := f.svc.Request(ctx, carol, svc, "prod", 2*time.Hour, "  incident 42  ")
		if err != nil || existing {
			t.Fatalf("Request = %v, %v", existing, err)
		}
		if r.State != StatePending || r.Reason != "incident 42" || r.Duration != 2*time.Hour {
			t.Fatalf("request = %+v", r)
		}
		if got, _ := f.svc.ToDecide(ctx, alice); len(got) != 1 || got[0].ID != r.ID {
			t.Fatalf("ToDecide(alice) = %+v", got)
		}
		if got, _ := f.svc.ToDecide(ctx, user("mallory")); len(got) != 0 {
			t.Fatalf("ToDecide(mallory) = %+v", got)
		}

		f.clk.Add(time.Minute)
		decided := f.clk.Now()
		r, err = f.svc.Approve(ctx, alice, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != StateApproved || r.GrantID == "" || !r.ExpiresAt.Equal(decided.Add(2*time.Hour)) || r.DecidedBy != alice.UserRef {
			t.Fatalf("approved = %+v", r)
		}
		if changes != 1 {
			t.Errorf("OnChange called %d times after approve, want 1", changes)
		}
		gs, err := f.svc.ActiveGrants(ctx)
		if err != nil || len(gs) != 1 {
			t.Fatalf("ActiveGrants = %+v, %v", gs, err)
		}
		g := gs[0]
		if g.User != carol.UserRef || g.Service != svc || g.Environment != "prod" || g.RequestID != r.ID ||
			!slices.Equal(g.ApprovedBy, []string{alice.UserRef}) || !g.Active(f.clk.Now()) {
			t.Fatalf("grant = %+v", g)
		}
		mine, err := f.svc.Mine(ctx, carol)
		if err != nil || len(mine) != 1 || mine[0].State != StateApproved {
			t.Fatalf("Mine = %+v, %v", mine, err)
		}

		// Just before expiry: still active, nothing to expire.
		f.clk.Add(2*time.Hour - time.Nanosecond)
		if gs, _ := f.svc.ActiveGrants(ctx); len(gs) != 1 {
			t.Fatalf("1ns before expiry: %d grants", len(gs))
		}
		if n, err := f.svc.ExpireDue(ctx); n != 0 || err != nil {
			t.Fatalf("ExpireDue before expiry = %d, %v", n, err)
		}
		// At expiry the clock alone ends it, before any bookkeeping.
		f.clk.Add(time.Nanosecond)
		if gs, _ := f.svc.ActiveGrants(ctx); len(gs) != 0 {
			t.Fatalf("at expiry: %+v", gs)
		}
		if n, err := f.svc.ExpireDue(ctx); n != 1 || err != nil {
			t.Fatalf("ExpireDue = %d, %v", n, err)
		}
		if n, err := f.svc.ExpireDue(ctx); n != 0 || err != nil {
			t.Fatalf("second ExpireDue = %d, %v", n, err)
		}
		r, _ = f.svc.Get(ctx, r.ID)
		if r.State != StateExpired {
			t.Fatalf("state after expiry = %s", r.State)
		}
		if _, err := f.svc.Revoke(ctx, alice, r.ID, ""); !errors.Is(err, ErrNotActive) {
			t.Fatalf("revoke expired: %v", err)
		}
		if got, want := f.actions(t, AuditFilter{}), []string{"request", "approve", "expire"}; !slices.Equal(got, want) {
			t.Fatalf("audit = %v, want %v", got, want)
		}
		// One JSON line per event.
		lines := strings.Split(strings.TrimSpace(f.audit.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("audit lines = %q", lines)
		}
		var last map[string]any
		if err := json.Unmarshal([]byte(lines[2]), &last); err != nil || last["action"] != "expire" || last["grant_id"] != r.GrantID {
			t.Fatalf("last audit line %s: %v", lines[2], err)
		}
	})
}

func TestRequestValidation(t *testing.T) {
	f := newFixture(t, storeKinds[0], nil)
	ctx := context.Background()
	tests := []struct {
		name    string
		actor   Actor
		service string
		env     string
		d       time.Duration
		reason  string
		want    error
	}{
		{"ok", user("carol"), svc, "staging", time.Hour, "deploy", nil},
		{"no user ref", Actor{Email: "x@example.com"}, svc, "staging", time.Hour, "r", ErrUnknownUser},
		{"unknown service", user("carol"), "component:other/x", "staging", time.Hour, "r", ErrInvalid},
		{"empty service", user("carol"), "", "staging", time.Hour, "r", ErrInvalid},
		{"bad env", user("carol"), svc, "Prod", time.Hour, "r", ErrInvalid},
		{"env with slash", user("carol"), svc, "a/b", time.Hour, "r", ErrInvalid},
		{"env not offered", user("carol"), svc, "dev", time.Hour, "r", ErrInvalid},
		{"empty reason", user("carol"), svc, "staging", time.Hour, " \t\n ", ErrInvalid},
		{"reason too long", user("carol"), svc, "staging", time.Hour, strings.Repeat("é", 501), ErrInvalid},
		{"reason 500 chars", user("dave"), svc, "staging", time.Hour, strings.Repeat("é", 500), nil},
		{"reason control char", user("carol"), svc, "staging", time.Hour, "a\x00b", ErrInvalid},
		{"zero duration", user("carol"), svc, "staging", 0, "r", ErrInvalid},
		{"negative duration", user("carol"), svc, "staging", -time.Hour, "r", ErrInvalid},
		{"above max", user("carol"), svc, "prod", 4*time.Hour + 1, "r", ErrDurationTooLong},
		{"at max", user("erin"), svc, "prod", 4 * time.Hour, "r", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.svc.Request(ctx, tc.actor, tc.service, tc.env, tc.d, tc.reason)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	if got := f.actions(t, AuditFilter{}); len(got) != 3 {
		t.Fatalf("audit has %d events, want 3 (the valid requests)", len(got))
	}
}

func TestOnePending(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		f := newFixture(t, k, nil)
		carol := user("carol")
		first, existing, err := f.svc.Request(ctx, carol, svc, "staging", time.Hour, "a")
		if err != nil || existing {
			t.Fatal(existing, err)
		}
		again, existing, err := f.svc.Request(ctx, carol, svc, "staging", 2*time.Hour, "b")
		if err != nil || !existing || again.ID != first.ID || again.Reason != "a" {
			t.Fatalf("second request = %+v, %v, %v", again, existing, err)
		}
		other, existing, err := f.svc.Request(ctx, carol, svc, "prod", time.Hour, "c")
		if err != nil || existing || other.ID == first.ID {
			t.Fatalf("other env = %+v, %v, %v", other, existing, err)
		}
		if _, err := f.svc.Deny(ctx, user("alice"), first.ID, "no"); err != nil {
			t.Fatal(err)
		}
		third, existing, err := f.svc.Request(ctx, carol, svc, "staging", time.Hour, "d")
		if err != nil || existing || third.ID == first.ID {
			t.Fatalf("after deny = %+v, %v, %v", third, existing, err)
		}

		// 20 concurrent requests by one user give one row.
		dave := user("dave")
		var wg sync.WaitGroup
		ids := make([]string, 20)
		fresh := make([]bool, 20)
		errs := make([]error, 20)
		for i := range 20 {
			wg.Go(func() {
				r, existing, err := f.svc.Request(ctx, dave, svc, "staging", time.Hour, "race")
				ids[i], fresh[i], errs[i] = r.ID, !existing, err
			})
		}
		wg.Wait()
		created := 0
		for i := range 20 {
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("request %d got %s, request 0 got %s", i, ids[i], ids[0])
			}
			if fresh[i] {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d requests created, want 1", created)
		}
		if got := f.actions(t, AuditFilter{User: dave.UserRef}); len(got) != 1 {
			t.Fatalf("audit for dave = %v", got)
		}
	})
}

func TestDecisionsRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		f := newFixture(t, k, nil)
		alice := user("alice")
		r, _, err := f.svc.Request(ctx, alice, svc, "staging", time.Hour, "mine")
		if err != nil {
			t.Fatal(err)
		}
		calls := f.appr.calls.Load()
		if _, err := f.svc.Approve(ctx, alice, r.ID); !errors.Is(err, ErrSelfApproval) {
			t.Fatalf("self approval: %v", err)
		}
		if f.appr.calls.Load() != calls {
			t.Error("the Approver was asked about a self-approval")
		}
		if _, err := f.svc.Deny(ctx, alice, r.ID, "x"); !errors.Is(err, ErrForbidden) {
			t.Fatalf("self deny: %v", err)
		}
		for _, who := range []Actor{user("mallory"), {Email: "nobody@example.com"}} {
			if _, err := f.svc.Approve(ctx, who, r.ID); err == nil {
				t.Fatalf("approve by %q succeeded", who.UserRef)
			}
			if _, err := f.svc.Deny(ctx, who, r.ID, "x"); err == nil {
				t.Fatalf("deny by %q succeeded", who.UserRef)
			}
			if _, err := f.svc.Cancel(ctx, who, r.ID); err == nil {
				t.Fatalf("cancel by %q succeeded", who.UserRef)
			}
		}
		if _, err := f.svc.Approve(ctx, user("mallory"), r.ID); !errors.Is(err, ErrForbidden) {
			t.Fatalf("non-approver: %v", err)
		}
		if _, err := f.svc.Approve(ctx, user("bob"), "no-such-id"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown id: %v", err)
		}
		if got := f.actions(t, AuditFilter{}); !slices.Equal(got, []string{"request"}) {
			t.Fatalf("refusals changed the audit: %v", got)
		}
		if gs, _ := f.svc.ActiveGrants(ctx); len(gs) != 0 {
			t.Fatalf("grants after refusals: %+v", gs)
		}
	})
}

func TestDenyCancelRevoke(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		f := newFixture(t, k, nil)
		carol, alice, bob := user("carol"), user("alice"), user("bob")

		// Deny needs a reason; a denied request cannot be approved.
		r1, _, _ := f.svc.Request(ctx, carol, svc, "staging", time.Hour, "one")
		if _, err := f.svc.Deny(ctx, alice, r1.ID, "  "); !errors.Is(err, ErrInvalid) {
			t.Fatalf("deny without reason: %v", err)
		}
		d, err := f.svc.Deny(ctx, alice, r1.ID, "not during the freeze")
		if err != nil || d.State != StateDenied || d.DecisionReason != "not during the freeze" || d.DecidedBy != alice.UserRef {
			t.Fatalf("deny = %+v, %v", d, err)
		}
		if _, err := f.svc.Approve(ctx, bob, r1.ID); !errors.Is(err, ErrNotPending) {
			t.Fatalf("approve denied: %v", err)
		}

		// Cancel by the requester.
		r2, _, _ := f.svc.Request(ctx, carol, svc, "staging", time.Hour, "two")
		c, err := f.svc.Cancel(ctx, carol, r2.ID)
		if err != nil || c.State != StateCanceled {
			t.Fatalf("cancel = %+v, %v", c, err)
		}
		if _, err := f.svc.Cancel(ctx, carol, r2.ID); !errors.Is(err, ErrNotPending) {
			t.Fatalf("cancel twice: %v", err)
		}

		// Revoke: not by a stranger; by an approver; then never again.
		r3, _, _ := f.svc.Request(ctx, carol, svc, "staging", time.Hour, "three")
		if _, err := f.svc.Revoke(ctx, alice, r3.ID, ""); !errors.Is(err, ErrNotActive) {
			t.Fatalf("revoke pending: %v", err)
		}
		if _, err := f.svc.Approve(ctx, alice, r3.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Revoke(ctx, user("mallory"), r3.ID, ""); !errors.Is(err, ErrForbidden) {
			t.Fatalf("revoke by stranger: %v", err)
		}
		f.clk.Add(10 * time.Minute)
		rv, err := f.svc.Revoke(ctx, bob, r3.ID, "done early")
		if err != nil || rv.State != StateRevoked || rv.RevokedBy != bob.UserRef || !rv.RevokedAt.Equal(f.clk.Now()) || rv.DecisionReason != "done early" {
			t.Fatalf("revoke = %+v, %v", rv, err)
		}
		if gs, _ := f.svc.ActiveGrants(ctx); len(gs) != 0 {
			t.Fatalf("revoked grant still active: %+v", gs)
		}
		if _, err := f.svc.Revoke(ctx, bob, r3.ID, ""); !errors.Is(err, ErrNotActive) {
			t.Fatalf("revoke twice: %v", err)
		}
		f.clk.Add(2 * time.Hour)
		if n, _ := f.svc.ExpireDue(ctx); n != 0 {
			t.Fatalf("a revoked grant was expired as well")
		}

		// The requester may revoke their own access.
		r4, _, _ := f.svc.Request(ctx, carol, svc, "staging", time.Hour, "four")
		if _, err := f.svc.Approve(ctx, alice, r4.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Revoke(ctx, carol, r4.ID, ""); err != nil {
			t.Fatalf("self revoke: %v", err)
		}

		want := []string{"request", "deny", "request", "cancel", "request", "approve", "revoke", "request", "approve", "revoke"}
		if got := f.actions(t, AuditFilter{}); !slices.Equal(got, want) {
			t.Fatalf("audit = %v\nwant %v", got, want)
		}
		evs, _ := f.svc.Audit(ctx, AuditFilter{})
		if e := evs[1]; e.Reason != "not during the freeze" || e.Actor != alice.UserRef || e.Address != "192.0.2.7" || e.Via != "page" {
			t.Fatalf("deny event = %+v", e)
		}
		if e := evs[6]; e.GrantID == "" || e.Reason != "done early" {
			t.Fatalf("revoke event = %+v", e)
		}
	})
}

func TestTwoApproversRequired(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		f := newFixture(t, k, nil)
		f.appr.approvers["user:default/sre"] = true
		// prod needs an approval by sre besides an owner; staging does not.
		f.appr.complete = func(in ApprovalInput) bool {
			if in.Request.Environment != "prod" {
				return true
			}
			who := []string{in.Approver.UserRef}
			for _, a := range in.Request.Approvals {
				who = append(who, a.By)
			}
			return slices.Contains(who, "user:default/sre") && len(who) >= 2
		}
		carol := user("carol")
		r, _, _ := f.svc.Request(ctx, carol, svc, "prod", time.Hour, "db fix")
		r, err := f.svc.Approve(ctx, user("alice"), r.ID)
		if err != nil || r.State != StatePending || len(r.Approvals) != 1 || r.GrantID != "" {
			t.Fatalf("first approval = %+v, %v", r, err)
		}
		if _, err := f.svc.Approve(ctx, user("alice"), r.ID); !errors.Is(err, ErrForbidden) {
			t.Fatalf("approving twice: %v", err)
		}
		if got, _ := f.svc.ToDecide(ctx, user("alice")); len(got) != 0 {
			t.Fatalf("alice still asked to decide: %+v", got)
		}
		if gs, _ := f.svc.ActiveGrants(ctx); len(gs) != 0 {
			t.Fatalf("grant after a partial approval")
		}
		r, err = f.svc.Approve(ctx, user("sre"), r.ID)
		if err != nil || r.State != StateApproved || len(r.Approvals) != 2 {
			t.Fatalf("second approval = %+v, %v", r, err)
		}
		gs, _ := f.svc.ActiveGrants(ctx)
		if len(gs) != 1 || !slices.Equal(gs[0].ApprovedBy, []string{"user:default/alice", "user:default/sre"}) {
			t.Fatalf("grants = %+v", gs)
		}

		// Two partial approvals at once still finish the request: the
		// later one sees the earlier and is asked again.
		for range 5 {
			r, _, _ := f.svc.Request(ctx, carol, svc, "prod", time.Hour, "again")
			var wg sync.WaitGroup
			for _, who := range []string{"bob", "sre"} {
				wg.Go(func() {
					if _, err := f.svc.Approve(ctx, user(who), r.ID); err != nil {
						t.Errorf("approve by %s: %v", who, err)
					}
				})
			}
			wg.Wait()
			r, _ = f.svc.Get(ctx, r.ID)
			if r.State != StateApproved || len(r.Approvals) != 2 {
				t.Fatalf("after concurrent partial approvals: %+v", r)
			}
			if _, err := f.svc.Revoke(ctx, carol, r.ID, ""); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestConcurrentApprovals(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		f := newFixture(t, k, nil)
		approvers := make([]Actor, 20)
		for i := range approvers {
			approvers[i] = user("owner" + string(rune('a'+i)))
			f.appr.approvers[approvers[i].UserRef] = true
		}
		r, _, err := f.svc.Request(ctx, user("carol"), svc, "staging", time.Hour, "race")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(approvers))
		for i, a := range approvers {
			wg.Go(func() { _, errs[i] = f.svc.Approve(ctx, a, r.ID) })
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrNotPending):
				t.Errorf("approval %d: %v", i, err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d approvals succeeded, want 1", ok)
		}
		var grants int
		if err := f.store.DB().QueryRow(`SELECT COUNT(*) FROM grants`).Scan(&grants); err != nil || grants != 1 {
			t.Fatalf("%d grants, %v", grants, err)
		}
		if got := f.actions(t, AuditFilter{}); !slices.Equal(got, []string{"request", "approve"}) {
			t.Fatalf("audit = %v", got)
		}
	})
}

// TestApprovalRacingExpiry approves requests while ExpireDue runs and the
// clock moves on: every grant ends exactly once, never before its expiry,
// and ActiveGrants never returns a grant past its expiry.
func TestApprovalRacingExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		f := newFixture(t, k, nil)
		const n = 12
		var ids []string
		for i := range n {
			r, _, err := f.svc.Request(ctx, user("u"+string(rune('a'+i))), svc, "staging", time.Minute, "race")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		done := make(chan struct{})
		var wg, bg sync.WaitGroup
		bg.Go(func() { // expiry bookkeeping and the policy's view, racing the approvals
			for {
				if _, err := f.svc.ExpireDue(ctx); err != nil {
					t.Error(err)
				}
				now := f.clk.Now()
				gs, err := f.store.ActiveGrants(ctx, now)
				if err != nil {
					t.Error(err)
				}
				for _, g := range gs {
					if !g.Active(now) {
						t.Errorf("ActiveGrants at %s returned %+v", now, g)
					}
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
		for i, id := range ids {
			wg.Go(func() {
				approver := user("alice")
				if i%2 == 1 {
					approver = user("bob")
				}
				if _, err := f.svc.Approve(ctx, approver, id); err != nil {
					t.Errorf("approve %s: %v", id, err)
				}
				f.clk.Add(20 * time.Second)
			})
		}
		for range 6 {
			f.clk.Add(15 * time.Second)
		}
		wg.Wait()
		close(done)
		bg.Wait()
		f.clk.Add(time.Hour)
		if _, err := f.svc.ExpireDue(ctx); err != nil {
			t.Fatal(err)
		}
		evs, _ := f.svc.Audit(ctx, AuditFilter{})
		expired := map[string]int{}
		for _, e := range evs {
			if e.Action == "expire" {
				expired[e.RequestID]++
			}
		}
		for _, id := range ids {
			r, _ := f.svc.Get(ctx, id)
			if r.State != StateExpired || expired[id] != 1 {
				t.Errorf("request %s: state %s, %d expire events", id, r.State, expired[id])
			}
			for _, e := range evs {
				if e.Action == "expire" && e.RequestID == id && !e.Time.Equal(r.ExpiresAt) {
					t.Errorf("expire event of %s at %s, grant expired at %s", id, e.Time, r.ExpiresAt)
				}
			}
		}
	})
}

// TestRevokeRacing revokes while a new request of the same user is in
// flight, the requester revokes too and the expiry bookkeeping runs: one
// revocation wins, the revoked grant is never returned again.
func TestRevokeRacing(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		f := newFixture(t, k, nil)
		carol := user("carol")
		for round := range 5 {
			r, _, err := f.svc.Request(ctx, carol, svc, "staging", time.Hour, "work")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Approve(ctx, user("alice"), r.ID); err != nil {
				t.Fatal(err)
			}
			if round%2 == 1 {
				f.clk.Add(time.Hour) // expiry due as well
			}
			var wg sync.WaitGroup
			var revErrs [2]error
			var next Request
			var nextErr error
			wg.Go(func() { _, revErrs[0] = f.svc.Revoke(ctx, user("bob"), r.ID, "stop") })
			wg.Go(func() { _, revErrs[1] = f.svc.Revoke(ctx, carol, r.ID, "") })
			wg.Go(func() { next, _, nextErr = f.svc.Request(ctx, carol, svc, "staging", time.Hour, "more") })
			wg.Go(func() {
				if _, err := f.svc.ExpireDue(ctx); err != nil {
					t.Error(err)
				}
			})
			wg.Wait()
			if nextErr != nil || next.State != StatePending {
				t.Fatalf("request in flight: %+v, %v", next, nextErr)
			}
			wins := 0
			for _, err := range revErrs {
				if err == nil {
					wins++
				} else if !errors.Is(err, ErrNotActive) {
					t.Fatalf("revoke: %v", err)
				}
			}
			r, _ = f.svc.Get(ctx, r.ID)
			terminal := map[State]int{StateRevoked: 1, StateExpired: 0}
			want, ok := terminal[r.State]
			if !ok || wins != want {
				t.Fatalf("round %d: state %s with %d successful revocations", round, r.State, wins)
			}
			gs, _ := f.svc.ActiveGrants(ctx)
			for _, g := range gs {
				if g.RequestID == r.ID {
					t.Fatalf("revoked grant returned: %+v", g)
				}
			}
			if _, err := f.svc.Cancel(ctx, carol, next.ID); err != nil {
				t.Fatal(err)
			}
		}
		evs, _ := f.svc.Audit(ctx, AuditFilter{})
		ends := map[string]int{}
		for _, e := range evs {
			if e.Action == "revoke" || e.Action == "expire" {
				ends[e.RequestID]++
			}
		}
		for id, n := range ends {
			if n != 1 {
				t.Errorf("request %s ended %d times", id, n)
			}
		}
		if len(ends) != 5 {
			t.Errorf("%d requests ended, want 5", len(ends))
		}
	})
}
