package app

import (
	"log/slog"
	"math"
	"runtime/debug"

	"github.com/backgate/backgate/config"
)

// gcSettings is what applyGC sets: the GC percent (-1: off) and the soft
// memory limit in bytes (math.MaxInt64: none), each unless the environment's
// GOGC or GOMEMLIMIT, which the runtime has already applied, decides it.
type gcSettings struct {
	percent                      int
	limit                        int64
	percentFromEnv, limitFromEnv bool
}

// gcFor resolves server.gc_percent and server.memory_limit_mb against the
// environment: Go's own GOGC and GOMEMLIMIT variables, when set, win.
func gcFor(s config.Server, getenv func(string) string) gcSettings {
	g := gcSettings{percent: s.GCPercent, limit: math.MaxInt64,
		percentFromEnv: getenv("GOGC") != "", limitFromEnv: getenv("GOMEMLIMIT") != ""}
	if s.MemoryLimitMB > 0 {
		g.limit = int64(s.MemoryLimitMB) << 20
	}
	return g
}

// applyGC sets the serving process's garbage-collector settings. It is
// process-wide, so only Run calls it.
func applyGC(s config.Server, getenv func(string) string, log *slog.Logger) {
	g := gcFor(s, getenv)
	percent, limit := any(g.percent), any(g.limit)
	if g.percentFromEnv {
		percent = "GOGC=" + getenv("GOGC")
	} else {
		debug.SetGCPercent(g.percent)
	}
	if g.limitFromEnv {
		limit = "GOMEMLIMIT=" + getenv("GOMEMLIMIT")
	} else {
		debug.SetMemoryLimit(g.limit)
	}
	log.Info("garbage collector", "gc_percent", percent, "memory_limit_bytes", limit)
}
