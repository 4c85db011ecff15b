package app

import (
	"bytes"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/backgate/backgate/config"
)

func TestGCFor(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		s    config.Server
		env  map[string]string
		want gcSettings
	}{
		{"defaults", config.Server{GCPercent: 400}, nil, gcSettings{percent: 400, limit: math.MaxInt64}},
		{"limit", config.Server{GCPercent: 200, MemoryLimitMB: 512}, nil, gcSettings{percent: 200, limit: 512 << 20}},
		{"off with limit", config.Server{GCPercent: -1, MemoryLimitMB: 1024}, nil, gcSettings{percent: -1, limit: 1024 << 20}},
		{"GOGC wins", config.Server{GCPercent: 400, MemoryLimitMB: 512}, map[string]string{"GOGC": "100"},
			gcSettings{percent: 400, limit: 512 << 20, percentFromEnv: true}},
		{"GOMEMLIMIT wins", config.Server{GCPercent: 400, MemoryLimitMB: 512}, map[string]string{"GOMEMLIMIT": "1GiB"},
			gcSettings{percent: 400, limit: 512 << 20, limitFromEnv: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if g := gcFor(tt.s, env(tt.env)); g != tt.want {
				t.Fatalf("gcFor = %+v, want %+v", g, tt.want)
			}
		})
	}
}

// TestAccessLogWriter: the direct access log is used only for JSON at info
// level and below, and only on writers safe for concurrent whole-line
// writes (files, io.Discard); anything else goes through slog.
func TestAccessLogWriter(t *testing.T) {
	var buf bytes.Buffer
	tests := []struct {
		name string
		c    config.Log
		w    io.Writer
		want io.Writer
	}{
		{"stderr json info", config.Log{Level: "info", Format: "json"}, os.Stderr, os.Stderr},
		{"discard", config.Log{Level: "debug", Format: "json"}, io.Discard, io.Discard},
		{"text", config.Log{Level: "info", Format: "text"}, os.Stderr, nil},
		{"warn", config.Log{Level: "warn", Format: "json"}, os.Stderr, nil},
		{"buffer", config.Log{Level: "info", Format: "json"}, &buf, nil},
	}
	for _, tt := range tests {
		if got := accessLogWriter(newLogger(tt.c, tt.w), tt.w); got != tt.want {
			t.Errorf("%s: accessLogWriter = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestApplyGCLeavesWhatTheEnvironmentSet: with GOGC and GOMEMLIMIT set,
// the process keeps the runtime's settings; without, the configuration's
// apply. (Process-wide state: restored at the end.)
func TestApplyGCLeavesWhatTheEnvironmentSet(t *testing.T) {
	percent0, limit0 := debug.SetGCPercent(123), debug.SetMemoryLimit(321<<20)
	t.Cleanup(func() { debug.SetGCPercent(percent0); debug.SetMemoryLimit(limit0) })
	log := slog.New(slog.DiscardHandler)
	s := config.Server{GCPercent: 400, MemoryLimitMB: 512}
	applyGC(s, func(k string) string { return map[string]string{"GOGC": "123", "GOMEMLIMIT": "321MiB"}[k] }, log)
	if p, l := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); p != 123 || l != 321<<20 {
		t.Fatalf("with GOGC and GOMEMLIMIT set: gc percent %d, limit %d; want the environment's 123, %d", p, l, 321<<20)
	}
	applyGC(s, func(string) string { return "" }, log)
	if p, l := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1); p != 400 || l != 512<<20 {
		t.Fatalf("from the configuration: gc percent %d, limit %d; want 400, %d", p, l, 512<<20)
	}
}
