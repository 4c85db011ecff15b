package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// ErrNotWatchable: the engine serves an embedded or in-memory policy, not a directory.
var ErrNotWatchable = errors.New("policy: only a PolicyDir policy can be watched")

// Watch polls the policy directory every interval (1s if zero) and reloads
// when the content of any *.rego or schemas/*.json file changes. A change
// that does not compile is refused (logged, kept in LastError) and the last
// good policy keeps serving; a later fix is picked up. Watch returns when ctx
// is done. onReload, if not nil, is called after every reload attempt.
func (e *Engine) Watch(ctx context.Context, interval time.Duration, onReload func(revision string, err error)) error {
	if e.dir == "" {
		return ErrNotWatchable
	}
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if fingerprint(e.fsys) == e.seen.Load().([32]byte) {
			continue
		}
		err := e.Reload()
		if onReload != nil {
			onReload(e.Revision(), err)
		}
	}
}

// fingerprint hashes names and contents of the policy files (tests included,
// so a test-only edit is cheap to detect and harmless to reload). Content,
// not mtime, so editors that preserve mtimes or coarse clocks cannot hide a
// change. Read errors are folded in, so a vanished file also counts.
func fingerprint(fsys fs.FS) [32]byte {
	h := sha256.New()
	var names []string
	for _, dir := range []string{".", "schemas"} {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			h.Write([]byte("err:" + dir))
			continue
		}
		for _, en := range entries {
			n := en.Name()
			if !en.IsDir() && (strings.HasSuffix(n, ".rego") || strings.HasSuffix(n, ".json")) {
				names = append(names, path.Join(dir, n))
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		h.Write([]byte(n + "\x00"))
		if err != nil {
			h.Write([]byte("err\x00"))
			continue
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
