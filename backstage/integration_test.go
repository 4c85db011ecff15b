//go:build linux

package backstage

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file runs backgate's catalog sync against a real Backstage catalog
// backend (testdata/backend, installed from npm by testdata/backend/setup.sh)
// serving the example catalog of ../shared/backstage-examples plus a file of
// backgate-annotated components that the test edits.

// requireBackstageEnv turns every skip of the integration test into a failure (CI sets it).
const requireBackstageEnv = "BACKGATE_REQUIRE_BACKSTAGE"

const (
	itPageSize      = 7
	itStartTimeout  = 120 * time.Second // process start until the catalog API answers
	itSettleTimeout = 90 * time.Second  // until every expected entity is listed and etags are stable
	itEditTimeout   = 60 * time.Second  // until an edit on disk is served
	itPoll          = 500 * time.Millisecond
)

// Entry files of the example catalog given to Backstage as file locations.
var itExampleRoots = []string{"acme-corp.yaml", "all-domains.yaml", "all-systems.yaml",
	"all-components.yaml", "all-apis.yaml", "all-resources.yaml"}

const itAnnotatedFile = "backgate-components.yaml"

// itAnnotated is the annotated components file; %s is payments-gateway's backgate.io/hosts.
const itAnnotated = `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments-gateway
  description: backgate integration test component
  annotations:
    backgate.io/hosts: %s
    backgate.io/upstream: http://127.0.0.1:9801
    backgate.io/environment: staging
    backgate.io/bigip-pool: /Common/payments_staging
spec:
  type: service
  lifecycle: production
  owner: team-a
  system: audio-playback
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: ledger-ui
  annotations:
    backgate.io/hosts: ledger.example.test, ledger-admin.example.test
    backgate.io/upstream: https://ledger.internal.test:8443/app
    backgate.io/path-prefix: /ui/
spec:
  type: website
  lifecycle: experimental
  owner: user:guest
`

func TestBackstageIntegration(t *testing.T) {
	env := prepareBackstage(t)
	expected, textAPIs := env.expectedCatalog(t, "pay.example.test")

	be := env.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	settled := be.waitSettled(ctx, t, expected)
	for _, ref := range textAPIs {
		if _, ok := settled[ref]; ok {
			t.Logf("%s (definition $text: https://...) is served although the backend runs offline", ref)
		} else {
			t.Logf("%s left out by Backstage: its $text definition cannot be fetched offline (expected)", ref)
		}
	}

	dataDir := t.TempDir()
	src := &statsSource{RESTSource: be.source(be.token)}
	// Run's timer is driven by the test: each call to After is announced on
	// waiting, and a refresh starts when the test sends on tick.
	waiting, tick := make(chan struct{}, 8), make(chan time.Time)
	after := func(time.Duration) <-chan time.Time { waiting <- struct{}{}; return tick }
	syncer, err := NewSyncer(SyncerOptions{Source: src, DataDir: dataDir, After: after})
	if err != nil {
		t.Fatal(err)
	}

	ok := t.Run("full sync", func(t *testing.T) {
		if err := syncer.Init(ctx); err != nil {
			t.Fatalf("Init: %v", err)
		}
		c := syncer.Current()
		st := src.last
		if st.Listed != len(settled) || st.Fetched != st.Listed {
			t.Errorf("stats %+v: want Listed = Fetched = %d (what the backend holds)", st, len(settled))
		}
		if minPages := (st.Listed + itPageSize - 1) / itPageSize; st.Pages < minPages || st.Pages > minPages+1 || st.Pages < 3 {
			t.Errorf("stats %+v: want %d (or %d) pages of %d", st, minPages, minPages+1, itPageSize)
		}
		if c.EntityCount() != len(settled) {
			t.Errorf("EntityCount = %d, backend holds %d", c.EntityCount(), len(settled))
		}
		kinds := map[string]int{}
		for ref := range settled {
			kinds[ref[:strings.IndexByte(ref, ':')]]++
			if !catalogHas(c, ref) {
				t.Errorf("%s is served by Backstage but missing from the synced catalog", ref)
			}
		}
		t.Logf("backend holds %d entities of backgate's kinds: %v", len(settled), kinds)
		for kind, least := range map[string]int{"user": 16, "group": 8, "component": 15, "system": 3, "domain": 2, "resource": 1, "api": 4} {
			if kinds[kind] < least {
				t.Errorf("%d entities of kind %s, want at least %d", kinds[kind], kind, least)
			}
		}
		compareDerived(t, expected, c)
		if ref, ok := c.ResolveUser("", "Janelle-Dawe@example.com", ""); !ok || ref != "user:default/janelle.dawe" {
			t.Errorf("ResolveUser(janelle's email) = %q, %v", ref, ok)
		}
		want := AnnotatedRoute{Name: "default/payments-gateway@pay.example.test", Host: "pay.example.test", PathPrefix: "/",
			Upstream: "http://127.0.0.1:9801", Service: "component:default/payments-gateway", Environment: "staging", Pool: "/Common/payments_staging"}
		if r, ok := findRoute(c, "pay.example.test"); !ok || r != want {
			t.Errorf("route for pay.example.test = %+v, %v; want %+v", r, ok, want)
		}
		if _, err := ReadSnapshotFile(filepath.Join(dataDir, SnapshotFileName)); err != nil {
			t.Errorf("no snapshot persisted after a good sync: %v", err)
		}
	})
	if !ok {
		return
	}

	t.Run("wrong token", func(t *testing.T) {
		for _, tc := range []struct{ name, token string }{
			{"wrong", "not-the-" + be.token},
			{"missing", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := be.source(tc.token)
				s.MaxAttempts = 3
				_, st, err := s.FetchWithStats(ctx)
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("err = %v, want ErrUnauthorized", err)
				}
				if want := be.baseURL + "/entities/by-query"; !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
				if !strings.Contains(err.Error(), "token") {
					t.Errorf("error %q does not point at the token", err)
				}
				if tc.token != "" && strings.Contains(err.Error(), tc.token) {
					t.Errorf("error leaks the token: %q", err)
				}
				if st.Requests != 1 {
					t.Errorf("%d requests, want 1 (no retry on 401)", st.Requests)
				}
			})
		}
	})

	ok = t.Run("edit on disk", func(t *testing.T) {
		before := syncer.Current()
		listedBefore, err := be.listAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const hosts = "pay.example.test, pay-v2.example.test"
		begin := time.Now()
		env.writeAnnotated(t, hosts)
		be.waitAnnotation(ctx, t, "component/default/payments-gateway", AnnotationHosts, hosts)
		t.Logf("edit served by Backstage after %v", time.Since(begin).Round(time.Millisecond))
		if err := syncer.SyncOnce(ctx); err != nil {
			t.Fatalf("SyncOnce: %v", err)
		}
		c := syncer.Current()
		if c.Revision() == before.Revision() {
			t.Fatalf("revision unchanged after the edit")
		}
		listedAfter, err := be.listAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var changed []string
		for ref, v := range listedAfter {
			if listedBefore[ref] != v {
				changed = append(changed, ref)
			}
		}
		if !slices.Equal(changed, []string{"component:default/payments-gateway"}) {
			t.Errorf("entities whose uid/etag changed in Backstage: %v, want only the edited one", changed)
		}
		if st := src.last; st.Fetched != 1 || st.Listed != len(settled) {
			t.Errorf("stats %+v: want Listed %d and only the edited entity fetched in full (changed in Backstage: %v)", st, len(settled), changed)
		}
		r, ok := findRoute(c, "pay-v2.example.test")
		if !ok || r.Service != "component:default/payments-gateway" || r.Pool != "/Common/payments_staging" {
			t.Errorf("route for pay-v2.example.test = %+v, %v", r, ok)
		}
		if _, ok := findRoute(c, "pay.example.test"); !ok {
			t.Errorf("route for pay.example.test lost")
		}
		want, _ := env.expectedCatalog(t, hosts)
		compareDerived(t, want, c)
	})
	if !ok {
		return
	}

	t.Run("backstage stopped", func(t *testing.T) {
		good := syncer.Current()
		runCtx, stopRun := context.WithCancel(ctx)
		runErr := make(chan error, 1)
		go func() { runErr <- syncer.Run(runCtx) }()
		defer func() {
			stopRun()
			if err := <-runErr; !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		}()
		<-waiting // Run is between two refreshes
		be.stop(t)
		tick <- time.Now()
		<-waiting // that refresh is over
		st := syncer.Status(time.Now())
		if st.LastError == "" {
			t.Fatal("the refresh after Backstage stopped did not fail")
		}
		if strings.Contains(st.LastError, "rejected the token") || !strings.Contains(st.LastError, be.baseURL) {
			t.Errorf("last error %q: want a connection error naming %s", st.LastError, be.baseURL)
		}
		if c := syncer.Current(); c != good {
			t.Errorf("current catalog replaced after a failed sync (revision %s, was %s)", c.Revision(), good.Revision())
		}
		if st.Stale || st.FromDisk || st.Revision != good.Revision() {
			t.Errorf("status after a failed sync = %+v", st)
		}
		snap, err := ReadSnapshotFile(filepath.Join(dataDir, SnapshotFileName))
		if err != nil {
			t.Fatalf("snapshot on disk: %v", err)
		}
		if c := mustBuild(t, snap, BuildOptions{}); c.Revision() != good.Revision() {
			t.Errorf("snapshot on disk has revision %s, last good catalog %s", c.Revision(), good.Revision())
		}

		// A restart while Backstage is down serves the persisted catalog.
		again, err := NewSyncer(SyncerOptions{Source: be.source(be.token), DataDir: dataDir})
		if err != nil {
			t.Fatal(err)
		}
		if err := again.Init(ctx); err != nil {
			t.Fatalf("Init from the snapshot on disk: %v", err)
		}
		if st := again.Status(time.Now()); !st.FromDisk || st.Revision != good.Revision() || st.LastError == "" {
			t.Errorf("restarted syncer status = %+v, want FromDisk with revision %s", st, good.Revision())
		}
		if _, ok := findRoute(again.Current(), "pay-v2.example.test"); !ok {
			t.Errorf("restarted syncer lacks the edited route")
		}
	})

	if blocked := be.blockedConnections(t); len(blocked) > 0 {
		t.Errorf("Backstage tried to reach the network (blocked by offline-guard.js): %v", blocked)
	}
}

// statsSource records the FetchStats of the Syncer's fetches.
type statsSource struct {
	*RESTSource
	last FetchStats
}

func (s *statsSource) Fetch(ctx context.Context) (*Snapshot, error) {
	snap, st, err := s.FetchWithStats(ctx)
	s.last = st
	return snap, err
}

// itEnv is what the test needs before starting Backstage.
type itEnv struct {
	node, backendDir, examples, dir string
}

// prepareBackstage finds node, the installed backend and the example
// catalog; without them it skips loudly (or fails when requireBackstageEnv=1).
func prepareBackstage(t *testing.T) *itEnv {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv(requireBackstageEnv) == "1" {
			t.Fatalf("Backstage integration test cannot run: %s (%s=1)", msg, requireBackstageEnv)
		}
		t.Skipf("SKIPPED: Backstage integration test: %s. Run `bash backstage/testdata/backend/setup.sh`; %s=1 makes this a failure.", msg, requireBackstageEnv)
	}
	if testing.Short() && os.Getenv(requireBackstageEnv) != "1" {
		skip("-short")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not installed")
	}
	backendDir, err := filepath.Abs(filepath.Join("testdata", "backend"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"node_modules/@backstage/plugin-catalog-backend/package.json",
		"node_modules/@backstage/backend-defaults/package.json",
		"node_modules/better-sqlite3/build/Release/better_sqlite3.node"} {
		if _, err := os.Stat(filepath.Join(backendDir, f)); err != nil {
			skip("the backend's node_modules is not installed (%s missing)", f)
		}
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	examples := filepath.Join(filepath.Dir(root), "shared", "backstage-examples")
	if _, err := os.Stat(filepath.Join(examples, "acme-corp.yaml")); err != nil {
		skip("the example catalog is not at %s (../shared/backstage-examples from the repo root)", examples)
	}
	env := &itEnv{node: node, backendDir: backendDir, examples: examples, dir: t.TempDir()}
	env.writeAnnotated(t, "pay.example.test")
	return env
}

// repoRoot is the nearest directory above the working directory with a go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// writeAnnotated replaces the annotated components file atomically, so
// Backstage never reads half of it.
func (e *itEnv) writeAnnotated(t *testing.T, hosts string) {
	t.Helper()
	tmp := filepath.Join(e.dir, "."+itAnnotatedFile+".tmp")
	if err := os.WriteFile(tmp, fmt.Appendf(nil, itAnnotated, hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, itAnnotatedFile)); err != nil {
		t.Fatal(err)
	}
}

// expectedCatalog builds, with FileSource, the catalog that Backstage should
// serve: the example catalog plus the annotated file, less the APIs whose
// definition is `$text: https://...` (returned apart: Backstage cannot fetch
// those offline and leaves them out).
func (e *itEnv) expectedCatalog(t *testing.T, hosts string) (*Catalog, []string) {
	t.Helper()
	ex := fetchFS(t, os.DirFS(e.examples), itExampleRoots...)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, itAnnotatedFile), fmt.Appendf(nil, itAnnotated, hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	ann := fetchFS(t, os.DirFS(dir), itAnnotatedFile)
	remote := map[string]bool{}
	apiFiles, _ := filepath.Glob(filepath.Join(e.examples, "apis", "*.yaml"))
	for _, f := range apiFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "$text: http") {
			continue
		}
		ents, _ := ParseDocuments(b, f)
		for _, en := range ents {
			remote[en.Ref().String()] = true
		}
	}
	if len(remote) == 0 {
		t.Fatalf("found no API with a $text: https:// definition in %s/apis; the example catalog changed", e.examples)
	}
	var ents []Entity
	for _, en := range append(ex.Entities, ann.Entities...) {
		if !remote[en.Ref().String()] {
			ents = append(ents, en)
		}
	}
	return mustBuild(t, &Snapshot{Source: "expected", Entities: ents}, BuildOptions{}), slices.Sorted(maps.Keys(remote))
}

// itBackend is a running Backstage process.
type itBackend struct {
	baseURL, token, logPath string
	cmd                     *exec.Cmd
	done                    chan struct{}
	stopped                 bool
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs `node index.js` with an extra config naming the test's
// locations, and waits until the catalog API accepts the token.
func (e *itEnv) start(t *testing.T) *itBackend {
	t.Helper()
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	token := "bg-it-" + hex.EncodeToString(tok)
	var locs []map[string]string
	for _, r := range itExampleRoots {
		locs = append(locs, map[string]string{"type": "file", "target": filepath.Join(e.examples, r)})
	}
	locs = append(locs, map[string]string{"type": "file", "target": filepath.Join(e.dir, itAnnotatedFile)})
	override, _ := json.Marshal(map[string]any{"catalog": map[string]any{"locations": locs}}) // JSON is YAML
	overridePath := filepath.Join(e.dir, "app-config.test.yaml")
	if err := os.WriteFile(overridePath, override, 0o644); err != nil {
		t.Fatal(err)
	}
	// The port is free when chosen but could be taken before Backstage binds it: retry then.
	for attempt := 1; ; attempt++ {
		be, err := e.launch(t, token, freePort(t), overridePath, attempt)
		if err == nil {
			return be
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; retrying on another port", attempt, err)
	}
}

var errPortTaken = errors.New("backstage could not listen: port taken")

func (e *itEnv) launch(t *testing.T, token string, port int, overridePath string, attempt int) (*itBackend, error) {
	t.Helper()
	logPath := filepath.Join(e.dir, fmt.Sprintf("backstage-%d.log", attempt))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	cmd := exec.Command(e.node, "--require", "./offline-guard.js", "index.js",
		"--config", "app-config.yaml", "--config", overridePath)
	cmd.Dir = e.backendDir
	cmd.Env = append(os.Environ(), "BACKGATE_BACKSTAGE_PORT="+fmt.Sprint(port), "BACKGATE_BACKSTAGE_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so stop reaches anything node spawns; SIGKILL if the
	// test binary dies without cleaning up (e.g. a go test -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Backstage: %v", err)
	}
	be := &itBackend{baseURL: fmt.Sprintf("http://127.0.0.1:%d/api/catalog", port), token: token,
		logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(be.done) }()
	t.Cleanup(func() {
		be.stop(t)
		if t.Failed() {
			be.dumpLog(t)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), itStartTimeout)
	defer cancel()
	for {
		code, _, err := be.get(ctx, token, "/entities/by-query?limit=1&fields=metadata.name")
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-be.done:
			if log, _ := os.ReadFile(logPath); strings.Contains(string(log), "EADDRINUSE") {
				return nil, fmt.Errorf("%w (%d)", errPortTaken, port)
			}
			return nil, fmt.Errorf("backstage exited during start-up: %v (its log follows)", cmd.ProcessState)
		case <-ctx.Done():
			return nil, fmt.Errorf("backstage catalog API not answering 200 within %v (last: HTTP %d, %v)", itStartTimeout, code, err)
		case <-time.After(itPoll):
		}
	}
	t.Logf("Backstage catalog API up %v after exec, on %s", time.Since(begin).Round(time.Millisecond), be.baseURL)
	return be, nil
}

// stop ends the process group: SIGTERM, then SIGKILL after 10 s.
func (b *itBackend) stop(t *testing.T) {
	t.Helper()
	if b.stopped {
		return
	}
	b.stopped = true
	pgid := b.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		t.Logf("Backstage ignored SIGTERM for 10 s; killing it")
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-b.done
	}
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func (b *itBackend) dumpLog(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		t.Logf("no Backstage log: %v", err)
		return
	}
	var lines []string
	for _, l := range strings.Split(ansiRE.ReplaceAllString(string(data), ""), "\n") {
		if l == "" || strings.Contains(l, `type="incomingRequest"`) {
			continue // the access log says nothing the test does not
		}
		if len(l) > 400 {
			l = l[:400] + "..."
		}
		lines = append(lines, l)
	}
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	t.Logf("last lines of the Backstage log:\n%s", strings.Join(lines, "\n"))
}

// blockedConnections lists the outbound connections offline-guard.js refused.
func (b *itBackend) blockedConnections(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(b.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "offline-guard: blocked "); ok {
			out = append(out, rest)
		}
	}
	return out
}

func (b *itBackend) source(token string) *RESTSource {
	return &RESTSource{BaseURL: b.baseURL, Token: token, PageSize: itPageSize, Timeout: 10 * time.Second,
		MaxAttempts: 2, Backoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
}

// get is a raw, independent request to the catalog API.
func (b *itBackend) get(ctx context.Context, token, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.baseURL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	return resp.StatusCode, body, err
}

// listAll returns ref -> uid+etag of every entity of backgate's kinds,
// in one unpaginated request.
func (b *itBackend) listAll(ctx context.Context) (map[string]string, error) {
	q := url.Values{"fields": {"kind,metadata.namespace,metadata.name,metadata.uid,metadata.etag"}, "limit": {"10000"}}
	for _, k := range defaultKinds {
		q.Add("filter", "kind="+k)
	}
	code, body, err := b.get(ctx, b.token, "/entities/by-query?"+q.Encode())
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("list: HTTP %d", code)
	}
	var page struct {
		Items []listItem `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(page.Items))
	for _, it := range page.Items {
		ns := it.Metadata.Namespace
		if ns == "" {
			ns = DefaultNamespace
		}
		out[strings.ToLower(it.Kind+":"+ns+"/"+it.Metadata.Name)] = it.Metadata.UID + " " + it.Metadata.Etag
	}
	return out, nil
}

// waitSettled waits until Backstage lists every entity of the expected
// catalog and three listings in a row (1.5 s apart, so several processing
// rounds) are identical, and returns that listing.
func (b *itBackend) waitSettled(ctx context.Context, t *testing.T, expected *Catalog) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, itSettleTimeout)
	defer cancel()
	want := expectedRefs(expected)
	begin := time.Now()
	var prev map[string]string
	var missing []string
	same := 0 // consecutive listings equal to prev
	for {
		cur, err := b.listAll(ctx)
		if err == nil {
			missing = missing[:0]
			for _, ref := range want {
				if _, ok := cur[ref]; !ok {
					missing = append(missing, ref)
				}
			}
			if reflect.DeepEqual(cur, prev) {
				same++
			} else {
				same = 0
			}
			if len(missing) == 0 && same >= 2 {
				t.Logf("Backstage processed the catalog (%d entities, stable) %v after the API came up", len(cur), time.Since(begin).Round(time.Millisecond))
				return cur
			}
			prev = cur
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Backstage did not settle within %v: missing %v (last error %v)", itSettleTimeout, missing, err)
		case <-time.After(1500 * time.Millisecond):
		}
	}
}

func expectedRefs(c *Catalog) []string {
	var refs []string
	for _, m := range []any{c.users, c.groups, c.components, c.resources, c.apis, c.systems, c.domains} {
		for _, k := range reflect.ValueOf(m).MapKeys() {
			refs = append(refs, k.String())
		}
	}
	slices.Sort(refs)
	return refs
}

// waitAnnotation polls one entity (path "kind/namespace/name") until its
// annotation has the value.
func (b *itBackend) waitAnnotation(ctx context.Context, t *testing.T, path, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, itEditTimeout)
	defer cancel()
	var got string
	for {
		code, body, err := b.get(ctx, b.token, "/entities/by-name/"+path)
		if err == nil && code == http.StatusOK {
			var e Entity
			if json.Unmarshal(body, &e) == nil {
				got = e.Metadata.Annotations[key]
				if got == value {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s %s still %q after %v, want %q", path, key, got, itEditTimeout, value)
		case <-time.After(itPoll):
		}
	}
}

func catalogHas(c *Catalog, ref string) bool {
	switch ref[:strings.IndexByte(ref, ':')] {
	case KindUser:
		_, ok := c.User(ref)
		return ok
	case KindGroup:
		_, ok := c.Group(ref)
		return ok
	case KindSystem:
		_, ok := c.System(ref)
		return ok
	case KindDomain:
		_, ok := c.Domain(ref)
		return ok
	default:
		_, ok := c.Entity(ref)
		return ok
	}
}

func findRoute(c *Catalog, host string) (AnnotatedRoute, bool) {
	for _, r := range c.Routes() {
		if r.Host == host {
			return r, true
		}
	}
	return AnnotatedRoute{}, false
}

// compareDerived checks that the catalog synced from Backstage derives the
// same memberships, ownership and routes as FileSource does from the same
// files. Annotations differ by design (Backstage adds backstage.io/managed-by-*).
func compareDerived(t *testing.T, want, got *Catalog) {
	t.Helper()
	w, g := deriveView(want), deriveView(got)
	for kind, n := range w.Counts {
		if g.Counts[kind] != n {
			t.Errorf("%s: synced %d, files give %d", kind, g.Counts[kind], n)
		}
	}
	for ref, wu := range w.Users {
		gu, ok := g.Users[ref]
		if !ok {
			t.Errorf("%s missing", ref)
			continue
		}
		a, b := *wu, *gu
		a.Annotations, b.Annotations = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: synced %+v, files give %+v", ref, b, a)
		}
	}
	for ref, wg := range w.Groups {
		if gg, ok := g.Groups[ref]; !ok || !reflect.DeepEqual(wg, gg) {
			t.Errorf("%s: synced %+v, files give %+v", ref, gg, wg)
		}
	}
	for ref, wo := range w.Owned {
		gor, ok := g.Owned[ref]
		if !ok {
			t.Errorf("%s missing", ref)
			continue
		}
		a, b := *wo, *gor
		a.Annotations, b.Annotations = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: synced %+v, files give %+v", ref, b, a)
		}
		for k, v := range wo.Annotations {
			if gor.Annotations[k] != v {
				t.Errorf("%s: annotation %s synced %q, files give %q", ref, k, gor.Annotations[k], v)
			}
		}
	}
	if !reflect.DeepEqual(w.Systems, g.Systems) || !reflect.DeepEqual(w.Domains, g.Domains) {
		t.Errorf("systems/domains: synced %v %v, files give %v %v", g.Systems, g.Domains, w.Systems, w.Domains)
	}
	if !reflect.DeepEqual(w.IDP, g.IDP) {
		t.Errorf("idp groups: synced %v, files give %v", g.IDP, w.IDP)
	}
	if !reflect.DeepEqual(want.Routes(), got.Routes()) {
		t.Errorf("routes: synced %+v, files give %+v", got.Routes(), want.Routes())
	}
}
