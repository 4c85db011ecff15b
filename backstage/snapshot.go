package backstage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Source fetches the whole catalog. Implementations: *FileSource, *RESTSource,
// StaticSource.
type Source interface {
	Fetch(ctx context.Context) (*Snapshot, error)
}

// StaticSource is a Source whose catalog never changes: every Fetch returns
// a copy of Snapshot fetched at Now (nil: time.Now), as a live Backstage
// with nothing new would answer. The load benchmark serves its generated
// catalog with it.
type StaticSource struct {
	Snapshot *Snapshot
	Now      func() time.Time
}

// Fetch implements Source.
func (s StaticSource) Fetch(context.Context) (*Snapshot, error) {
	if s.Snapshot == nil {
		return nil, errors.New("backstage: static source has no snapshot")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	cp := *s.Snapshot
	cp.FetchedAt = now()
	return &cp, nil
}

// Problem is a non-fatal defect found while loading or deriving the catalog:
// the offending entity (or file) is skipped or the bad field ignored, and the
// rest of the catalog is still used.
type Problem struct {
	Ref     string `json:"ref,omitempty"`    // entity ref, when known
	Source  string `json:"source,omitempty"` // file, URL or API that supplied it
	Message string `json:"message"`
}

func (p Problem) String() string {
	s := p.Message
	if p.Ref != "" {
		s = p.Ref + ": " + s
	}
	if p.Source != "" {
		s = p.Source + ": " + s
	}
	return s
}

// Snapshot is the raw result of one fetch: the entities and the problems met
// while fetching them. It is what the Syncer persists.
type Snapshot struct {
	Source    string    `json:"source"`
	FetchedAt time.Time `json:"fetched_at"`
	Entities  []Entity  `json:"entities"`
	Problems  []Problem `json:"problems,omitempty"`
}

const snapshotFormat = 1

type snapshotFile struct {
	Format   int       `json:"format"`
	Snapshot *Snapshot `json:"snapshot"`
}

// SnapshotFileName is the file the Syncer keeps in its data directory.
const SnapshotFileName = "catalog-snapshot.json"

// WriteSnapshotFile writes snap to path atomically: a temp file in the same
// directory, mode 0600, fsynced, then renamed over path.
func WriteSnapshotFile(path string, snap *Snapshot) error {
	b, err := json.Marshal(snapshotFile{Format: snapshotFormat, Snapshot: snap})
	if err != nil {
		return fmt.Errorf("encode catalog snapshot: %w", err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".catalog-snapshot-*.tmp")
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w", dir, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	ok = true
	return nil
}

// ErrNoSnapshot is returned by ReadSnapshotFile when the file does not exist.
var ErrNoSnapshot = errors.New("no persisted catalog snapshot")

// ReadSnapshotFile reads a snapshot written by WriteSnapshotFile.
func ReadSnapshotFile(path string) (*Snapshot, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoSnapshot, path)
	}
	if err != nil {
		return nil, fmt.Errorf("read catalog snapshot: %w", err)
	}
	var f snapshotFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode catalog snapshot %s: %w", path, err)
	}
	if f.Format != snapshotFormat || f.Snapshot == nil {
		return nil, fmt.Errorf("catalog snapshot %s: unsupported format %d", path, f.Format)
	}
	return f.Snapshot, nil
}
