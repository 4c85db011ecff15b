package backstage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type scriptedSource struct {
	results []func() (*Snapshot, error)
	calls   int
}

func (s *scriptedSource) Fetch(context.Context) (*Snapshot, error) {
	i := min(s.calls, len(s.results)-1)
	s.calls++
	return s.results[i]()
}

func snapWith(at time.Time, users ...string) func() (*Snapshot, error) {
	return func() (*Snapshot, error) {
		s := &Snapshot{Source: "test", FetchedAt: at}
		for _, u := range users {
			s.Entities = append(s.Entities, Entity{APIVersion: "v1", Kind: "User", Metadata: Metadata{Name: u}})
		}
		return s, nil
	}
}

func failing() (*Snapshot, error) { return nil, errors.New("backstage down") }

func TestSyncerPersistAndReload(t *testing.T) {
	dir := t.TempDir()
	now := t0
	clock := func() time.Time { return now }
	var updates []string
	src := &scriptedSource{results: []func() (*Snapshot, error){snapWith(t0, "a"), failing, snapWith(t0.Add(2*time.Minute), "a"), snapWith(t0.Add(3*time.Minute), "a", "b")}}
	s, err := NewSyncer(SyncerOptions{Source: src, DataDir: dir, MaxStaleness: 10 * time.Minute, Now: clock,
		OnUpdate: func(c *Catalog) { updates = append(updates, c.Revision()) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, SnapshotFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", fi, err)
	}
	rev1 := s.Current().Revision()
	if len(updates) != 1 || s.Stale(now) {
		t.Fatalf("updates %v stale %v", updates, s.Stale(now))
	}
	// Failure keeps the last good catalog.
	now = t0.Add(time.Minute)
	if err := s.SyncOnce(context.Background()); err == nil || s.Current().Revision() != rev1 || s.Status(now).LastError == "" {
		t.Fatalf("failed sync: err=%v status=%+v", err, s.Status(now))
	}
	// Same content: no OnUpdate, but freshness advances.
	now = t0.Add(2 * time.Minute)
	if err := s.SyncOnce(context.Background()); err != nil || len(updates) != 1 {
		t.Fatalf("unchanged sync: %v, updates %v", err, updates)
	}
	if !s.Status(now).LastSuccess.Equal(t0.Add(2*time.Minute)) || s.Stale(t0.Add(12*time.Minute)) || !s.Stale(t0.Add(12*time.Minute+time.Second)) {
		t.Errorf("status %+v", s.Status(now))
	}
	// Changed content: OnUpdate.
	now = t0.Add(3 * time.Minute)
	if err := s.SyncOnce(context.Background()); err != nil || len(updates) != 2 || updates[1] == rev1 {
		t.Fatalf("changed sync: %v, updates %v", err, updates)
	}
	rev2 := s.Current().Revision()

	// Restart with Backstage unreachable: the persisted snapshot is served.
	s2, _ := NewSyncer(SyncerOptions{Source: &scriptedSource{results: []func() (*Snapshot, error){failing}}, DataDir: dir,
		MaxStaleness: 10 * time.Minute, Now: clock})
	if err := s2.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := s2.Status(t0.Add(5 * time.Minute))
	if st.Revision != rev2 || !st.FromDisk || st.Stale || st.Entities != 2 {
		t.Errorf("reloaded status %+v", st)
	}
	if !s2.Stale(t0.Add(13*time.Minute + time.Second)) {
		t.Error("persisted snapshot past max staleness must be stale")
	}
}

func TestSyncerNoCatalog(t *testing.T) {
	s, _ := NewSyncer(SyncerOptions{Source: &scriptedSource{results: []func() (*Snapshot, error){failing}}, DataDir: t.TempDir(), Now: fixedNow})
	if err := s.Init(context.Background()); !errors.Is(err, ErrNoCatalog) || !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("err = %v", err)
	}
	if !s.Stale(t0) || s.Current() != nil {
		t.Error("no catalog must be stale")
	}
	if _, err := NewSyncer(SyncerOptions{}); err == nil {
		t.Error("missing source: want error")
	}
	if _, err := NewSyncer(SyncerOptions{Source: &scriptedSource{}, Build: BuildOptions{Identity: IdentityOptions{UserMatch: []string{"bogus"}}}}); err == nil {
		t.Error("bad identity option: want error")
	}
}

func TestSyncerRun(t *testing.T) {
	ticks := make(chan time.Time)
	var asked []time.Duration
	updated := make(chan string, 4)
	src := &scriptedSource{results: []func() (*Snapshot, error){snapWith(t0, "a"), snapWith(t0, "a", "b")}}
	s, _ := NewSyncer(SyncerOptions{Source: src, Interval: 42 * time.Second, Now: fixedNow,
		After:    func(d time.Duration) <-chan time.Time { asked = append(asked, d); return ticks },
		OnUpdate: func(c *Catalog) { updated <- c.Revision() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	ticks <- t0
	r1 := <-updated
	ticks <- t0
	r2 := <-updated
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if r1 == r2 || src.calls != 2 || len(asked) < 2 || asked[0] != 42*time.Second {
		t.Errorf("r1 %s r2 %s calls %d asked %v", r1, r2, src.calls, asked)
	}
}

// TestUnchangedRefreshDerivesNothing: a refresh whose entities hash to the
// revision being served stops after hashing; it allocates well under half
// of what building the catalog does (about 30% here, against more than
// 100% if it built the catalog again and threw it away).
func TestUnchangedRefreshDerivesNothing(t *testing.T) {
	snap := genCatalog(1000, 200, 2000)
	s := syncedStatic(t, snap)
	first, ctx := s.Current(), context.Background()
	refresh := testing.AllocsPerRun(3, func() {
		if err := s.SyncOnce(ctx); err != nil {
			t.Fatal(err)
		}
	})
	build := testing.AllocsPerRun(3, func() {
		if _, err := Build(snap, BuildOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if s.Current() != first {
		t.Error("an unchanged refresh replaced the catalog")
	}
	if refresh > build/2 {
		t.Errorf("unchanged refresh: %.0f allocations, building the catalog: %.0f; want under half", refresh, build)
	}
	t.Logf("unchanged refresh %.0f allocations, build %.0f", refresh, build)
}

// syncedStatic is a syncer over a StaticSource of snap that has synced once.
func syncedStatic(tb testing.TB, snap *Snapshot) *Syncer {
	tb.Helper()
	s, err := NewSyncer(SyncerOptions{Source: StaticSource{Snapshot: snap}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.SyncOnce(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestStaticSource: each fetch is a copy of the snapshot, fetched at the
// clock's now; the snapshot itself is not changed.
func TestStaticSource(t *testing.T) {
	snap := &Snapshot{Source: "generated", FetchedAt: t0, Entities: []Entity{{Kind: "User"}}}
	now := t0.Add(time.Hour)
	got, err := StaticSource{Snapshot: snap, Now: func() time.Time { return now }}.Fetch(context.Background())
	if err != nil || got == snap || !got.FetchedAt.Equal(now) || got.Source != "generated" || len(got.Entities) != 1 {
		t.Fatalf("Fetch = %+v, %v", got, err)
	}
	if !snap.FetchedAt.Equal(t0) {
		t.Errorf("the source's snapshot was changed: fetched at %v", snap.FetchedAt)
	}
	if _, err := (StaticSource{}).Fetch(context.Background()); err == nil {
		t.Error("Fetch without a snapshot: want an error")
	}
}
