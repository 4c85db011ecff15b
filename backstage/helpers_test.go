package backstage

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedNow() time.Time { return t0 }

// golden compares v (as indented JSON) to testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		d := filepath.Join(t.TempDir(), name)
		_ = os.WriteFile(d, got, 0o644)
		t.Errorf("%s differs from golden; got written to %s (run with -update if the change is intended)", name, d)
	}
}

func mustBuild(t testing.TB, snap *Snapshot, opts BuildOptions) *Catalog {
	t.Helper()
	c, err := Build(snap, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return c
}

func fetchFS(t testing.TB, fsys fs.FS, roots ...string) *Snapshot {
	t.Helper()
	s := &FileSource{FS: fsys, Roots: roots, Name: "acme", Now: fixedNow}
	snap, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return snap
}
