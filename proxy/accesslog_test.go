package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/backgate/backgate/policy"
)

// slogLine is what slog's JSONHandler writes for the record at time t.
func slogLine(t *testing.T, at time.Time, a *accessFields) string {
	t.Helper()
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, nil)
	r := slog.NewRecord(at, slog.LevelInfo, "request", 0)
	r.AddAttrs(a.attrs(nil)...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestAccessJSONMatchesSlog: the direct encoder writes byte for byte what
// slog's JSONHandler writes for the same record, for awkward strings,
// numbers and optional fields.
func TestAccessJSONMatchesSlog(t *testing.T) {
	at := time.Date(2026, 11, 27, 13, 4, 5, 123456789, time.FixedZone("X", 3600))
	rt := &Route{Name: "r<1>", Service: "component:default/app", Environment: "staging"}
	d := &policy.Decision{ID: "d-1", Allow: true}
	tests := []accessFields{
		{id: "a", method: "GET", host: "app.example", path: "/", status: 200, bytes: 512, durationMS: 1.234, client: netip.MustParseAddr("127.0.0.1")},
		{id: "b", method: "POST", host: "h", path: "/q\"uote\\back\nnl\r\t\x00\x1f\x7f", status: 403, durationMS: 0, client: netip.MustParseAddr("::1"),
			user: "user:default/alice", route: rt, decision: d},
		{id: "c", method: "GET", host: "ü.example", path: "/bad\xff\xfeutf8/\u2028\u2029/<&>/😀", status: 502, bytes: -1,
			durationMS: 123456.789, client: netip.MustParseAddr("10.0.0.1"), route: rt},
		{id: "z", client: netip.MustParseAddr("fe80::1%a\"b\\c\x01"), durationMS: 1},
		{id: "d", method: "GET", path: "/tiny", status: 101, durationMS: 0.001, decision: &policy.Decision{ID: "x", Allow: false}},
		{id: "e", durationMS: 1e22},
		{id: "f", durationMS: 1e-7},
	}
	for i := range tests {
		a := &tests[i]
		want := slogLine(t, at, a)
		got := string(appendAccessJSON(nil, at, a))
		if got != want {
			t.Errorf("record %s:\n got %s\nwant %s", a.id, got, want)
		}
	}
}

func FuzzAccessJSON(f *testing.F) {
	f.Add("GET", "/path", "user:default/a", 1.5)
	f.Add("\x00", "/\xff\u2028", "\"", 1e-9)
	f.Fuzz(func(t *testing.T, method, path, user string, ms float64) {
		if ms != ms || ms > 1e300 || ms < -1e300 {
			return // NaN and infinities are never durations
		}
		at := time.Unix(1700000000, 5).UTC()
		a := &accessFields{id: "id", method: method, host: "h", path: path, status: 200, durationMS: ms, client: netip.MustParseAddr("192.0.2.1"), user: user}
		if got, want := string(appendAccessJSON(nil, at, a)), slogLine(t, at, a); got != want {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAccessLog(b *testing.B) {
	a := &accessFields{id: "0123456789abcdef", method: "GET", host: "app.bench.localhost", path: "/some/page", status: 200, bytes: 512,
		durationMS: 1.234, client: netip.MustParseAddr("127.0.0.1"), user: "user:default/u0", route: &Route{Name: "bench", Service: "component:default/c0", Environment: "staging"},
		decision: &policy.Decision{ID: "abc-1", Allow: true}}
	b.Run("slog", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(discard{}, nil))
		var buf [16]slog.Attr
		b.ReportAllocs()
		for b.Loop() {
			l.LogAttrs(context.Background(), slog.LevelInfo, "request", a.attrs(buf[:0])...)
		}
	})
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bp := accessBufs.Get().(*[]byte)
			*bp = appendAccessJSON((*bp)[:0], time.Now(), a)
			_, _ = discard{}.Write(*bp)
			accessBufs.Put(bp)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
