package app

import (
	"bytes"
	"io"
	"math"
	"os"
	"testing"

	"github.com/backgate/backgate/config"
)

func TestGCFor(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		s       config.Server
		env     map[string]string
		percent int
		limit   int64
	}{
		{"defaults", config.Server{GCPercent: 400}, nil, 400, math.MaxInt64},
		{"limit", config.Server{GCPercent: 200, MemoryLimitMB: 512}, nil, 200, 512 << 20},
		{"off with limit", config.Server{GCPercent: -1, MemoryLimitMB: 1024}, nil, -1, 1024 << 20},
		{"GOGC wins", config.Server{GCPercent: 400, MemoryLimitMB: 512}, map[string]string{"GOGC": "100"}, -2, 512 << 20},
		{"GOMEMLIMIT wins", config.Server{GCPercent: 400, MemoryLimitMB: 512}, map[string]string{"GOMEMLIMIT": "1GiB"}, 400, -2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := gcFor(tt.s, env(tt.env))
			if g.percent != tt.percent || g.limit != tt.limit {
				t.Fatalf("gcFor = %+v, want percent %d limit %d", g, tt.percent, tt.limit)
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
		if got := accessLogWriter(tt.c, tt.w); got != tt.want {
			t.Errorf("%s: accessLogWriter = %v, want %v", tt.name, got, tt.want)
		}
	}
}
