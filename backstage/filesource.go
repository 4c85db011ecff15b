package backstage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// FileSource reads catalog-info.yaml files from a file system (os.DirFS for a
// directory, or an embed.FS such as configs.Catalog) and follows the relative
// targets of Location entities.
//
// Targets are resolved relative to the directory of the file declaring them
// and may be globs. Absolute paths, URLs and paths escaping the root of FS are
// refused with a Problem; so are cycles (a file that, through Locations,
// includes itself). A file reached twice by different paths is read once.
type FileSource struct {
	// FS is the catalog root. Required.
	FS fs.FS
	// Roots are the entry files, slash-separated paths or globs inside FS.
	// Empty means "*.yaml" (every YAML file at the root).
	Roots []string
	// Name identifies the source in snapshots and problems, e.g. "file:/etc/backgate/catalog".
	Name string
	// Now stamps snapshots; nil means time.Now.
	Now func() time.Time
	// MaxFiles bounds how many files one fetch reads (0 = 10000).
	MaxFiles int
}

type fileWalk struct {
	src      *FileSource
	ents     []Entity
	probs    []Problem
	loaded   map[string]bool // file -> read successfully
	onStack  map[string]bool
	maxFiles int
	nfiles   int
}

// Fetch loads the catalog. It fails only when no root file can be read; bad
// documents and bad targets are reported in Snapshot.Problems.
func (s *FileSource) Fetch(ctx context.Context) (*Snapshot, error) {
	if s.FS == nil {
		return nil, errors.New("backstage file source: FS is nil")
	}
	roots := s.Roots
	if len(roots) == 0 {
		roots = []string{"*.yaml"}
	}
	w := &fileWalk{src: s, loaded: map[string]bool{}, onStack: map[string]bool{}, maxFiles: s.MaxFiles}
	if w.maxFiles <= 0 {
		w.maxFiles = 10000
	}
	read := 0
	for _, r := range roots {
		files, err := expand(s.FS, r)
		if err != nil {
			return nil, fmt.Errorf("backstage file source %s: root %q: %w", s.Name, r, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("backstage file source %s: root %q matches no file", s.Name, r)
		}
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if w.visit(ctx, f, "") {
				read++
			}
		}
	}
	if read == 0 {
		return nil, fmt.Errorf("backstage file source %s: no root file could be read: %v", s.Name, w.probs)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return &Snapshot{Source: s.Name, FetchedAt: now().UTC(), Entities: w.ents, Problems: w.probs}, nil
}

func expand(fsys fs.FS, p string) ([]string, error) {
	if !fs.ValidPath(p) {
		return nil, fmt.Errorf("path %q is absolute or escapes the catalog root", p)
	}
	if !strings.ContainsAny(p, "*?[") {
		return []string{p}, nil
	}
	m, err := fs.Glob(fsys, p)
	if err != nil {
		return nil, err
	}
	sort.Strings(m)
	return m, nil
}

// visit reads one file and recurses into its Locations. It reports whether
// the file was read.
func (w *fileWalk) visit(ctx context.Context, file, from string) bool {
	if w.onStack[file] {
		w.probs = append(w.probs, Problem{Source: from, Message: fmt.Sprintf("location cycle: %q includes itself", file)})
		return false
	}
	if ok, seen := w.loaded[file]; seen {
		return ok
	}
	if w.nfiles >= w.maxFiles {
		w.probs = append(w.probs, Problem{Source: file, Message: fmt.Sprintf("skipped: more than %d catalog files", w.maxFiles)})
		return false
	}
	w.nfiles++
	w.loaded[file] = false
	data, err := readLimited(w.src.FS, file)
	if err != nil {
		msg := fmt.Sprintf("cannot read: %v", err)
		if from != "" {
			msg = fmt.Sprintf("target %q: %v", file, err)
		}
		w.probs = append(w.probs, Problem{Source: orDefault(from, file), Message: msg})
		return false
	}
	w.loaded[file] = true
	ents, probs := ParseDocuments(data, file)
	w.probs = append(w.probs, probs...)
	w.onStack[file] = true
	defer delete(w.onStack, file)
	for _, e := range ents {
		w.ents = append(w.ents, e)
		if !strings.EqualFold(e.Kind, KindLocation) {
			continue
		}
		targets := append([]string(nil), e.Spec.Targets...)
		if e.Spec.Target != "" {
			targets = append([]string{e.Spec.Target}, targets...)
		}
		for _, t := range targets {
			if ctx.Err() != nil {
				return true
			}
			w.follow(ctx, file, e.Ref().String(), e.Spec.Type, t)
		}
	}
	return true
}

func (w *fileWalk) follow(ctx context.Context, file, locRef, typ, target string) {
	bad := func(msg string) {
		w.probs = append(w.probs, Problem{Source: file, Ref: locRef, Message: msg})
	}
	switch strings.ToLower(typ) {
	case "", "file", "url":
	default:
		bad(fmt.Sprintf("target %q: location type %q is not supported", target, typ))
		return
	}
	if strings.Contains(target, "://") || strings.HasPrefix(target, "/") || strings.HasPrefix(target, `\`) {
		bad(fmt.Sprintf("target %q: absolute paths and remote URLs are not followed", target))
		return
	}
	p := path.Join(path.Dir(file), target)
	if !fs.ValidPath(p) {
		bad(fmt.Sprintf("target %q escapes the catalog root", target))
		return
	}
	files, err := expand(w.src.FS, p)
	if err != nil {
		bad(fmt.Sprintf("target %q: %v", target, err))
		return
	}
	if len(files) == 0 {
		bad(fmt.Sprintf("target %q matches no file", target))
		return
	}
	for _, f := range files {
		w.visit(ctx, f, file)
	}
}

func readLimited(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDocumentBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxDocumentBytes)
	}
	return b, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
