package policy

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestMayApprove(t *testing.T) {
	e := newTestEngine(t, Options{})
	if err := e.SetCatalog(smallCatalog("r")); err != nil {
		t.Fatal(err)
	}
	const pet = "component:default/petstore"
	ask := func(approver, requester, env string, d time.Duration, before ...string) ApprovalInput {
		return ApprovalInput{
			Approver:    User{Subject: "sub-" + approver, Email: approver + "@acme.example"},
			ApproverRef: uref(approver),
			Request:     ApprovalRequest{ID: "req-1", Requester: uref(requester), Service: pet, Environment: env, Duration: d, ApprovedBy: before},
			Time:        t0,
		}
	}
	tests := []struct {
		name          string
		in            ApprovalInput
		may, complete bool
		reason        string
	}{
		{"owning group member, staging", ask("alice", "carol", "staging", time.Hour), true, true, "user:default/alice may approve as owning_group"},
		{"member of a sub-group of the owner", ask("dave", "carol", "dev", time.Hour), true, true, "may approve as owning_group"},
		{"self-approval refused by the policy", ask("alice", "alice", "staging", time.Hour), false, false, "nobody may approve their own request"},
		{"non-member refused", ask("bob", "carol", "staging", time.Hour), false, false, "user:default/bob is not in group:default/team-c (the owning group) or a prod approver group"},
		{"suspended member refused", ask("frank", "carol", "staging", time.Hour), false, false, "approver user:default/frank is suspended"},
		{"unknown approver refused", ask("mallory", "carol", "staging", time.Hour), false, false, `approver "user:default/mallory" is not a Backstage user`},
		{"prod owner alone is not complete", ask("alice", "carol", "prod", time.Hour), true, false, "may approve as owning_group"},
		{"prod approver group alone is not complete", ask("sam", "carol", "prod", time.Hour), true, false, "may approve as prod_approver"},
		{"prod approver after the owner completes", ask("sam", "carol", "prod", time.Hour, uref("alice")), true, true, "may approve as prod_approver"},
		{"prod owner after the prod approver completes", ask("alice", "carol", "prod", time.Hour, "User:default/Sam"), true, true, ""},
		{"prod: two owners are not enough", ask("dave", "carol", "prod", time.Hour, uref("alice")), true, false, ""},
		{"prod approver group does not count in staging", ask("sam", "carol", "staging", time.Hour), false, false, "not in group:default/team-c"},
		{"prod duration over the maximum", ask("alice", "carol", "prod", 5*time.Hour), false, false, "exceeds the prod maximum"},
		{"zero duration", ask("alice", "carol", "dev", 0), false, false, "requested duration must be positive"},
		{"unknown environment", ask("alice", "carol", "qa", time.Hour), false, false, `environment "qa" is not one the policy knows`},
		{"unknown requester", ask("alice", "ghost", "dev", time.Hour), false, false, `requester "user:default/ghost" is not a Backstage user`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.MayApprove(context.Background(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if res.MayApprove != tc.may || res.Complete != tc.complete {
				t.Fatalf("may=%v complete=%v, want %v %v (reasons %q)", res.MayApprove, res.Complete, tc.may, tc.complete, res.Reasons)
			}
			if len(res.Reasons) == 0 || !strings.Contains(strings.Join(res.Reasons, "\n"), tc.reason) {
				t.Errorf("reasons %q, want one containing %q", res.Reasons, tc.reason)
			}
		})
	}
}

func TestMayApproveWithoutCatalogRefuses(t *testing.T) {
	e := newTestEngine(t, Options{})
	res, err := e.MayApprove(context.Background(), ApprovalInput{
		ApproverRef: uref("alice"),
		Request:     ApprovalRequest{Requester: uref("carol"), Service: "component:default/petstore", Environment: "dev", Duration: time.Hour},
	})
	if err != nil || res.MayApprove || res.Complete {
		t.Fatalf("got %+v %v, want refusal", res, err)
	}
}

func TestMayApproveFailsClosed(t *testing.T) {
	for _, body := range []string{
		`result := {"may_approve": "yes", "complete": true, "reasons": []}`,
		`result := {"may_approve": true, "reasons": []}`,
		`result := {"may_approve": true, "complete": true, "reasons": [1]}`,
		`result := 1 if false`,
		`result := {"may_approve": true, "complete": true, "reasons": []} if 1 / 0 > 0`,
		`result := ["not an object"]`,
	} {
		fsys := fstest.MapFS{
			"authz.rego":    &fstest.MapFile{Data: []byte("package backgate.authz\n\ndecision := {\"allow\": false, \"reasons\": [], \"rules\": [], \"grant\": {}}\n")},
			"approval.rego": &fstest.MapFile{Data: []byte("package backgate.approval\n\n" + body + "\n")},
		}
		e := newTestEngine(t, Options{PolicyFS: fsys})
		res, err := e.MayApprove(context.Background(), ApprovalInput{ApproverRef: uref("a"), Request: ApprovalRequest{Requester: uref("b")}})
		if err == nil || res.MayApprove || res.Complete {
			t.Errorf("%s: got %+v, %v; want an error and a refusal", body, res, err)
		}
	}
	e := newTestEngine(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := e.MayApprove(ctx, ApprovalInput{}); err == nil || res.MayApprove {
		t.Errorf("cancelled context: %+v %v", res, err)
	}
}

func TestMaxGrantDuration(t *testing.T) {
	e := newTestEngine(t, Options{})
	tests := []struct {
		env  string
		want time.Duration
	}{
		{"dev", 7 * 24 * time.Hour},
		{"staging", 24 * time.Hour},
		{"prod", 4 * time.Hour},
		{"PROD", 4 * time.Hour},
		{"qa", 0},
	}
	for _, tc := range tests {
		got, err := e.MaxGrantDuration(context.Background(), "component:default/petstore", tc.env)
		if err != nil || got != tc.want {
			t.Errorf("MaxGrantDuration(%q) = %v, %v; want %v", tc.env, got, err, tc.want)
		}
	}
	if _, err := e.MaxGrantDuration(context.Background(), "", "dev"); err == nil {
		t.Error("empty service accepted")
	}
}

func TestMaxGrantDurationFollowsSettings(t *testing.T) {
	dir := writeDir(t)
	e := newTestEngine(t, Options{PolicyDir: dir})
	p := dir + "/settings.rego"
	b, _ := fsReadFile("settings.rego")
	edited := strings.Replace(string(b), `"prod": 14400000000000,`, `"prod": 1800000000000,`, 1)
	edited = strings.Replace(edited, `"dev": 604800000000000,`, "", 1)
	if edited == string(b) {
		t.Fatal("fixture edit did not apply")
	}
	writeFile(t, p, edited)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if d, err := e.MaxGrantDuration(context.Background(), "component:default/x", "prod"); err != nil || d != 30*time.Minute {
		t.Errorf("prod = %v %v, want 30m", d, err)
	}
	if d, err := e.MaxGrantDuration(context.Background(), "component:default/x", "dev"); err != nil || d != 0 {
		t.Errorf("dev = %v %v, want 0 (not offered)", d, err)
	}
	writeFile(t, p, strings.Replace(string(b), `"prod": 14400000000000,`, `"prod": "4h",`, 1))
	if err := e.Reload(); err != nil {
		// The schema-less settings may or may not type-check; a bad value
		// must not be served as a duration either way.
		return
	}
	if d, err := e.MaxGrantDuration(context.Background(), "component:default/x", "prod"); !errors.Is(err, ErrBadDecision) || d != 0 {
		t.Errorf("string maximum = %v %v, want ErrBadDecision", d, err)
	}
}

func TestApprovalInputDedupesApprovers(t *testing.T) {
	in := ApprovalInput{ApproverRef: "User:default/Alice", Request: ApprovalRequest{ApprovedBy: []string{"user:default/alice", "", "user:default/sam"}}}
	v := approvalInput(&in)
	got := v.(interface{ String() string }).String()
	if !strings.Contains(got, `"approved_by": ["user:default/alice", "user:default/sam"]`) {
		t.Fatalf("approved_by not deduplicated and lower-cased: %s", got)
	}
	if !slices.Equal(in.Request.ApprovedBy, []string{"user:default/alice", "", "user:default/sam"}) {
		t.Fatal("caller's slice modified")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
