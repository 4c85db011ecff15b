package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/backstage"
	"github.com/backgate/backgate/policy"
)

// TestMain lets the test binary play the child roles: the end-to-end test
// re-executes it with --role=..., as the real binary re-executes itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "--role=") {
		if err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString("child: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: percentile must sort
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 0.50, 50 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p99 of 4", ms(4, 1, 3, 2), 0.99, 4 * time.Millisecond},
		{"p50 of 4", ms(4, 1, 3, 2), 0.50, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"1,8,32,64", []int{1, 8, 32, 64}, false},
		{" 4 ", []int{4}, false},
		{"0", nil, true},
		{"1,x", nil, true},
		{"2000", nil, true},
		{"", nil, true},
	} {
		got, err := parseInts(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("parseInts(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	for _, args := range [][]string{{"--rounds=0"}, {"--rounds=21"}, {"--target-rounds=0"}, {"--target-rounds=61"}, {"--target-duration=0s"}, {"--target-duration=2m"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, strings.NewReader(""), &out, &out); err == nil || !strings.Contains(err.Error(), strings.Split(args[0], "=")[0]) {
			t.Errorf("run(%q) = %v, want an error naming the flag", args, err)
		}
	}
	if _, err := parseCatalog("10,5,10"); err == nil {
		t.Error("parseCatalog accepted 5 groups")
	}
	if sz, err := parseCatalog("100,20,300"); err != nil || sz != (catalogSize{100, 20, 300}) {
		t.Errorf("parseCatalog = %+v, %v", sz, err)
	}
}

// TestGeneratedCatalogDecisions: the shipped policy over the generated
// catalog lets the bench user into its group's service in staging and
// keeps another team's member out, so the benchmark measures a real
// evaluation that could have said no.
func TestGeneratedCatalogDecisions(t *testing.T) {
	snap, err := genSnapshot(catalogSize{Components: 500, Groups: 100, Users: 1000}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cat, err := backstage.Build(snap, backstage.BuildOptions{Identity: backstage.IdentityOptions{UserMatch: []string{"email", "name"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := cat.Problems(); len(p) > 0 {
		t.Fatalf("generated catalog has problems: %v", p[:min(3, len(p))])
	}
	eng, err := policy.New(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.SetCatalog(cat); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, email, env string
		want             bool
	}{
		{"bench user, staging", benchEmail, benchEnv, true},
		{"bench user, prod (owning group)", benchEmail, "prod", true},
		{"member of another team", "u1@bench.example", benchEnv, false},
		{"unknown user", "nobody@bench.example", benchEnv, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := eng.Decide(context.Background(), policy.Input{
				User:  policy.User{Subject: "s", Email: tc.email},
				Route: policy.Route{Name: "bench", Host: routeHost, PathPrefix: "/", Service: benchService, Environment: tc.env},
			})
			if err != nil || d.Allow != tc.want {
				t.Errorf("Decide = allow %v (%v, rules %v), err %v; want allow %v", d.Allow, d.Reasons, d.Rules, err, tc.want)
			}
		})
	}
}

// TestEndToEnd runs the whole benchmark briefly with a small catalog:
// child processes, a real login, the signed-header check, alternating
// rounds, and the report.
func TestEndToEnd(t *testing.T) {
	heap := filepath.Join(t.TempDir(), "heap.prof")
	rep := runBenchInTest(t, benchOptions{Duration: 100 * time.Millisecond, Warmup: 50 * time.Millisecond, Concurrency: []int{2, 32},
		Rounds: 2, TargetRounds: 3, TargetDuration: 400 * time.Millisecond, MaxRequests: 100_000, BodySize: 100, Catalog: catalogSize{Components: 300, Groups: 60, Users: 600},
		MemProfile: heap})
	// Heap profiles of both proxies, written as they stop: gzipped protobuf.
	for _, p := range []string{heap, heap + ".bare"} {
		if b, err := os.ReadFile(p); err != nil || len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("heap profile %s: %d bytes, %v; want a gzipped profile", p, len(b), err)
		}
	}
	// Two rounds at 2 connections, three at 32 (where the targets are
	// judged), each a run of both targets.
	perConns := map[int]int{}
	for _, r := range rep.Runs {
		perConns[r.Conns]++
	}
	if len(rep.Runs) != 2*2+3*2 || perConns[2] != 4 || perConns[32] != 6 {
		t.Fatalf("%d runs %v, want 4 at 2 connections and 6 at 32", len(rep.Runs), perConns)
	}
	// 100 ms rounds, 400 ms at 32 connections: a run lasts its length
	// plus the last requests' latency, which the gap leaves room for even
	// under -race on a busy machine.
	for _, r := range rep.Runs {
		if long := r.Elapsed >= 300*time.Millisecond; long != (r.Conns == 32) {
			t.Errorf("run at %d connections took %s: want 400 ms rounds at 32 connections only", r.Conns, r.Elapsed)
		}
	}
	// Round 0 is bare then backgate, round 1 the other way round.
	if rep.Runs[0].Target != nameBare || rep.Runs[1].Target != nameBackgate || rep.Runs[2].Target != nameBackgate || rep.Runs[3].Target != nameBare {
		t.Errorf("run order %s %s %s %s, want bare backgate backgate bare", rep.Runs[0].Target, rep.Runs[1].Target, rep.Runs[2].Target, rep.Runs[3].Target)
	}
	for _, r := range rep.Runs {
		if r.Requests == 0 || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("run %+v: want requests, no errors, 0 < p50 <= p99", r)
		}
	}
	if len(rep.Comparisons) != 2 || rep.Verdict == nil || rep.Verdict.Conns != 32 {
		t.Errorf("comparisons %+v, verdict %+v", rep.Comparisons, rep.Verdict)
	}
	if len(rep.Memory) != 3 {
		t.Fatalf("memory %+v", rep.Memory)
	}
	for _, m := range rep.Memory {
		if m.PeakRSS <= 0 || m.PeakRSS < m.RSS {
			t.Errorf("memory %+v: want 0 < RSS <= peak", m)
		}
	}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{"backgate/bare", "peak memory (VmHWM):", "targets at 32 connections: throughput"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	b, err := json.Marshal(rep)
	if err != nil || !json.Valid(b) {
		t.Errorf("JSON report: %v", err)
	}
}

// TestMedianInterval: the sign test's 90% interval for a median is the
// k-th smallest and k-th largest value, k from the binomial distribution:
// 4 of 15 (96.5% coverage; 5 would give 88%), 2 of 10, 1 of 5, and none
// for 4 values (the extremes cover only 87.5%).
func TestMedianInterval(t *testing.T) {
	seq := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(n - i) // reversed: the function must sort
		}
		return v
	}
	for _, tc := range []struct {
		n      int
		lo, hi float64
		ok     bool
	}{
		{15, 4, 12, true},
		{10, 2, 9, true},
		{5, 1, 5, true},
		{4, 0, 0, false},
		{0, 0, 0, false},
	} {
		v := seq(tc.n)
		lo, hi, ok := medianInterval(v, 0.90)
		if lo != tc.lo || hi != tc.hi || ok != tc.ok {
			t.Errorf("n=%d: [%v, %v] %v, want [%v, %v] %v", tc.n, lo, hi, ok, tc.lo, tc.hi, tc.ok)
		}
		if tc.n > 0 && v[0] != float64(tc.n) {
			t.Errorf("n=%d: medianInterval reordered its argument", tc.n)
		}
	}
	if lo, hi, ok := medianInterval(seq(15), 0.80); !ok || lo != 5 || hi != 11 { // 2*P(X<=4) = 11.8% <= 20%
		t.Errorf("80%% of 15: [%v, %v] %v, want [5, 11]", lo, hi, ok)
	}
}

// TestPairedComparison: the comparison pairs the k-th run of each target
// and takes the median of the per-round ratios and differences. With the
// machine drifting between rounds, that is 0.9x and +0.5 ms here, where the
// ratio of the two targets' medians would say 0.8x and the difference of
// their p99 medians +0.2 ms.
func TestPairedComparison(t *testing.T) {
	r := &report{Options: benchOptions{Concurrency: []int{32}}}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	bareRPS, bgRPS := []float64{10000, 6000, 9000}, []float64{9000, 5700, 7200} // per round: 0.90x, 0.95x, 0.80x
	bareP99, bgP99 := []float64{1, 2, 3}, []float64{1.5, 2.2, 4.0}              // per round: +0.5, +0.2, +1.0 ms
	for k := range bareRPS {
		r.Runs = append(r.Runs,
			runResult{Target: nameBare, Conns: 32, RPS: bareRPS[k], P99: ms(bareP99[k]), CPUPerReq: 70 * time.Microsecond,
				lat: []time.Duration{ms(bareP99[k])}},
			runResult{Target: nameBackgate, Conns: 32, RPS: bgRPS[k], P99: ms(bgP99[k]), CPUPerReq: 80 * time.Microsecond,
				lat: []time.Duration{ms(bgP99[k])}})
	}
	r.summarise()
	if len(r.Comparisons) != 1 {
		t.Fatalf("comparisons: %+v", r.Comparisons)
	}
	c := r.Comparisons[0]
	if c.RPSRatio < 0.8999 || c.RPSRatio > 0.9001 || c.P99Extra != 500*time.Microsecond || c.CPUExtraPerRq != 10*time.Microsecond {
		t.Fatalf("comparison = %+v, want 0.9x, +500us p99, +10us cpu", c)
	}
	if r.Verdict == nil || !r.Verdict.ThroughputMet || !r.Verdict.P99Met {
		t.Fatalf("verdict = %+v", r.Verdict)
	}
	if c.P99Interval != nil || r.Verdict.P99IntervalMs != nil { // three rounds: too few for an interval
		t.Errorf("interval from 3 rounds: %v", c.P99Interval)
	}
	// Two more rounds (+0.1 and +0.3 ms): five are enough, and the interval
	// runs from the smallest to the largest difference.
	for _, d := range []float64{0.1, 0.3} {
		r.Runs = append(r.Runs,
			runResult{Target: nameBare, Conns: 32, RPS: 10000, P99: ms(2), lat: []time.Duration{ms(2)}},
			runResult{Target: nameBackgate, Conns: 32, RPS: 9500, P99: ms(2 + d), lat: []time.Duration{ms(2 + d)}})
	}
	r.summarise()
	if iv := r.Comparisons[0].P99Interval; iv == nil || iv[0] != ms(0.1) || iv[1] != ms(1.0) {
		t.Fatalf("interval from 5 rounds: %v, want [0.1ms, 1ms]", iv)
	}
	var out bytes.Buffer
	r.write(&out)
	// One request per round: the pooled p99 of five is the slowest of each
	// target (3 ms and 4 ms).
	for _, want := range []string{"lies in +0.10..+1.00 ms with 90% confidence",
		"p99 over every request of the 32-connection rounds (not the verdict's figure): +1.000 ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if v := r.Verdict; v.P99PooledExtraMs != 1 || v.P99PooledIntervalMs == nil {
		t.Errorf("verdict pooled p99 %v interval %v, want +1 ms with an interval", v.P99PooledExtraMs, v.P99PooledIntervalMs)
	}
	// A round whose bare run served nothing is left out of every figure,
	// the pooled p99 too: its 100 ms backgate request must not count.
	r.Runs = append(r.Runs,
		runResult{Target: nameBare, Conns: 32},
		runResult{Target: nameBackgate, Conns: 32, RPS: 10, P99: ms(100), lat: []time.Duration{ms(100)}})
	r.summarise()
	if c := r.Comparisons[0]; c.P99Pooled != ms(1) || c.P99Extra != ms(0.3) {
		t.Errorf("with an empty bare round: pooled %v, median %v; want 1ms and 300us as without it", c.P99Pooled, c.P99Extra)
	}
}

// TestAACalibration: with --aa a second bare proxy stands in for backgate
// (nothing signs, nobody logs in) and the report calls the comparison a
// noise floor, not a verdict on backgate.
func TestAACalibration(t *testing.T) {
	rep := runBenchInTest(t, benchOptions{Duration: 100 * time.Millisecond, Concurrency: []int{32}, Rounds: 2, MaxRequests: 100_000,
		BodySize: 100, Catalog: catalogSize{Components: 10, Groups: 5, Users: 10}, AA: true})
	for _, r := range rep.Runs {
		if r.Requests == 0 || r.Errors != 0 {
			t.Errorf("run %+v: want requests and no errors", r)
		}
	}
	if len(rep.Memory) != 3 || rep.Memory[2].Process != "bare B" {
		t.Errorf("memory %+v: want upstream, bare, bare B", rep.Memory)
	}
	var out bytes.Buffer
	rep.write(&out)
	for _, want := range []string{"A/A calibration", "B/bare", "noise floor at 32 connections"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "backgate/bare") || strings.Contains(out.String(), "targets at") {
		t.Errorf("A/A report speaks of backgate:\n%s", out.String())
	}
}

// runBenchInTest runs the benchmark with o (children are this test binary),
// or skips in -short mode.
func runBenchInTest(t *testing.T, o benchOptions) *report {
	t.Helper()
	if testing.Short() {
		t.Skip("starts three processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := runBench(ctx, exe, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
