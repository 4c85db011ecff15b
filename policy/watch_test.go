package policy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReloadRefusesBrokenPolicy(t *testing.T) {
	dir := writeDir(t)
	var logs bytes.Buffer
	e := newTestEngine(t, Options{PolicyDir: dir, Logger: newTextLogger(&logs)})
	if err := e.SetCatalog(smallCatalog("r")); err != nil {
		t.Fatal(err)
	}
	good := e.Revision()
	p := filepath.Join(dir, "settings.rego")
	orig, _ := os.ReadFile(p)

	// Broken: a syntax error on a known line.
	os.WriteFile(p, append(append([]byte{}, orig...), []byte("\nbroken := {\n")...), 0o644)
	err := e.Reload()
	var pe PolicyErrors
	if !errors.As(err, &pe) || !strings.HasSuffix(pe[0].File, "settings.rego") || pe[0].Line == 0 {
		t.Fatalf("Reload = %v, want PolicyErrors located in settings.rego", err)
	}
	if e.LastError() == nil || e.Revision() != good {
		t.Fatalf("LastError %v revision %s; want the error kept and %s still serving", e.LastError(), e.Revision(), good)
	}
	if !strings.Contains(logs.String(), "policy reload refused") || !strings.Contains(logs.String(), "settings.rego:") {
		t.Errorf("refusal not logged with file:line: %s", logs.String())
	}
	d, err := e.Decide(context.Background(), req("carol", "component:default/petstore", "dev"))
	if err != nil || !d.Allow || d.PolicyRevision != good {
		t.Fatalf("old policy should keep serving: %+v %v", d, err)
	}

	// Fixed, with a real change: the engineering org becomes dept-b only.
	os.WriteFile(p, []byte(strings.Replace(string(orig), `"group:default/acme-corp"`, `"group:default/team-x"`, 1)), 0o644)
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.LastError() != nil || e.Revision() == good {
		t.Fatalf("after fix: LastError %v, revision unchanged %v", e.LastError(), e.Revision() == good)
	}
	d, _ = e.Decide(context.Background(), req("erin", "component:default/petstore", "dev"))
	if d.Allow {
		t.Fatal("new settings not in force: erin (sre-oncall) still allowed into dev")
	}
}

func TestWatchPicksUpChanges(t *testing.T) {
	dir := writeDir(t)
	e := newTestEngine(t, Options{PolicyDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan error, 10)
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx, 5*time.Millisecond, func(_ string, err error) { events <- err }) }()

	p := filepath.Join(dir, "authz.rego")
	orig, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(orig), "input.user.ref]", "input.usr.ref]", 1)), 0o644)
	err := waitEvent(t, events)
	for err != nil && !strings.Contains(err.Error(), "input.usr") {
		err = waitEvent(t, events) // a half-written file may be seen first
	}
	if err == nil {
		t.Fatal("watch accepted a policy with input.usr")
	}
	before := e.Revision()
	os.WriteFile(p, append(orig, []byte("\n# comment-only change\n")...), 0o644)
	// A poll may catch the file half-written (refused); the next poll loads it.
	for err := waitEvent(t, events); err != nil; err = waitEvent(t, events) {
		t.Logf("intermediate refusal: %v", err)
	}
	if e.Revision() == before {
		t.Fatal("revision did not change")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := newTestEngine(t, Options{}).Watch(ctx, 0, nil); !errors.Is(err, ErrNotWatchable) {
		t.Fatalf("Watch on embedded policy = %v", err)
	}
}

func waitEvent(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s")
		return nil
	}
}
