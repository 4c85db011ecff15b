package backstage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"
)

// ErrNoCatalog is returned by Init when neither the source nor the data
// directory yielded a catalog.
var ErrNoCatalog = errors.New("no catalog available")

// SyncerOptions configure a Syncer.
type SyncerOptions struct {
	Source Source       // required
	Build  BuildOptions // derivation options
	// DataDir keeps the last good snapshot (SnapshotFileName, mode 0600). Empty disables persistence.
	DataDir string
	// Interval between refreshes (default 1m).
	Interval time.Duration
	// MaxStaleness: past it since the last successful fetch, Stale reports
	// true and the proxy must fail closed (default 15m).
	MaxStaleness time.Duration
	// Now is the clock (nil = time.Now); After the timer (nil = time.After).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// OnUpdate is called (synchronously, from Init/SyncOnce/Run) with each
	// catalog whose Revision differs from the previous one.
	OnUpdate func(*Catalog)
}

// Syncer runs the refresh loop: it fetches, builds, persists and publishes
// catalogs, and keeps serving the last good one when the source fails.
type Syncer struct {
	o SyncerOptions

	mu          sync.RWMutex
	cur         *Catalog
	lastGood    time.Time // FetchedAt of the current catalog's snapshot (or last confirming fetch)
	lastAttempt time.Time
	lastErr     error
	fromDisk    bool
	lastPersist time.Time
}

// SyncStatus is a point-in-time view for /readyz and logs.
type SyncStatus struct {
	Revision    string
	Source      string
	Entities    int
	Problems    int
	LastSuccess time.Time
	LastAttempt time.Time
	LastError   string
	FromDisk    bool // the current catalog was loaded from DataDir, not fetched
	Stale       bool
}

// NewSyncer validates options.
func NewSyncer(o SyncerOptions) (*Syncer, error) {
	if o.Source == nil {
		return nil, errors.New("backstage syncer: Source is required")
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := Build(&Snapshot{}, o.Build); err != nil {
		return nil, fmt.Errorf("backstage syncer: %w", err)
	}
	return &Syncer{o: o}, nil
}

func (s *Syncer) snapshotPath() string { return filepath.Join(s.o.DataDir, SnapshotFileName) }

// Init performs the first fetch; if it fails it loads the persisted snapshot
// (if any). It returns ErrNoCatalog (wrapping the causes) when neither worked;
// Run can still be started and will keep trying.
func (s *Syncer) Init(ctx context.Context) error {
	fetchErr := s.SyncOnce(ctx)
	if fetchErr == nil {
		return nil
	}
	if s.o.DataDir == "" {
		return fmt.Errorf("%w: %w", ErrNoCatalog, fetchErr)
	}
	snap, err := ReadSnapshotFile(s.snapshotPath())
	if err != nil {
		return fmt.Errorf("%w: fetch: %w; persisted: %w", ErrNoCatalog, fetchErr, err)
	}
	c, err := Build(snap, s.o.Build)
	if err != nil {
		return fmt.Errorf("%w: fetch: %w; persisted: %w", ErrNoCatalog, fetchErr, err)
	}
	if sd, ok := s.o.Source.(interface{ Seed(*Snapshot) }); ok {
		sd.Seed(snap)
	}
	s.o.Logger.Warn("backstage unreachable at start-up; serving the persisted catalog",
		"path", s.snapshotPath(), "fetched_at", snap.FetchedAt, "revision", c.Revision(), "err", fetchErr)
	s.mu.Lock()
	s.cur, s.lastGood, s.fromDisk = c, snap.FetchedAt, true
	s.mu.Unlock()
	if s.o.OnUpdate != nil {
		s.o.OnUpdate(c)
	}
	return nil
}

// SyncOnce fetches and publishes one catalog. On error the previous catalog
// stays in place.
func (s *Syncer) SyncOnce(ctx context.Context) (err error) {
	now := s.o.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("backstage sync: panic: %v", r)
		}
		s.mu.Lock()
		s.lastAttempt, s.lastErr = now, err
		s.mu.Unlock()
		if err != nil {
			s.o.Logger.Warn("backstage catalog refresh failed; keeping the last good catalog", "err", err)
		}
	}()
	snap, err := s.o.Source.Fetch(ctx)
	if err != nil {
		return err
	}
	pb, err := startBuild(snap, s.o.Build)
	if err != nil {
		return err
	}
	s.mu.RLock()
	prev, lastPersist := s.cur, s.lastPersist
	s.mu.RUnlock()
	changed := prev == nil || prev.Revision() != pb.revision()
	c := prev
	if changed { // an unchanged catalog is not derived again: prev is the same catalog
		c = pb.finish()
	}
	persisted := false
	if s.o.DataDir != "" && (changed || s.fromDiskNow() || now.Sub(lastPersist) >= s.o.MaxStaleness/2) {
		if err := WriteSnapshotFile(s.snapshotPath(), snap); err != nil {
			s.o.Logger.Error("cannot persist the catalog snapshot", "err", err)
		} else {
			persisted = true
		}
	}
	for _, p := range c.Problems() {
		s.o.Logger.Debug("catalog problem", "ref", p.Ref, "source", p.Source, "problem", p.Message)
	}
	s.mu.Lock()
	s.lastGood, s.fromDisk = snap.FetchedAt, false
	if persisted {
		s.lastPersist = now
	}
	if changed {
		s.cur = c
	}
	s.mu.Unlock()
	if changed {
		s.o.Logger.Info("backstage catalog updated", "revision", c.Revision(), "entities", c.EntityCount(), "problems", len(c.Problems()), "routes", len(c.Routes()))
		if s.o.OnUpdate != nil {
			s.o.OnUpdate(c)
		}
	}
	return nil
}

func (s *Syncer) fromDiskNow() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fromDisk
}

// Run refreshes every Interval until ctx is cancelled; it returns ctx.Err().
func (s *Syncer) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.o.After(s.o.Interval):
		}
		_ = s.SyncOnce(ctx)
	}
}

// Current returns the catalog being served (nil before any succeeded).
func (s *Syncer) Current() *Catalog {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// Stale reports whether the proxy must fail closed: no catalog at all, or
// the last successful fetch is older than MaxStaleness.
func (s *Syncer) Stale(now time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur == nil || now.Sub(s.lastGood) > s.o.MaxStaleness
}

// Status describes the syncer at now.
func (s *Syncer) Status(now time.Time) SyncStatus {
	stale := s.Stale(now)
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := SyncStatus{LastSuccess: s.lastGood, LastAttempt: s.lastAttempt, FromDisk: s.fromDisk, Stale: stale}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	if s.cur != nil {
		st.Revision, st.Source, st.Entities, st.Problems = s.cur.Revision(), s.cur.Source(), s.cur.EntityCount(), len(s.cur.Problems())
	}
	return st
}
