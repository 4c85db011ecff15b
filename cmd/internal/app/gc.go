package app

import (
	"log/slog"
	"math"
	"runtime/debug"

	"github.com/backgate/backgate/config"
)

// gcSettings is what applyGC sets: the GC percent and the soft memory limit
// in bytes (math.MaxInt64: none); a field is -2 when the environment's GOGC
// or GOMEMLIMIT decides instead.
type gcSettings struct {
	percent int
	limit   int64
}

// gcFor resolves server.gc_percent and server.memory_limit_mb against the
// environment: Go's own GOGC and GOMEMLIMIT variables, when set, win (the
// runtime has already applied them).
func gcFor(s config.Server, getenv func(string) string) gcSettings {
	g := gcSettings{percent: s.GCPercent, limit: math.MaxInt64}
	if s.MemoryLimitMB > 0 {
		g.limit = int64(s.MemoryLimitMB) << 20
	}
	if getenv != nil && getenv("GOGC") != "" {
		g.percent = -2
	}
	if getenv != nil && getenv("GOMEMLIMIT") != "" {
		g.limit = -2
	}
	return g
}

// applyGC sets the serving process's garbage-collector settings. It is
// process-wide, so only Run calls it.
func applyGC(s config.Server, getenv func(string) string, log *slog.Logger) {
	g := gcFor(s, getenv)
	if g.percent != -2 {
		debug.SetGCPercent(g.percent)
	}
	if g.limit != -2 {
		debug.SetMemoryLimit(g.limit)
	}
	percent := debug.SetGCPercent(-1) // read it back, whoever set it
	debug.SetGCPercent(percent)
	log.Info("garbage collector", "gc_percent", percent, "memory_limit_bytes", debug.SetMemoryLimit(-1),
		"gogc_from_env", g.percent == -2, "gomemlimit_from_env", g.limit == -2)
}
