package access

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	acc "github.com/backgate/backgate/access"
)

// ownerApprover lets the owners of a service approve; one approval is
// enough. Longest grants: prod 4h, staging 24h.
type ownerApprover struct{ owners map[string][]string }

func (a ownerApprover) MayApprove(_ context.Context, in acc.ApprovalInput) (acc.ApprovalResult, error) {
	ok := slices.Contains(a.owners[in.Request.Service], in.Approver.UserRef)
	return acc.ApprovalResult{MayApprove: ok, Complete: ok}, nil
}

func (ownerApprover) MaxDuration(_ context.Context, _, env string) (time.Duration, error) {
	return map[string]time.Duration{"prod": 4 * time.Hour, "staging": 24 * time.Hour}[env], nil
}

// TestWithRealService drives the pages and the API against *access.Service
// on SQLite, to check that the two agree on errors and flows.
func TestWithRealService(t *testing.T) {
	ctx := context.Background()
	store, err := acc.OpenSQLite(ctx, filepath.Join(t.TempDir(), "access.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	hs := newHarness(t)
	n := 0
	svc, err := acc.NewService(acc.Options{Store: store, Now: hs.clock.now,
		Approver: ownerApprover{owners: map[string][]string{petstore: {"user:default/bob"}}},
		Services: func(s string) bool { return s == petstore },
		NewID:    func() string { n++; return "q" + string(rune('0'+n)) }})
	if err != nil {
		t.Fatal(err)
	}
	o := hs.h.opt
	o.Service = svc
	h, err := NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	hs.h = h
	hs.srv.Config.Handler = h

	// Form: durations bounded by the policy, unknown service refused.
	_, _, body := hs.get("alice", formURL(petstore, "prod"))
	var got []string
	for _, m := range optionRE.FindAllStringSubmatch(body, -1) {
		got = append(got, m[1])
	}
	if !slices.Equal(got, []string{"15m", "1h", "4h"}) {
		t.Errorf("prod durations %v", got)
	}
	if st, _, body := hs.get("alice", formURL("component:default/nope", "prod")); st != 400 || !strings.Contains(body, "unknown service") {
		t.Errorf("unknown service: %d %s", st, body)
	}
	if st, _, body := hs.get("alice", formURL(petstore, "dev")); st != 400 || !strings.Contains(body, "not offered") {
		t.Errorf("no temporary access in dev: %d %s", st, body)
	}

	// Create, ask again, approve, self-approval refused.
	id := hs.create("alice", "prod", "1h", "hotfix")
	if _, _, body := hs.get("alice", formURL(petstore, "prod")); !strings.Contains(body, "Your request is pending") {
		t.Errorf("pending not shown: %s", body)
	}
	if again := hs.create("alice", "prod", "4h", "again"); again != id {
		t.Errorf("asking again made %s, want the pending %s", again, id)
	}
	st, _, body := hs.postForm("alice", "/_backgate/access/requests/"+id+"/approve", url.Values{"csrf_token": {hs.pageCSRF("alice")}}, nil)
	if st != http.StatusForbidden || !strings.Contains(body, "nobody may approve their own request") {
		t.Errorf("self approval: %d %s", st, body)
	}
	st, _, body = hs.postForm("dave", "/_backgate/access/requests/"+id+"/approve", url.Values{"csrf_token": {hs.pageCSRF("dave")}}, nil)
	if st != http.StatusForbidden || !strings.Contains(body, "you may not do this") {
		t.Errorf("non-owner approval: %d %s", st, body)
	}
	if st, _, body := hs.postForm("bob", "/_backgate/access/requests/"+id+"/approve", url.Values{"csrf_token": {hs.pageCSRF("bob")}}, nil); st != 303 {
		t.Fatalf("approve: %d %s", st, body)
	}
	if r, _ := svc.Get(ctx, id); r.State != acc.StateApproved || r.DecidedBy != "user:default/bob" {
		t.Errorf("after approve: %+v", r)
	}

	// API: bot creates for alice in staging, bob denies with a reason,
	// approving again conflicts, alice revokes her prod grant.
	bot := "bearer:" + botSecret
	status, v := hs.api("POST", bot, "/requests", map[string]any{"service": petstore, "environment": "staging", "duration": "8h",
		"reason": "on call", "on_behalf_of": "alice@example.com"}, "")
	if status != 201 {
		t.Fatalf("bot create: %d %v", status, v)
	}
	sid := v["request"].(map[string]any)["id"].(string)
	if status, v = hs.api("POST", "bob", "/requests/"+sid+"/deny", map[string]any{"reason": "use read-only"}, hs.apiCSRF("bob")); status != 200 ||
		v["request"].(map[string]any)["state"] != "denied" {
		t.Errorf("deny: %d %v", status, v)
	}
	if status, v = hs.api("POST", "bob", "/requests/"+id+"/approve", nil, hs.apiCSRF("bob")); status != 409 || v["code"] != "conflict" {
		t.Errorf("approve again: %d %v", status, v)
	}
	if status, v = hs.api("POST", bot, "/requests", map[string]any{"service": petstore, "environment": "Prod", "duration": "1h",
		"reason": "x", "on_behalf_of": "alice@example.com"}, ""); status != 400 || v["code"] != "invalid" || !strings.Contains(v["error"].(string), `environment "Prod"`) {
		t.Errorf("bad environment: %d %v", status, v)
	}
	if status, v = hs.api("POST", "alice", "/requests/"+id+"/revoke", map[string]any{"reason": "done"}, hs.apiCSRF("alice")); status != 200 ||
		v["request"].(map[string]any)["revoked_by"] != "user:default/alice" || v["request"].(map[string]any)["active"] != false {
		t.Errorf("revoke: %d %v", status, v)
	}
	if status, v = hs.api("POST", "alice", "/requests/"+id+"/revoke", nil, hs.apiCSRF("alice")); status != 409 || v["code"] != "conflict" {
		t.Errorf("revoke again: %d %v", status, v)
	}
	status, v = hs.api("GET", "alice", "/requests", nil, "")
	if status != 200 || len(v["requests"].([]any)) != 2 {
		t.Errorf("mine: %d %v", status, v)
	}
}
