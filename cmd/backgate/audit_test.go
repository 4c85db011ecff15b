package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/access"
)

type fixedApprover struct{}

func (fixedApprover) MayApprove(context.Context, access.ApprovalInput) (access.ApprovalResult, error) {
	return access.ApprovalResult{MayApprove: true, Complete: true}, nil
}
func (fixedApprover) MaxDuration(context.Context, string, string) (time.Duration, error) {
	return 24 * time.Hour, nil
}

// TestAuditCommand lists and exports what the access service recorded in
// the database named by the configuration, with filters.
func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "backgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`server: {external_url: "https://gate.example"}
data_dir: %s
oidc: {issuer: "https://idp.example", client_id: x, client_secret: {env: S}}
`, dir)), 0o600)
	ctx := context.Background()
	st, err := access.OpenSQLite(ctx, filepath.Join(dir, "access.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := access.NewService(access.Options{Store: st, Approver: fixedApprover{}})
	if err != nil {
		t.Fatal(err)
	}
	bob := access.Actor{UserRef: "user:default/bob", Email: "bob@example.com", Address: "192.0.2.7", Via: "page"}
	alice := access.Actor{UserRef: "user:default/alice", Email: "alice@example.com", Address: "192.0.2.8", Via: "page"}
	r1, _, err := svc.Request(ctx, bob, "component:default/petstore", "staging", time.Hour, "debugging INC-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Approve(ctx, alice, r1.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Request(ctx, alice, "component:default/other", "prod", time.Hour, "=cmd|' /C calc'!A0"); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errOut := runCLI(t, nil, "audit", "--config", cfg)
	var evs []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &evs) != nil || len(evs) != 3 {
		t.Fatalf("audit: code %d, %d events\n%s%s", code, len(evs), out, errOut)
	}
	code, out, _ = runCLI(t, nil, "audit", "--config", cfg, "--user", "user:default/bob", "--format", "csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(out, "approve") || !strings.Contains(out, "192.0.2.8") {
		t.Fatalf("audit csv for bob: code %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "audit", "--config", cfg, "--service", "component:default/other", "--format", "csv")
	if code != 0 || !strings.Contains(out, "'=cmd") {
		t.Fatalf("a formula-looking reason must be neutralised in CSV: %s", out)
	}
	if code, out, _ := runCLI(t, nil, "audit", "--config", cfg, "--since", "3h", "--until", time.Now().Add(-2*time.Hour).Format(time.RFC3339)); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty window: code %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, nil, "audit", "--config", cfg, "--since", "1h", "--until", time.Now().Add(-2*time.Hour).Format(time.RFC3339)); code != 1 || !strings.Contains(errOut, "is not before") {
		t.Fatalf("reversed window: code %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "audit", "--config", cfg, "--since", "yesterday"); code != 1 || !strings.Contains(errOut, "--since") {
		t.Fatalf("bad --since: %d %s", code, errOut)
	}
}
