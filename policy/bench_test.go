package policy

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// bigCatalog: 2,000 groups (20 departments of 99 teams under acme-corp),
// 20,000 users (10 per team, some in a second team), 10,000 components.
func bigCatalog(rev string) *testCatalog {
	groups := []fxGroup{{"acme-corp", ""}, {"sre-oncall", "acme-corp"}}
	var teams []string
	for d := range 19 {
		dept := fmt.Sprintf("dept-%d", d)
		groups = append(groups, fxGroup{dept, "acme-corp"})
		for tm := range 104 {
			name := fmt.Sprintf("team-%d-%d", d, tm)
			groups = append(groups, fxGroup{name, dept})
			teams = append(teams, name)
		}
	}
	groups = groups[:2000]
	teams = teams[:len(teams)-(len(groups)+len(teams)-2000-21+2)] // keep only teams that survived the cut
	var users []fxUser
	for i := range 20000 {
		g := []string{teams[i%len(teams)]}
		if i%7 == 0 {
			g = append(g, teams[(i*31)%len(teams)])
		}
		users = append(users, fxUser{name: fmt.Sprintf("user-%d", i), groups: g})
	}
	var ents []fxEntity
	for i := range 10000 {
		ents = append(ents, fxEntity{"component", fmt.Sprintf("svc-%d", i), gref(teams[i%len(teams)])})
	}
	return buildCatalog(rev, groups, users, ents, nil)
}

var (
	bigOnce sync.Once
	bigCat  *testCatalog
)

func benchEngine(b *testing.B) (*Engine, *testCatalog) {
	bigOnce.Do(func() { bigCat = bigCatalog("big-1") })
	e := newTestEngine(b, Options{})
	if err := e.SetCatalog(bigCat); err != nil {
		b.Fatal(err)
	}
	return e, bigCat
}

// decideEngine is benchEngine for decision benchmarks: the engine holds the
// converted catalog while the source document is dropped, as in backgate,
// where package backstage builds the document only for SetCatalog. (A
// retained document would double the heap every GC cycle marks and bill
// that to each decision.)
func decideEngine(b *testing.B, opts Options) *Engine {
	cat := bigCatalog("big-1")
	e := newTestEngine(b, opts)
	if err := e.SetCatalog(cat); err != nil {
		b.Fatal(err)
	}
	cat.doc = nil
	return e
}

// BenchmarkDecide: staging decisions allowed by the owning-group rule
// against the 10k/2k/20k catalog, each iteration for a different user and
// service (user-i is in the team that owns svc-i), so nothing is served from
// a previous decision.
func BenchmarkDecide(b *testing.B) {
	benchDecide(b, decideEngine(b, Options{}), ownerInputs(b, 10000), true)
}

// BenchmarkDecideOneInput repeats one decision (evaluated every time: the
// engine has no decision cache; that is DecisionCache): the policy's
// cost without the memory latency of touching a different part of a large
// catalog each time.
func BenchmarkDecideOneInput(b *testing.B) {
	benchDecide(b, decideEngine(b, Options{}), ownerInputs(b, 1), true)
}

// ownerInputs is n staging requests, user-i for svc-i, each allowed by the
// owning-group rule (checked by benchDecide).
func ownerInputs(b *testing.B, n int) []Input {
	ins := make([]Input, n)
	for i := range ins {
		ins[i] = req(fmt.Sprintf("user-%d", i), fmt.Sprintf("component:default/svc-%d", i), "staging")
	}
	return ins
}

// benchDecide checks that the first, middle and last inputs get the
// decision expected (allow, owning_group rule, or deny), then decides the
// inputs in turn, reporting CPU time per decision (GC included) and the
// number of GC cycles.
func benchDecide(b *testing.B, e *Engine, ins []Input, allow bool) {
	for _, i := range []int{0, len(ins) / 2, len(ins) - 1} {
		d, err := e.Decide(context.Background(), ins[i])
		if err != nil || d.Allow != allow || allow && d.Rules[0] != "owning_group" {
			b.Fatalf("fixture decision %d: %+v %v", i, d, err)
		}
	}
	ctx := context.Background()
	runtime.GC() // do not bill the fixture's garbage to the loop
	b.ReportAllocs()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcs, pause := ms.NumGC, ms.PauseTotalNs
	cpu := cpuTime()
	i := 0
	for b.Loop() {
		if _, err := e.Decide(ctx, ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportCPU(b, cpu)
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.NumGC-gcs), "GCs")
	b.Logf("heap %d MB, %d GCs, pause %v", ms.HeapAlloc>>20, ms.NumGC-gcs, time.Duration(ms.PauseTotalNs-pause))
}

// cpuTime is this process's user+system CPU time. On a shared machine the
// wall-clock ns/op includes time other processes held the CPUs; cpu-ns/op
// (which includes GC work) is the figure to compare against the target.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkDecideParallel: BenchmarkDecideOneInput from every P at once (decisions
// share no lock: policy and data are read through atomic pointers).
func BenchmarkDecideParallel(b *testing.B) {
	e := decideEngine(b, Options{})
	in := req("user-0", "component:default/svc-0", "staging")
	ctx := context.Background()
	runtime.GC()
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, err := e.Decide(ctx, in); err != nil || !d.Allow {
				panic(fmt.Sprintf("decision: %+v %v", d, err))
			}
		}
	})
	reportCPU(b, cpu)
}

// BenchmarkSetCatalog: converting and publishing the 10k/2k/20k catalog.
// Reports the heap the engine retains for it (measured after GC, with the
// previous snapshot released) besides time and allocations per swap.
func BenchmarkSetCatalog(b *testing.B) {
	e, cat := benchEngine(b)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if err := e.SetCatalog(cat); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
	b.StopTimer()
	empty := newTestEngine(b, Options{})
	before := heapAfterGC()
	if err := empty.SetCatalog(cat); err != nil {
		b.Fatal(err)
	}
	after := heapAfterGC()
	runtime.KeepAlive(empty)
	b.ReportMetric(float64(after-before)/(1<<20), "retained-MB")
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkDecideDeny: a prod request no rule allows (exercises the reason
// for "nothing matched").
func BenchmarkDecideDeny(b *testing.B) {
	benchDecide(b, decideEngine(b, Options{}), []Input{req("user-1", "component:default/svc-0", "prod")}, false)
}

// BenchmarkCatalogSwapUnderLoad: Decide in parallel while another goroutine
// swaps the full catalog continuously ("swapping"), and the same without
// swaps ("idle", the calibration on a shared machine). Reports the swap
// time and the Decide latency percentiles seen.
func BenchmarkCatalogSwapUnderLoad(b *testing.B) {
	b.Run("swapping", func(b *testing.B) { benchSwapUnderLoad(b, true) })
	b.Run("idle", func(b *testing.B) { benchSwapUnderLoad(b, false) })
}

func benchSwapUnderLoad(b *testing.B, swapping bool) {
	e, cat := benchEngine(b)
	other := *cat
	other.rev = "big-2"
	in := req("user-0", "component:default/svc-0", "staging")
	var stop atomic.Bool
	var swaps atomic.Int64
	var swapNs atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		cats := []*testCatalog{cat, &other}
		for i := 0; swapping && !stop.Load(); i++ {
			start := time.Now()
			if err := e.SetCatalog(cats[i%2]); err != nil {
				panic(err)
			}
			swapNs.Add(int64(time.Since(start)))
			swaps.Add(1)
		}
	}()
	var worst atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1<<16)
		defer func() {
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
		for pb.Next() {
			start := time.Now()
			d, err := e.Decide(ctx, in)
			el := time.Since(start)
			mine = append(mine, el)
			if int64(el) > worst.Load() {
				worst.Store(int64(el))
			}
			if err != nil || !d.Allow {
				panic(fmt.Sprintf("decision during swap: %+v %v", d, err))
			}
		}
	})
	stop.Store(true)
	<-done
	if n := swaps.Load(); n > 0 {
		b.ReportMetric(float64(swapNs.Load())/float64(n)/1e6, "ms/swap")
		b.ReportMetric(float64(n), "swaps")
	}
	b.ReportMetric(float64(worst.Load())/1e3, "worst-µs/decide")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs/decide")
		b.ReportMetric(float64(lat[len(lat)*999/1000])/1e3, "p999-µs/decide")
	}
}

func BenchmarkDecideSmallCatalog(b *testing.B) {
	e := newTestEngine(b, Options{})
	if err := e.SetCatalog(smallCatalog("s")); err != nil {
		b.Fatal(err)
	}
	benchDecide(b, e, []Input{req("alice", "component:default/petstore", "staging")}, true)
}

// BenchmarkDecideTrivialPolicy is the engine's fixed cost: a policy that
// only returns a constant decision.
func BenchmarkDecideTrivialPolicy(b *testing.B) {
	fsys := fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(`package backgate.authz

decision := {"allow": true, "matched": {{"rule": "owning_group", "reason": "ok"}}}
`)}}
	benchDecide(b, newTestEngine(b, Options{PolicyFS: fsys}), []Input{req("alice", "component:default/petstore", "staging")}, true)
}

// BenchmarkInputBuild: the decision input as an AST value, built directly
// from the request (no JSON round trip), with the fields the shipped policy
// reads; the route part comes from the route cache after the first request.
func BenchmarkInputBuild(b *testing.B) {
	e := newTestEngine(b, Options{})
	ib := e.policy.Load().input
	in := req("user-0", "component:default/svc-0", "staging")
	in.User.Groups = []string{"okta-eng", "okta-sre"}
	if v := ib.build(&in, "user:default/user-0"); v == nil {
		b.Fatal("no input")
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = ib.build(&in, "user:default/user-0")
	}
}
