package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	shipped "github.com/backgate/backgate/rego"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

func newTestEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func req(user, service, env string) Input {
	return Input{
		User:    User{Subject: "sub-" + user, Issuer: "https://idp.example", Email: user + "@acme.example", Username: user},
		Request: Request{Method: "GET", Host: "svc.example", Path: "/"},
		Route:   Route{Name: "r1", Host: "svc.example", Service: service, Environment: env},
		Time:    t0,
	}
}

func TestDecide(t *testing.T) {
	e := newTestEngine(t, Options{})
	if err := e.SetCatalog(smallCatalog("rev-1")); err != nil {
		t.Fatal(err)
	}
	const pet = "component:default/petstore"
	withIdP := req("gina", pet, "prod")
	withIdP.User.Groups = []string{"okta-sre-oncall"}
	unknown := req("mallory", pet, "dev")
	tests := []struct {
		name       string
		in         Input
		allow      bool
		rule       string
		reasonPart string
	}{
		{"dev org member", req("carol", pet, "dev"), true, "dev_engineering_org", "carol is in the engineering organisation group:default/acme-corp"},
		{"dev outsider", req("gina", pet, "dev"), false, "no_matching_rule", "no rule allows gina to reach component:default/petstore in dev"},
		{"staging owner group", req("alice", pet, "staging"), true, "owning_group", "alice is a member of team-c, which owns component:default/petstore (staging allows the owning group)"},
		{"staging sub-team of owner", req("dave", pet, "staging"), true, "owning_group", "dave is a member of team-c"},
		{"staging parent group", req("bob", pet, "staging"), true, "staging_parent_group", "bob is a member of dept-b, a parent of team-c, which owns component:default/petstore (staging allows the owning group and its parents)"},
		{"staging sibling team denied", req("carol", pet, "staging"), false, "no_matching_rule", "staging allows the owning group"},
		{"staging user owner", req("olivia", "component:default/toolbox", "staging"), true, "owner_user", "olivia owns component:default/toolbox directly"},
		{"prod user owner denied", req("olivia", "component:default/toolbox", "prod"), false, "no_matching_rule", "prod allows only"},
		{"prod owner group", req("alice", pet, "prod"), true, "owning_group", "(prod allows the owning group)"},
		{"prod parent denied", req("bob", pet, "prod"), false, "no_matching_rule", "prod allows only the owning group"},
		{"prod emergency", req("erin", pet, "prod"), true, "prod_emergency_group", "erin is a member of the emergency group group:default/sre-oncall"},
		{"prod emergency via idp", withIdP, true, "prod_emergency_group", "gina is a member of the emergency group"},
		{"staging emergency not enough", req("erin", pet, "staging"), false, "no_matching_rule", ""},
		{"resource entity", req("alice", "resource:default/orders-db", "prod"), true, "owning_group", "owns resource:default/orders-db"},
		{"api entity upper case ref", req("alice", "API:default/petstore-api", "prod"), true, "owning_group", "owns api:default/petstore-api"},
		{"suspended", req("frank", pet, "dev"), false, "suspended_user", "user:default/frank is suspended"},
		{"unknown user", unknown, false, "unknown_user", `e-mail "mallory@acme.example"`},
		{"unknown service", req("alice", "component:default/nope", "dev"), false, "unknown_service", "component:default/nope is not in the Backstage catalog"},
		{"unknown environment", req("alice", pet, "qa"), false, "unknown_environment", `environment "qa" is not one the policy knows (dev, prod, staging)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), tc.in)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Allow != tc.allow {
				t.Fatalf("allow = %v, want %v (reasons %q)", d.Allow, tc.allow, d.Reasons)
			}
			if !slices.Contains(d.Rules, tc.rule) {
				t.Errorf("rules = %q, want %q among them", d.Rules, tc.rule)
			}
			if !strings.Contains(strings.Join(d.Reasons, "\n"), tc.reasonPart) {
				t.Errorf("reasons = %q, want one containing %q", d.Reasons, tc.reasonPart)
			}
			if d.PolicyRevision != e.Revision() || d.CatalogRevision != "rev-1" || d.ID == "" {
				t.Errorf("decision metadata: id %q policy %q catalog %q", d.ID, d.PolicyRevision, d.CatalogRevision)
			}
		})
	}
}

func TestDecideNoCatalog(t *testing.T) {
	e := newTestEngine(t, Options{})
	if err := e.Ready(); !errors.Is(err, ErrNoCatalog) {
		t.Fatalf("Ready = %v, want ErrNoCatalog", err)
	}
	d, err := e.Decide(context.Background(), req("alice", "component:default/petstore", "dev"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow || !slices.Equal(d.Rules, []string{"no_catalog"}) {
		t.Fatalf("got allow=%v rules=%q, want deny by no_catalog", d.Allow, d.Rules)
	}
	if err := e.SetCatalog(smallCatalog("r")); err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(); err != nil {
		t.Fatalf("Ready after SetCatalog: %v", err)
	}
}

func TestDecisionIDsUnique(t *testing.T) {
	e := newTestEngine(t, Options{})
	seen := map[string]bool{}
	for range 100 {
		d, err := e.Decide(context.Background(), req("alice", "component:default/petstore", "dev"))
		if err != nil {
			t.Fatal(err)
		}
		if seen[d.ID] {
			t.Fatalf("duplicate decision id %q", d.ID)
		}
		seen[d.ID] = true
	}
}

func TestGrants(t *testing.T) {
	e := newTestEngine(t, Options{})
	if err := e.SetCatalog(smallCatalog("r")); err != nil {
		t.Fatal(err)
	}
	const pet = "component:default/petstore"
	in := req("carol", pet, "prod")
	d, err := e.Decide(context.Background(), in)
	if err != nil || d.Allow {
		t.Fatalf("before grant: allow=%v err=%v, want deny", d.Allow, err)
	}
	exp := t0.Add(2 * time.Hour)
	grants := []Grant{
		{ID: "g-1", User: "User:default/carol", Service: pet, Environment: "prod", ExpiresAt: exp, ApprovedBy: []string{uref("alice"), uref("sam")}},
		{ID: "g-too-long", User: uref("gina"), Service: pet, Environment: "prod", ExpiresAt: t0.Add(5 * time.Hour)},
		{ID: "g-staging", User: uref("bob"), Service: pet, Environment: "staging", ExpiresAt: exp},
	}
	if err := e.SetGrants(grants); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		in    Input
		at    time.Time
		allow bool
		grant string
	}{
		{"visible immediately", in, t0, true, "g-1"},
		{"one ns before expiry", in, exp.Add(-1), true, "g-1"},
		{"at expiry", in, exp, false, ""},
		{"after expiry", in, exp.Add(time.Minute), false, ""},
		{"longer than prod maximum ignored", req("gina", pet, "prod"), t0, false, ""},
		{"other environment", req("bob", pet, "prod"), t0, false, ""},
		{"grant env also allowed by parent rule", req("bob", pet, "staging"), t0, true, "g-staging"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Time = tc.at
			d, err := e.Decide(context.Background(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow || d.GrantID != tc.grant {
				t.Fatalf("allow=%v grant=%q, want %v %q (reasons %q)", d.Allow, d.GrantID, tc.allow, tc.grant, d.Reasons)
			}
			if tc.grant == "g-1" {
				if !d.GrantExpiry.Equal(exp) {
					t.Errorf("grant expiry %v, want %v", d.GrantExpiry, exp)
				}
				if !strings.Contains(strings.Join(d.Reasons, ""), "approved by user:default/alice, user:default/sam") {
					t.Errorf("reasons %q do not name the approvers", d.Reasons)
				}
			}
		})
	}
	// Revoking is as immediate as granting.
	if err := e.SetGrants(nil); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Decide(context.Background(), in); d.Allow {
		t.Fatal("still allowed after grants were replaced by none")
	}
	if err := e.SetGrants([]Grant{{ID: "x", User: uref("a")}}); err == nil {
		t.Fatal("incomplete grant accepted")
	}
}

func TestLongestGrantReported(t *testing.T) {
	e := newTestEngine(t, Options{})
	const pet = "component:default/petstore"
	grants := []Grant{
		{ID: "g-short", User: uref("carol"), Service: pet, Environment: "prod", ExpiresAt: t0.Add(time.Hour)},
		{ID: "g-long", User: uref("carol"), Service: pet, Environment: "prod", ExpiresAt: t0.Add(3 * time.Hour)},
		{ID: "g-mid", User: uref("carol"), Service: pet, Environment: "prod", ExpiresAt: t0.Add(2 * time.Hour)},
	}
	if err := e.SetData(smallCatalog("r"), grants); err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), req("carol", pet, "prod"))
	if err != nil || !d.Allow {
		t.Fatalf("%+v %v", d, err)
	}
	if d.GrantID != "g-long" || !d.GrantExpiry.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("grant %q until %v, want g-long", d.GrantID, d.GrantExpiry)
	}
	if len(d.Reasons) != 3 || len(d.Rules) != 3 || d.Rules[0] != "temporary_grant" {
		t.Errorf("want one temporary_grant reason per grant, got %q %q", d.Rules, d.Reasons)
	}
}

// A policy directory written for the earlier decision shape (reasons,
// rules and grant as separate fields) keeps working.
func TestLegacyDecisionShape(t *testing.T) {
	fsys := fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(`package backgate.authz

decision := {"allow": true, "reasons": ["because"], "rules": ["legacy"], "grant": {"id": "g-9", "expires_at": 1772370000000000000}}
`)}}
	e := newTestEngine(t, Options{PolicyFS: fsys})
	d, err := e.Decide(context.Background(), req("alice", "x", "dev"))
	if err != nil || !d.Allow || d.GrantID != "g-9" || !slices.Equal(d.Reasons, []string{"because"}) || !slices.Equal(d.Rules, []string{"legacy"}) {
		t.Fatalf("%+v %v", d, err)
	}
}

func TestSetDataOneTransaction(t *testing.T) {
	e := newTestEngine(t, Options{})
	in := req("carol", "component:default/petstore", "prod")
	err := e.SetData(smallCatalog("r2"), []Grant{{ID: "g", User: uref("carol"), Service: "component:default/petstore", Environment: "prod", ExpiresAt: t0.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), in)
	if err != nil || !d.Allow || d.GrantID != "g" || d.CatalogRevision != "r2" {
		t.Fatalf("got %+v err %v", d, err)
	}
}

// writeDir copies the shipped policy into a temp dir so tests can edit it.
func writeDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, shipped.FS()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSchemaTypoIsCompileError(t *testing.T) {
	dir := writeDir(t)
	p := filepath.Join(dir, "authz.rego")
	b, _ := os.ReadFile(p)
	bad := strings.Replace(string(b), "user := data.catalog.users[input.user.ref]", "user := data.catalog.users[input.usr.ref]", 1)
	if bad == string(b) {
		t.Fatal("fixture edit did not apply")
	}
	os.WriteFile(p, []byte(bad), 0o644)
	_, err := New(Options{PolicyDir: dir})
	var pe PolicyErrors
	if !errors.As(err, &pe) {
		t.Fatalf("New = %v, want PolicyErrors", err)
	}
	if !strings.Contains(err.Error(), "authz.rego:") || !strings.Contains(err.Error(), "input.usr") {
		t.Fatalf("error %q should name authz.rego:line and input.usr", err)
	}
	if pe[0].Line == 0 {
		t.Errorf("no line in %+v", pe[0])
	}
	if err := Check(dir); err == nil || !strings.Contains(err.Error(), "input.usr") {
		t.Fatalf("Check = %v, want the input.usr error", err)
	}
}

func TestCatalogSchemaTypo(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, name := range []string{"settings.rego", "schemas/input.json", "schemas/catalog.json", "schemas/grants.json"} {
		b, _ := fsReadFile(name)
		fsys[name] = &fstest.MapFile{Data: b}
	}
	fsys["authz.rego"] = &fstest.MapFile{Data: []byte(`# METADATA
# schemas:
#   - data.catalog: schema.catalog
package backgate.authz

decision := {"allow": false, "reasons": [], "rules": [], "grant": {}} if data.catalog.usres[input.user.ref]
`)}
	// OPA types JSON-schema maps (additionalProperties) as any->any, so only
	// the fixed top level of the catalog and each entity's fields reached
	// without a map lookup are checked; data.catalog.usres is caught.
	_, err := New(Options{PolicyFS: fsys})
	if err == nil || !strings.Contains(err.Error(), "data.catalog.usres") {
		t.Fatalf("New = %v, want a type error naming data.catalog.usres", err)
	}
}

func TestNetworkBuiltinsRejected(t *testing.T) {
	for _, call := range []string{`http.send({"method": "GET", "url": "http://x"})`, `net.lookup_ip_addr("x")`, `opa.runtime()`, `time.now_ns()`} {
		fsys := fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(fmt.Sprintf(`package backgate.authz

x := %s

decision := {"allow": false, "reasons": [], "rules": [], "grant": {}} if x
`, call))}}
		_, err := New(Options{PolicyFS: fsys})
		if err == nil || !strings.Contains(err.Error(), "undefined function") {
			t.Errorf("%s: New = %v, want undefined function", call, err)
		}
	}
}

func fsReadFile(name string) ([]byte, error) {
	return fs.ReadFile(shipped.FS(), name)
}

func TestBadDecisionShapes(t *testing.T) {
	tests := []struct{ name, body string }{
		{"undefined", `decision := 1 if false`},
		{"not object", `decision := "yes"`},
		{"allow not bool", `decision := {"allow": "true", "reasons": [], "rules": [], "grant": {}}`},
		{"reasons not strings", `decision := {"allow": true, "reasons": [1], "rules": [], "grant": {}}`},
		{"eval error", `decision := {"allow": true, "reasons": [], "rules": [], "grant": {}} if 1 / 0 > 0`},
		{"matched not a collection", `decision := {"allow": true, "matched": "x"}`},
		{"matched element not an object", `decision := {"allow": true, "matched": [1]}`},
		{"matched rule not a string", `decision := {"allow": true, "matched": {{"rule": 1, "reason": "r"}}}`},
		{"matched grant without id", `decision := {"allow": true, "matched": {{"rule": "r", "reason": "r", "grant": {"expires_at": 1}}}}`},
		{"matched grant not an object", `decision := {"allow": true, "matched": {{"rule": "r", "reason": "r", "grant": 1}}}`},
		{"legacy grant not integer", `decision := {"allow": true, "reasons": [], "rules": [], "grant": {"id": "g", "expires_at": "soon"}}`},
		{"conflict", `decision := {"allow": true, "reasons": [], "rules": [], "grant": {}} if input.time > 0
decision := {"allow": false, "reasons": [], "rules": [], "grant": {}} if input.time > 0`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte("package backgate.authz\n\n" + tc.body + "\n")}}
			e, err := New(Options{PolicyFS: fsys, Now: fixedNow})
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Decide(context.Background(), req("alice", "x", "dev"))
			if err == nil || d.Allow {
				t.Fatalf("Decide = %+v, %v; want an error and deny", d, err)
			}
		})
	}
}

type panicCatalog struct{ *testCatalog }

func (panicCatalog) ResolveUser(string, string, string) (string, bool) { panic("boom") }

func TestPanicIsDeny(t *testing.T) {
	var log bytes.Buffer
	e := newTestEngine(t, Options{DecisionLog: &log})
	if err := e.SetCatalog(panicCatalog{smallCatalog("r")}); err != nil {
		t.Fatal(err)
	}
	d, err := e.Decide(context.Background(), req("alice", "component:default/petstore", "dev"))
	if !errors.Is(err, ErrEnginePanic) || d.Allow {
		t.Fatalf("Decide = %+v, %v; want ErrEnginePanic and deny", d, err)
	}
	if !strings.Contains(log.String(), `"error":"policy: engine panic: boom"`) {
		t.Errorf("decision log lacks the error: %s", log.String())
	}
}

func TestCancelledContext(t *testing.T) {
	e := newTestEngine(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := e.Decide(ctx, req("alice", "component:default/petstore", "dev")); err == nil || d.Allow {
		t.Fatalf("Decide on cancelled ctx = %+v, %v", d, err)
	}
}

func TestConcurrentDecideAndSwap(t *testing.T) {
	e := newTestEngine(t, Options{})
	if err := e.SetCatalog(smallCatalog("a")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for range 200 {
				d, err := e.Decide(context.Background(), req("alice", "component:default/petstore", "prod"))
				if err != nil || !d.Allow {
					errs <- fmt.Errorf("allow=%v err=%v reasons=%q", d.Allow, err, d.Reasons)
					return
				}
			}
		})
	}
	for i := range 20 {
		if err := e.SetCatalog(smallCatalog(fmt.Sprint("rev-", i))); err != nil {
			t.Fatal(err)
		}
		if err := e.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDecisionLog(t *testing.T) {
	var log bytes.Buffer
	e := newTestEngine(t, Options{DecisionLog: &log})
	if err := e.SetCatalog(smallCatalog("cat-7")); err != nil {
		t.Fatal(err)
	}
	in := req("alice", "component:default/petstore", "staging")
	in.User.Groups = []string{"eng\"quoted\x01", "okta-sre-oncall"}
	d, err := e.Decide(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	line := log.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want exactly one line, got %q", line)
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	if entry["decision_id"] != d.ID || entry["path"] != "backgate/authz/decision" || entry["timestamp"] != "2026-03-01T12:00:00Z" {
		t.Errorf("header fields wrong: %v", entry)
	}
	result := entry["result"].(map[string]any)
	if result["allow"] != true || len(result["reasons"].([]any)) != len(d.Reasons) {
		t.Errorf("result = %v", result)
	}
	labels := entry["labels"].(map[string]any)
	if labels["policy_revision"] != e.Revision() || labels["catalog_revision"] != "cat-7" {
		t.Errorf("labels = %v", labels)
	}
	user := entry["input"].(map[string]any)["user"].(map[string]any)
	if user["ref"] != "user:default/alice" || user["email"] != "alice@acme.example" {
		t.Errorf("input.user = %v", user)
	}
	assertNoTokenFields(t, entry, "")
}

// assertNoTokenFields fails on any key that looks like it could carry a
// credential, anywhere in the entry.
func assertNoTokenFields(t *testing.T, v any, path string) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			lk := strings.ToLower(k)
			for _, bad := range []string{"token", "cookie", "authorization", "secret", "password", "session", "header"} {
				if strings.Contains(lk, bad) {
					t.Errorf("decision log field %s.%s looks like it carries a credential", path, k)
				}
			}
			assertNoTokenFields(t, child, path+"."+k)
		}
	case []any:
		for _, child := range x {
			assertNoTokenFields(t, child, path+"[]")
		}
	}
}
