package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backgate-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("backgate-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := benchOptions{Catalog: defaultCatalog}
	conc := fs.String("concurrency", "1,8,32,64", "comma-separated connection counts")
	fs.DurationVar(&o.Duration, "duration", time.Second, "length of each timed run")
	fs.DurationVar(&o.Warmup, "warmup", time.Second, "warm-up per target before the timed runs")
	fs.IntVar(&o.Rounds, "rounds", 6, "timed runs per target and concurrency (A/B alternated); the medians are reported")
	fs.IntVar(&o.TargetRounds, "target-rounds", 15, "timed runs per target at 32 connections, where the targets are judged")
	fs.DurationVar(&o.TargetDuration, "target-duration", 2*time.Second, "length of each timed run at 32 connections")
	fs.Int64Var(&o.MaxRequests, "max-requests", 2_000_000, "upper bound on requests per run")
	fs.IntVar(&o.BodySize, "body-size", 512, "upstream response body size in bytes")
	fs.BoolVar(&o.Unique, "unique-tokens", false, "mint fresh tokens per request (signing.unique_tokens), as BIG-IP replay protection needs")
	fs.BoolVar(&o.NoCache, "no-decision-cache", false, "evaluate the policy for every request (policy.decision_cache off)")
	fs.BoolVar(&o.DecisionLog, "decision-log", false, "write backgate's decision log (to a discarding writer)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the backgate process (load phase) to this file, and of the bare proxy to this file plus .bare")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile of the backgate process after the load (live objects after a GC) to this file, and of the bare proxy to this file plus .bare")
	fs.IntVar(&o.BareGCPercent, "bare-gc-percent", 100, "GOGC of the bare proxy (backgate uses its server.gc_percent default)")
	fs.BoolVar(&o.AA, "aa", false, "A/A calibration: a second bare proxy takes backgate's place, so the ratios show this machine's noise floor")
	catalog := fs.String("catalog", "", "catalog size components,groups,users (default 10000,2000,20000)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no per-run progress lines on stderr")
	// Child process flags (hidden: set by the parent only).
	var co childOptions
	fs.StringVar(&co.role, "role", "", "")
	fs.StringVar(&co.upstream, "upstream", "", "")
	fs.StringVar(&co.external, "external", "", "")
	fs.StringVar(&co.issuer, "issuer", "", "")
	fs.StringVar(&co.dataDir, "data-dir", "", "")
	fs.StringVar(&co.routeHost, "route-host", "", "")
	fs.IntVar(&co.gcPercent, "gc-percent", 0, "")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: backgate-bench [flags]\n\nCompares backgate with a bare reverse proxy under the same load on 127.0.0.1.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Usage == "" {
				return // child-process flag
			}
			fmt.Fprintf(stderr, "  --%s (default %q)\n    \t%s\n", f.Name, f.DefValue, f.Usage)
		})
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *catalog != "" {
		sz, err := parseCatalog(*catalog)
		if err != nil {
			return fmt.Errorf("--catalog: %w", err)
		}
		o.Catalog = sz
	}
	if co.role != "" {
		co.bodySize, co.catalog, co.unique, co.noCache, co.decisionLg, co.cpuProfile, co.memProfile = o.BodySize, o.Catalog, o.Unique, o.NoCache, o.DecisionLog, o.CPUProfile, o.MemProfile
		return runChild(co, stdin, stdout, stderr)
	}
	cs, err := parseInts(*conc)
	if err != nil {
		return fmt.Errorf("--concurrency: %w", err)
	}
	o.Concurrency = cs
	switch {
	case o.Duration <= 0 || o.Duration > time.Minute:
		return fmt.Errorf("--duration %s: must be in (0, 1m]", o.Duration)
	case o.TargetDuration <= 0 || o.TargetDuration > time.Minute:
		return fmt.Errorf("--target-duration %s: must be in (0, 1m]", o.TargetDuration)
	case o.Warmup < 0 || o.Warmup > time.Minute:
		return fmt.Errorf("--warmup %s: must be in [0, 1m]", o.Warmup)
	case o.Rounds < 1 || o.Rounds > 20:
		return fmt.Errorf("--rounds %d: must be 1-20", o.Rounds)
	case o.TargetRounds < 1 || o.TargetRounds > 60:
		return fmt.Errorf("--target-rounds %d: must be 1-60", o.TargetRounds)
	case o.MaxRequests < 1:
		return fmt.Errorf("--max-requests %d: must be positive", o.MaxRequests)
	case o.BodySize < 0 || o.BodySize > 1<<20:
		return fmt.Errorf("--body-size %d: must be 0-1048576", o.BodySize)
	}
	if !*quiet {
		o.Progress = stderr
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	rep, err := runBench(ctx, exe, o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.write(stdout)
	return nil
}

// parseInts reads "1,8,32": positive, at most 1024 each, at most 16 of them.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("%q: want positive integers up to 1024", f)
		}
		out = append(out, n)
	}
	if len(out) > 16 {
		return nil, fmt.Errorf("%d values: at most 16", len(out))
	}
	return out, nil
}

func parseCatalog(s string) (catalogSize, error) {
	n, err := parseCounts(s)
	if err != nil {
		return catalogSize{}, err
	}
	sz := catalogSize{Components: n[0], Groups: n[1], Users: n[2]}
	if sz.Groups < 10 || sz.Components > 1_000_000 || sz.Groups > 1_000_000 || sz.Users > 1_000_000 {
		return catalogSize{}, fmt.Errorf("%q: want components,groups,users with 10 or more groups, each at most 1000000", s)
	}
	return sz, nil
}

func parseCounts(s string) ([3]int, error) {
	var n [3]int
	f := strings.Split(s, ",")
	if len(f) != 3 {
		return n, fmt.Errorf("%q: want three numbers components,groups,users", s)
	}
	for i, v := range f {
		x, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || x < 1 {
			return n, fmt.Errorf("%q: %q is not a positive number", s, v)
		}
		n[i] = x
	}
	return n, nil
}
