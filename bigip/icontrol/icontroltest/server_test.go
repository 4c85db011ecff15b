package icontroltest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/f5devcentral/go-bigip"
)

// These tests drive the fake with go-bigip itself, to check the fake speaks
// what go-bigip expects, and to pin down go-bigip's traps that package
// icontrol works around.

func session(t *testing.T) (*Server, *bigip.BigIP) {
	t.Helper()
	s := New("admin", "pw")
	t.Cleanup(s.Close)
	ca, err := s.WriteCAFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := bigip.NewTokenSession(&bigip.Config{Address: s.URL(), Username: "admin", Password: "pw", TrustedCertificate: ca,
		ConfigOptions: &bigip.ConfigOptions{APICallTimeout: 5e9, TokenTimeout: 600e9, APICallRetries: 1}})
	if err != nil {
		t.Fatalf("go-bigip NewTokenSession against the fake: %v", err)
	}
	return s, b
}

func TestNewTokenSessionSetsTimeout(t *testing.T) {
	s, b := session(t)
	if b.Token == "" || s.Logins() != 1 {
		t.Fatalf("token %q, logins %d", b.Token, s.Logins())
	}
	var patched bool
	for _, r := range s.Requests() {
		if r.Method == http.MethodPatch && strings.HasPrefix(r.Path, "/mgmt/shared/authz/tokens/") && r.Status == 200 {
			patched = true
		}
	}
	if !patched {
		t.Fatal("go-bigip did not set the token timeout")
	}
}

func TestNotFoundIsAnErrorWithF5Message(t *testing.T) {
	_, b := session(t)
	r, err := b.IRule("/Common/nope")
	if r != nil || err == nil || err.Error() != "01020036:3: The requested rule (/Common/nope) was not found." {
		t.Fatalf("IRule of a missing rule = %v, %v", r, err)
	}
	dg, err := b.GetInternalDataGroup("/Common/nope")
	if dg != nil || err == nil || !strings.Contains(err.Error(), "was not found") {
		t.Fatalf("GetInternalDataGroup of a missing group = %v, %v", dg, err)
	}
}

func TestModifyVirtualServerDetachesPool(t *testing.T) {
	s, b := session(t)
	if err := s.AddPool("Common", "p"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRule("Common", "r", "when HTTP_REQUEST {}"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddVirtual("Common", "vs", "/Common/p"); err != nil {
		t.Fatal(err)
	}
	if err := b.ModifyVirtualServer("/Common/vs", &bigip.VirtualServer{Rules: []string{"/Common/r"}}); err != nil {
		t.Fatal(err)
	}
	v, _ := s.Virtual("/Common/vs")
	if v.Pool != "" || len(v.Rules) != 1 {
		t.Fatalf("virtual after ModifyVirtualServer = %+v; the fake should drop the pool like BIG-IP does", v)
	}
}

func TestTransactionWithGoBigip(t *testing.T) {
	s, b := session(t)
	s.ResetCounters()
	tx, err := b.StartTransaction()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateIRule("r", "when HTTP_REQUEST {}"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Rule("/Common/r"); ok {
		t.Fatal("queued command ran before commit")
	}
	if err := b.CommitTransaction(tx.TransID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Rule("/Common/r"); !ok {
		t.Fatal("rule missing after commit")
	}
	if s.Writes() != 3 {
		t.Fatalf("writes = %d, want 3 (start, queued POST, commit)", s.Writes())
	}

	// A failing command rolls the whole transaction back.
	s.FailOn("/Common/bad")
	tx, err = b.StartTransaction()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CreateIRule("r2", "when HTTP_REQUEST {}"); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateIRule("bad", "when HTTP_REQUEST {}"); err != nil {
		t.Fatal(err)
	}
	if err := b.CommitTransaction(tx.TransID); err == nil || !strings.Contains(err.Error(), "/Common/bad") {
		t.Fatalf("commit error = %v, want one naming /Common/bad", err)
	}
	if _, ok := s.Rule("/Common/r2"); ok {
		t.Fatal("r2 kept after a failed transaction")
	}
}

func TestExpiredToken(t *testing.T) {
	s, b := session(t)
	s.ExpireTokens()
	_, err := b.IRules()
	if err == nil || err.Error() != "X-F5-Auth-Token does not exist." {
		t.Fatalf("err = %v", err)
	}
	last := s.Requests()[len(s.Requests())-1]
	if last.Status != http.StatusUnauthorized {
		t.Fatalf("status %d", last.Status)
	}
}

func TestConflictAndValidation(t *testing.T) {
	s, b := session(t)
	if err := b.CreateIRule("r", "when HTTP_REQUEST {}"); err != nil {
		t.Fatal(err)
	}
	err := b.CreateIRule("r", "when HTTP_REQUEST {}")
	if err == nil || !strings.Contains(err.Error(), "already exists in partition Common") {
		t.Fatalf("second create: %v", err)
	}
	s.ConflictOnCreate("/Common/r2")
	if err := b.CreateIRule("r2", "when HTTP_REQUEST {}"); err == nil {
		t.Fatal("ConflictOnCreate did not conflict")
	}
	if text, ok := s.Rule("/Common/r2"); !ok || !strings.Contains(text, "concurrently") {
		t.Fatalf("foreign r2 = %q, %v", text, ok)
	}
	// Attaching a missing rule is refused.
	if err := s.AddVirtual("Common", "vs", "", "/Common/missing"); err == nil {
		t.Fatal("virtual with a missing rule accepted")
	}
	// A rule in use cannot be deleted.
	if err := s.AddVirtual("Common", "vs", "", "/Common/r"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteIRule("/Common/r"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("delete of a rule in use: %v", err)
	}
}

func TestCollectionShape(t *testing.T) {
	s, b := session(t)
	if err := s.SetDataGroup("Common", "dg", "string", map[string]string{"b": "2", "a": "1"}); err != nil {
		t.Fatal(err)
	}
	raw, err := b.APICall(&bigip.APIRequest{Method: "get", URL: "ltm/data-group/internal"})
	if err != nil {
		t.Fatal(err)
	}
	var coll struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind     string `json:"kind"`
			FullPath string `json:"fullPath"`
			SelfLink string `json:"selfLink"`
			Records  []struct{ Name string }
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &coll); err != nil {
		t.Fatal(err)
	}
	if coll.Kind != "tm:ltm:data-group:internal:internalcollectionstate" || len(coll.Items) != 1 {
		t.Fatalf("collection = %+v", coll)
	}
	it := coll.Items[0]
	if it.Kind != "tm:ltm:data-group:internal:internalstate" || it.FullPath != "/Common/dg" ||
		!strings.HasPrefix(it.SelfLink, "https://localhost/mgmt/tm/ltm/data-group/internal/~Common~dg") ||
		len(it.Records) != 2 || it.Records[0].Name != "a" {
		t.Fatalf("item = %+v", it)
	}
}
