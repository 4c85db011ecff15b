package access

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestMain says loudly, also without -v, when the PostgreSQL half of the
// store tests will be skipped.
func TestMain(m *testing.M) {
	if os.Getenv("BACKGATE_TEST_POSTGRES_DSN") == "" && os.Getenv("BACKGATE_REQUIRE_POSTGRES") != "1" {
		fmt.Fprintln(os.Stderr, "access: NO POSTGRESQL: BACKGATE_TEST_POSTGRES_DSN is not set, the PostgreSQL store tests are SKIPPED "+
			"(run access/testdata/pg-setup.sh; BACKGATE_REQUIRE_POSTGRES=1 makes this a failure)")
	}
	os.Exit(m.Run())
}

// storeKind opens a fresh, empty store; reopen opens a second handle on the
// same database (as another process or replica would).
type storeKind struct {
	name string
	open func(t *testing.T) (st *SQLStore, reopen func() (*SQLStore, error))
}

var storeKinds = []storeKind{
	{"sqlite", openTestSQLite},
	{"postgres", openTestPostgres},
}

// forEachStore runs f against SQLite and PostgreSQL.
func forEachStore(t *testing.T, f func(t *testing.T, k storeKind)) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) { f(t, k) })
	}
}

func openTestSQLite(t *testing.T) (*SQLStore, func() (*SQLStore, error)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access.db")
	reopen := func() (*SQLStore, error) { return OpenSQLite(context.Background(), path) }
	st, err := reopen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, reopen
}

func pgSkip(t *testing.T, why string) {
	t.Helper()
	msg := "NO POSTGRESQL: " + why + " (run access/testdata/pg-setup.sh and export BACKGATE_TEST_POSTGRES_DSN); BACKGATE_REQUIRE_POSTGRES=1 makes this a failure"
	if os.Getenv("BACKGATE_REQUIRE_POSTGRES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func openTestPostgres(t *testing.T) (*SQLStore, func() (*SQLStore, error)) {
	t.Helper()
	dsn := os.Getenv("BACKGATE_TEST_POSTGRES_DSN")
	if dsn == "" {
		pgSkip(t, "BACKGATE_TEST_POSTGRES_DSN is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		pgSkip(t, err.Error())
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		pgSkip(t, "cannot reach the server: "+err.Error())
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	var sdsn string
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		sdsn = u.String()
	} else {
		sdsn = dsn + " search_path=" + schema
	}
	reopen := func() (*SQLStore, error) { return OpenPostgres(context.Background(), sdsn) }
	st, err := reopen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, reopen
}

// clock is an injected, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeApprover is the test double for the Rego approver: approvers lists
// who may approve; complete decides whether one more approval finishes a
// request (nil: always).
type fakeApprover struct {
	approvers map[string]bool
	maxDur    map[string]time.Duration // by environment
	complete  func(in ApprovalInput) bool
	calls     atomic.Int64
}

func (f *fakeApprover) MayApprove(_ context.Context, in ApprovalInput) (ApprovalResult, error) {
	f.calls.Add(1)
	if !f.approvers[in.Approver.UserRef] || in.Approver.UserRef == in.Request.Requester {
		return ApprovalResult{Reasons: []string{"not an owner"}}, nil
	}
	c := true
	if f.complete != nil {
		c = f.complete(in)
	}
	return ApprovalResult{MayApprove: true, Complete: c}, nil
}

func (f *fakeApprover) MaxDuration(_ context.Context, _, env string) (time.Duration, error) {
	return f.maxDur[env], nil
}

func newFakeApprover(approvers ...string) *fakeApprover {
	f := &fakeApprover{approvers: map[string]bool{}, maxDur: map[string]time.Duration{"staging": 24 * time.Hour, "prod": 4 * time.Hour}}
	for _, a := range approvers {
		f.approvers[a] = true
	}
	return f
}

const svc = "component:default/payments"

func user(name string) Actor {
	return Actor{UserRef: "user:default/" + name, Email: name + "@example.com", Address: "192.0.2.7", Via: "page"}
}

type fixture struct {
	svc   *Service
	store *SQLStore
	clk   *clock
	appr  *fakeApprover
	audit *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newFixture builds a Service on a fresh store of kind k with sequential
// IDs, a fake clock and approvers alice and bob.
func newFixture(t *testing.T, k storeKind, mod func(*Options)) *fixture {
	t.Helper()
	st, _ := k.open(t)
	return newFixtureOn(t, st, mod)
}

func newFixtureOn(t *testing.T, st *SQLStore, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{store: st, clk: newClock(), appr: newFakeApprover("user:default/alice", "user:default/bob"), audit: &syncBuffer{}}
	var n atomic.Int64
	o := Options{
		Store:    st,
		Approver: f.appr,
		Services: func(s string) bool { return strings.HasPrefix(s, "component:default/") },
		Audit:    f.audit,
		Now:      f.clk.Now,
		NewID:    func() string { return fmt.Sprintf("id-%04d", n.Add(1)) },
	}
	if mod != nil {
		mod(&o)
	}
	s, err := NewService(o)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = s
	return f
}

func (f *fixture) actions(t *testing.T, filter AuditFilter) []string {
	t.Helper()
	evs, err := f.svc.Audit(context.Background(), filter)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Action)
	}
	return out
}
