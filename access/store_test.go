package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestMigrations(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		st, reopen := k.open(t)
		versions := func(st *SQLStore) []int {
			rows, err := st.DB().QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var vs []int
			for rows.Next() {
				var v int
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				vs = append(vs, v)
			}
			return vs
		}
		want := []int{}
		for v := 1; v <= SchemaVersion(st.Dialect()); v++ {
			want = append(want, v)
		}
		if len(want) == 0 {
			t.Fatal("no migrations embedded")
		}
		// Opening again (also concurrently, as replicas starting together)
		// applies nothing twice.
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				st2, err := reopen()
				if err != nil {
					t.Errorf("reopen: %v", err)
					return
				}
				st2.Close()
			})
		}
		wg.Wait()
		if got := versions(st); !slices.Equal(got, want) {
			t.Fatalf("versions = %v, want %v", got, want)
		}
		// The audit trail refuses changes.
		f := newFixtureOn(t, st, nil)
		if _, _, err := f.svc.Request(ctx, user("carol"), svc, "staging", time.Hour, "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.DB().ExecContext(ctx, `UPDATE audit SET reason = 'forged'`); err == nil {
			t.Error("audit row updated")
		}
		if _, err := st.DB().ExecContext(ctx, `DELETE FROM audit`); err == nil {
			t.Error("audit row deleted")
		}
		// A database from a newer backgate is refused.
		if _, err := st.DB().ExecContext(ctx, st.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			want[len(want)-1]+1, "9999_future.sql", 1); err != nil {
			t.Fatal(err)
		}
		if st3, err := reopen(); !errors.Is(err, ErrSchemaTooNew) {
			if st3 != nil {
				st3.Close()
			}
			t.Fatalf("open future schema: %v", err)
		}
	})
}

func TestMigrationFilesAgree(t *testing.T) {
	lite, err := Migrations(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := Migrations(Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Name != pg[i].Name {
			t.Errorf("migration %d: %s vs %s", i+1, lite[i].Name, pg[i].Name)
		}
	}
}

// TestDurability: after Approve returns, a second handle on the same SQLite
// file (as after a crash: the first is never closed) sees the grant.
func TestDurability(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "access.db")
	st1, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, st1, nil)
	r, _, err := f.svc.Request(ctx, user("carol"), svc, "staging", time.Hour, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Approve(ctx, user("alice"), r.ID); err != nil {
		t.Fatal(err)
	}
	st2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	gs, err := st2.ActiveGrants(ctx, f.clk.Now())
	if err != nil || len(gs) != 1 || gs[0].RequestID != r.ID {
		t.Fatalf("second handle sees %+v, %v", gs, err)
	}
	evs, err := st2.Audit(ctx, AuditFilter{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("second handle audit %+v, %v", evs, err)
	}
	if _, err := OpenSQLite(ctx, path+"?mode=memory"); err == nil {
		t.Error("a path with '?' was accepted")
	}
}

// auditFixture makes a fixed history: two users, two services, all actions.
func auditFixture(t *testing.T, k storeKind) *fixture {
	ctx := context.Background()
	f := newFixture(t, k, nil)
	carol, dave, alice := user("carol"), user("dave"), user("alice")
	other := "component:default/ledger"
	step := func() { f.clk.Add(time.Minute) }
	r1, _, _ := f.svc.Request(ctx, carol, svc, "prod", time.Hour, "incident 7, \"db\" stuck")
	step()
	if _, err := f.svc.Approve(ctx, alice, r1.ID); err != nil {
		t.Fatal(err)
	}
	step()
	r2, _, _ := f.svc.Request(ctx, dave, other, "staging", 2*time.Hour, "=HYPERLINK(\"x\")")
	step()
	if _, err := f.svc.Deny(ctx, alice, r2.ID, "use staging-2\nplease"); err != nil {
		t.Fatal(err)
	}
	step()
	r3, _, _ := f.svc.Request(ctx, dave, svc, "staging", time.Hour, "deploy")
	step()
	if _, err := f.svc.Approve(ctx, alice, r3.ID); err != nil {
		t.Fatal(err)
	}
	step()
	if _, err := f.svc.Revoke(ctx, carol, r1.ID, "done"); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(2 * time.Hour)
	if n, err := f.svc.ExpireDue(ctx); n != 1 || err != nil {
		t.Fatalf("ExpireDue = %d, %v", n, err)
	}
	return f
}

func TestAuditFiltersAndExport(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		f := auditFixture(t, k)
		t0 := newClock().Now()
		tests := []struct {
			name   string
			filter AuditFilter
			want   []string
		}{
			{"all", AuditFilter{}, []string{"request", "approve", "request", "deny", "request", "approve", "revoke", "expire"}},
			{"user", AuditFilter{User: "user:default/dave"}, []string{"request", "deny", "request", "approve", "expire"}},
			{"service", AuditFilter{Service: "component:default/ledger"}, []string{"request", "deny"}},
			{"user and service", AuditFilter{User: "user:default/dave", Service: svc}, []string{"request", "approve", "expire"}},
			{"since", AuditFilter{Since: t0.Add(4 * time.Minute)}, []string{"request", "approve", "revoke", "expire"}},
			{"until", AuditFilter{Until: t0.Add(2 * time.Minute)}, []string{"request", "approve"}},
			{"window", AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)}, []string{"request", "deny"}},
			{"limit", AuditFilter{Limit: 3}, []string{"request", "approve", "request"}},
			{"nobody", AuditFilter{User: "user:default/nobody"}, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := f.actions(t, tc.filter); !slices.Equal(got, tc.want) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			})
		}
		if _, err := f.svc.Audit(ctx, AuditFilter{Since: t0, Until: t0}); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty window: %v", err)
		}
		evs, err := f.svc.Audit(ctx, AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var js, cs bytes.Buffer
		if err := WriteAuditJSON(&js, evs); err != nil {
			t.Fatal(err)
		}
		if err := WriteAuditCSV(&cs, evs); err != nil {
			t.Fatal(err)
		}
		golden(t, "audit.json", js.Bytes())
		golden(t, "audit.csv", cs.Bytes())
		var back []map[string]any
		if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != len(evs) {
			t.Fatalf("export is not a JSON array of %d: %v", len(evs), err)
		}
		var empty bytes.Buffer
		if err := WriteAuditJSON(&empty, nil); err != nil || empty.String() != "[]\n" {
			t.Fatalf("empty export %q, %v", empty.String(), err)
		}
	})
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

// blockingHook is a webhook endpoint that holds each call until released.
type blockingHook struct {
	got     chan []byte
	release chan struct{}
	status  int
}

func (h *blockingHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.got <- b
	select {
	case <-h.release:
	case <-r.Context().Done():
	}
	w.WriteHeader(h.status)
}

func TestWebhookNeverBlocks(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		hook := &blockingHook{got: make(chan []byte, 10), release: make(chan struct{}), status: http.StatusInternalServerError}
		srv := httptest.NewServer(hook)
		defer srv.Close()
		var logs syncBuffer
		wh, err := NewWebhook(srv.URL+"/hook?token=secret", time.Minute, srv.Client(), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, k, func(o *Options) { o.Notifier = wh })
		// The endpoint holds the first call and then fails: Request and
		// Approve return anyway (the test would hang otherwise) and the rows exist.
		r, _, err := f.svc.Request(ctx, user("carol"), svc, "staging", time.Hour, "deploy")
		if err != nil {
			t.Fatal(err)
		}
		body := <-hook.got // the hook is now stuck in the first call
		if _, err := f.svc.Approve(ctx, user("alice"), r.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := f.store.GetRequest(ctx, r.ID); err != nil || got.State != StateApproved {
			t.Fatalf("stored %+v, %v", got, err)
		}
		var msg struct {
			Text     string
			Backgate map[string]string
		}
		if err := json.Unmarshal(body, &msg); err != nil || !strings.Contains(msg.Text, "requests access to "+svc) ||
			msg.Backgate["request_id"] != r.ID || msg.Backgate["action"] != "request" {
			t.Fatalf("webhook body %s: %v", body, err)
		}
		close(hook.release)
		second := <-hook.got
		if !bytes.Contains(second, []byte(`"action":"approve"`)) {
			t.Fatalf("second webhook body %s", second)
		}
		if err := wh.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "webhook failed") || strings.Contains(logs.String(), "secret") {
			t.Fatalf("logs: %s", logs.String())
		}
		// After Close, notifications are dropped without blocking.
		wh.Notify(ctx, Event{Action: "request"})
	})
}

func TestWebhookQueueFull(t *testing.T) {
	hook := &blockingHook{got: make(chan []byte, 1), release: make(chan struct{}), status: http.StatusOK}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	var logs syncBuffer
	wh, err := NewWebhook(srv.URL, time.Minute, srv.Client(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	wh.Notify(context.Background(), Event{Action: "request"})
	<-hook.got // the worker is stuck; fill the queue and overflow it
	for range WebhookQueueSize + 5 {
		wh.Notify(context.Background(), Event{Action: "request"})
	}
	if n := strings.Count(logs.String(), "queue full"); n != 5 {
		t.Fatalf("%d drops logged, want 5", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := wh.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with an ended context: %v", err)
	}
	for _, bad := range []string{"", "ftp://x", "/relative", "http://"} {
		if _, err := NewWebhook(bad, time.Second, nil, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewWebhook(%q): %v", bad, err)
		}
	}
}

func TestRunGrantSync(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, storeKinds[0], nil)
	pushes := make(chan []Grant, 10)
	done := make(chan error, 1)
	// A long interval: pushes after changes come from the change signal.
	go func() { done <- f.svc.RunGrantSync(ctx, time.Hour, func(gs []Grant) { pushes <- gs }) }()
	if gs := <-pushes; len(gs) != 0 {
		t.Fatalf("first push %+v", gs)
	}
	r, _, _ := f.svc.Request(ctx, user("carol"), svc, "staging", time.Hour, "x")
	if _, err := f.svc.Approve(ctx, user("alice"), r.ID); err != nil {
		t.Fatal(err)
	}
	if gs := <-pushes; len(gs) != 1 || gs[0].RequestID != r.ID {
		t.Fatalf("push after approve %+v", gs)
	}
	if _, err := f.svc.Revoke(ctx, user("alice"), r.ID, ""); err != nil {
		t.Fatal(err)
	}
	if gs := <-pushes; len(gs) != 0 {
		t.Fatalf("push after revoke %+v", gs)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func FuzzCheckReason(f *testing.F) {
	for _, s := range []string{"", " ok ", "a\x00b", strings.Repeat("x", 501), "é\n\tz", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := checkReason("reason", in, true)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if out == "" || out != strings.TrimSpace(out) || !utf8.ValidString(out) || utf8.RuneCountInString(out) > MaxReasonLen {
			t.Fatalf("accepted %q", out)
		}
		for _, r := range out {
			if unicode.IsControl(r) && r != '\n' && r != '\t' {
				t.Fatalf("accepted control character in %q", out)
			}
		}
	})
}
