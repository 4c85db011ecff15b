package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backgate/backgate/bigip"
	"github.com/backgate/backgate/bigip/icontrol/icontroltest"
)

// runCLI runs the backgate command line in-process.
func runCLI(t *testing.T, getenv map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), &env{Stdout: &o, Stderr: &e, Getenv: func(k string) string { return getenv[k] }}, args)
	return code, o.String(), e.String()
}

func TestCLIBasics(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"no args", nil, 2, "Commands:", ""},
		{"help", []string{"help"}, 0, "serve", ""},
		{"unknown", []string{"bogus"}, 2, "", `unknown command "bogus"`},
		{"version", []string{"version"}, 0, "backgate ", ""},
		{"serve needs config", []string{"serve"}, 2, "", "--config FILE is required"},
		{"serve check", []string{"serve", "--config", "../../configs/example.yaml", "--check"}, 0, "configuration is valid", ""},
		{"serve help", []string{"serve", "--help"}, 0, "", "Usage: backgate serve"},
		{"policy no sub", []string{"policy"}, 2, "", "policy check|eval|test"},
		{"policy bad sub", []string{"policy", "nope"}, 2, "", `unknown subcommand "nope"`},
		{"eval needs flags", []string{"policy", "eval"}, 2, "", "--user and --url are required"},
		{"eval unknown host", []string{"policy", "eval", "--user", "a@example.com", "--url", "http://nowhere.example/"}, 1, "", "no route for"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Fatalf("code %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
		})
	}
}

func TestServeRefusesBadConfigNamingTheField(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte(`server: {external_url: "https://gate.example"}
oidc: {issuer: "https://idp.example", client_id: x, client_secret: {env: S}}
routes:
  - {host: a.example, upstream: "ftp://x", service: "component:default/a", environment: prod}
`), 0o600)
	code, _, errOut := runCLI(t, nil, "serve", "--config", p)
	if code != 1 || !strings.Contains(errOut, `routes[0].upstream: "ftp://x" is not an http(s) URL`) {
		t.Fatalf("code %d stderr %s", code, errOut)
	}
}

func TestPolicyEvalAgainstDemoCatalog(t *testing.T) {
	tests := []struct {
		user, url string
		code      int
		want      string
	}{
		{"alice@example.com", "http://petstore-staging.demo.localhost:8080/x", 0, "ALLOW"},
		{"bob@example.com", "http://petstore-staging.demo.localhost:8080/x", 1, "DENY"},
		{"nobody@example.com", "http://petstore-dev.demo.localhost/", 1, "DENY"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "policy", "eval", "--user", tt.user, "--url", tt.url)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Fatalf("code %d\n%s\n%s", code, out, errOut)
			}
		})
	}
	code, out, _ := runCLI(t, nil, "policy", "eval", "--explain", "--user", "alice@example.com", "--url", "http://petstore.demo.localhost/")
	if code != 0 || !strings.Contains(out, "Enter") {
		t.Fatalf("--explain printed no trace (code %d):\n%s", code, out)
	}
}

func TestCatalogShow(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "catalog", "show", "user", "alice")
	if code != 0 || !strings.Contains(out, `"group:default/team-c"`) || !strings.Contains(out, `"group:default/boxoffice"`) {
		t.Fatalf("code %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, nil, "catalog", "show", "component", "petstore-staging")
	if code != 0 || !strings.Contains(out, "petstore-staging.demo.localhost") {
		t.Fatalf("component: code %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, nil, "catalog", "show", "user", "mallory"); code != 1 || !strings.Contains(errOut, "not in the catalog") {
		t.Fatalf("unknown user: code %d %s", code, errOut)
	}
}

func TestPolicyTestAndCheck(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "policy", "test")
	if code != 0 || !strings.Contains(out, "0 failed") {
		t.Fatalf("policy test: %d\n%s%s", code, out, errOut)
	}
	// A copy of the shipped policy with one typo appended: input.usr.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../rego")); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, nil, "policy", "check", dir); code != 0 || !strings.Contains(out, "decisions are evaluated by: planned\n") {
		t.Fatalf("policy check on the shipped policy: %d %s%s", code, out, errOut)
	}
	// A policy the planned evaluator cannot run (here: with) still checks,
	// and says topdown will decide, and why.
	withDir := t.TempDir()
	if err := os.CopyFS(withDir, os.DirFS("../../rego")); err != nil {
		t.Fatal(err)
	}
	settings, _ := os.ReadFile(filepath.Join(withDir, "settings.rego"))
	os.WriteFile(filepath.Join(withDir, "settings.rego"), append(settings, []byte("\nprobe := x if {\n\tx := environments with input.route as {}\n}\n")...), 0o600)
	authzSrc, _ := os.ReadFile(filepath.Join(withDir, "authz.rego"))
	os.WriteFile(filepath.Join(withDir, "authz.rego"), append(authzSrc, []byte("\ndeny contains {\"rule\": \"probe\", \"reason\": \"probe\"} if {\n\tnot settings.probe\n}\n")...), 0o600)
	if code, out, errOut := runCLI(t, nil, "policy", "check", withDir); code != 0 || !strings.Contains(out, "decisions are evaluated by: topdown (") || !strings.Contains(out, "WithStmt") {
		t.Fatalf("policy check on a policy with `with`: %d %s%s", code, out, errOut)
	}
	authz, _ := os.ReadFile(filepath.Join(dir, "authz.rego"))
	lines := strings.Count(string(authz), "\n")
	os.WriteFile(filepath.Join(dir, "authz.rego"), append(authz, []byte("\ntypo_rule if input.usr == \"x\"\n")...), 0o600)
	code, _, errOut = runCLI(t, nil, "policy", "check", dir)
	if want := fmt.Sprintf("authz.rego:%d", lines+2); code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("policy check on a broken policy: code %d\n%s", code, errOut)
	}
}

// bigipConfig writes a config for a fake BIG-IP and returns its path.
func bigipConfig(t *testing.T, dev *icontroltest.Server) string {
	t.Helper()
	dir := t.TempDir()
	ca, err := dev.WriteCAFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "backgate.yaml")
	cfg := fmt.Sprintf(`server: {external_url: "https://gate.example"}
data_dir: %s
oidc: {issuer: "https://idp.example", client_id: x, client_secret: {env: S}}
routes:
  - {host: pay.example, upstream: "https://10.0.0.1", service: "component:default/payments", environment: prod, pool: /Common/payments_prod}
bigip:
  url: %s
  username: admin
  password: {env: BIGIP_PASSWORD}
  ca_file: %s
  virtual_servers: [vs_app]
`, filepath.Join(dir, "data"), dev.URL(), ca)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBigIPRenderPlanApplyRotate(t *testing.T) {
	dev := icontroltest.New("admin", "s3cret")
	defer dev.Close()
	if err := dev.AddPool("Common", "app_pool"); err != nil {
		t.Fatal(err)
	}
	if err := dev.SetRule("Common", "existing_rule", "when HTTP_REQUEST { }"); err != nil {
		t.Fatal(err)
	}
	if err := dev.AddVirtual("Common", "vs_app", "/Common/app_pool", "/Common/existing_rule"); err != nil {
		t.Fatal(err)
	}
	cfg := bigipConfig(t, dev)
	envs := map[string]string{"BIGIP_PASSWORD": "s3cret"}

	out := t.TempDir()
	if code, o, e := runCLI(t, envs, "bigip", "render", "--config", cfg, "--out", out); code != 0 {
		t.Fatalf("render: %s%s", o, e)
	}
	for _, f := range []string{"backgate_edge_verify.tcl", "as3.json", "bigip.conf", "datagroups.json"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st, err)
		}
	}

	code, plan, e := runCLI(t, envs, "bigip", "plan", "--config", cfg)
	if code != 0 || !strings.Contains(plan, bigip.RuleName) || !strings.Contains(plan, "component:default/payments@prod") {
		t.Fatalf("plan: code %d\n%s%s", code, plan, e)
	}
	if dev.Writes() != 0 {
		t.Fatalf("plan wrote %d times", dev.Writes())
	}
	if code, o, e := runCLI(t, envs, "bigip", "apply", "--config", cfg); code != 0 {
		t.Fatalf("apply: %s%s", o, e)
	}
	v, _ := dev.Virtual("/Common/vs_app")
	if v.Pool != "/Common/app_pool" || !strings.Contains(strings.Join(v.Rules, ","), "existing_rule") || !strings.Contains(strings.Join(v.Rules, ","), bigip.RuleName) {
		t.Fatalf("virtual after apply: %+v", v)
	}
	dev.ResetCounters()
	if code, o, _ := runCLI(t, envs, "bigip", "apply", "--config", cfg); code != 0 || !strings.Contains(o, "in sync") || dev.Writes() != 0 {
		t.Fatalf("second apply: code %d writes %d\n%s", code, dev.Writes(), o)
	}

	_, before, _ := dev.DataGroup("/Common/" + bigip.KeysDataGroup)
	code, o, e := runCLI(t, envs, "keys", "rotate", "--config", cfg, "--propagation", "1s")
	if code != 0 || !strings.Contains(o, "new edge key") {
		t.Fatalf("rotate: %d\n%s%s", code, o, e)
	}
	_, after, _ := dev.DataGroup("/Common/" + bigip.KeysDataGroup)
	if len(after) != len(before)+1 {
		t.Fatalf("keys on BIG-IP: before %d after %d", len(before), len(after))
	}
	for id := range before {
		if _, ok := after[id]; !ok {
			t.Fatalf("old key %s removed during rotation", id)
		}
	}

	if code, _, e := runCLI(t, map[string]string{"BIGIP_PASSWORD": "wrong"}, "bigip", "plan", "--config", cfg); code != 1 || e == "" {
		t.Fatalf("wrong password: code %d %s", code, e)
	}
}
