package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/backgate/backgate/config"
)

// Targets from the issue, checked at targetConns connections.
const (
	targetConns      = 32
	targetThroughput = 0.9
	targetP99Extra   = time.Millisecond
)

type memory struct {
	Process string `json:"process"`
	PeakRSS int64  `json:"peak_rss_bytes"` // VmHWM
	RSS     int64  `json:"rss_bytes"`      // VmRSS at the end
}

// summary is the median over rounds of one target at one concurrency.
type summary struct {
	Target    string        `json:"target"`
	Conns     int           `json:"conns"`
	RPS       float64       `json:"rps"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	CPUPerReq time.Duration `json:"server_cpu_per_req_ns"`
	Errors    int64         `json:"errors"`
}

// comparison is backgate against bare at one concurrency: medians of the
// per-round ratios and differences (see paired).
type comparison struct {
	Conns         int           `json:"conns"`
	RPSRatio      float64       `json:"rps_ratio"` // backgate / bare
	P50Extra      time.Duration `json:"p50_extra_ns"`
	P99Extra      time.Duration `json:"p99_extra_ns"`
	CPUExtraPerRq time.Duration `json:"server_cpu_extra_per_req_ns"`
	// P99Interval is a distribution-free interval (sign test) holding the
	// median per-round p99 difference with at least 90% confidence; absent
	// with fewer than 5 rounds.
	P99Interval *[2]time.Duration `json:"p99_extra_interval_ns,omitempty"`
	// P99Pooled is backgate's p99 over the requests of all its rounds
	// minus bare's over all of theirs; P99PooledInterval its 90% bootstrap
	// interval over round pairs (absent with fewer than 5 rounds).
	P99Pooled         time.Duration     `json:"p99_pooled_extra_ns"`
	P99PooledInterval *[2]time.Duration `json:"p99_pooled_extra_interval_ns,omitempty"`
}

type verdict struct {
	Conns           int     `json:"conns"`
	ThroughputRatio float64 `json:"throughput_ratio"`
	ThroughputMet   bool    `json:"throughput_met"` // ratio >= 0.9
	P99ExtraMs      float64 `json:"p99_extra_ms"`
	P99Met          bool    `json:"p99_met"` // extra <= 1 ms
	// P99IntervalMs is the comparison's P99Interval in ms (absent with
	// fewer than 5 rounds).
	P99IntervalMs *[2]float64 `json:"p99_extra_interval_ms,omitempty"`
	// P99PooledExtraMs is the comparison's P99Pooled in ms: the p99 over
	// every request of the rounds, which counts a pause that only some
	// rounds meet (a large garbage collection) at its true weight. It is
	// reported beside the verdict, which the per-round median decides.
	P99PooledExtraMs    float64     `json:"p99_pooled_extra_ms"`
	P99PooledIntervalMs *[2]float64 `json:"p99_pooled_extra_interval_ms,omitempty"`
}

type report struct {
	Options        benchOptions `json:"options"`
	GoVersion      string       `json:"go_version"`
	CPUs           int          `json:"cpus"`
	LoadStart      string       `json:"load_average_start"`
	LoadEnd        string       `json:"load_average_end"`
	StartupSeconds float64      `json:"startup_seconds"`
	TotalSeconds   float64      `json:"total_seconds"`
	Runs           []runResult  `json:"runs"`
	Summaries      []summary    `json:"summaries"`
	Comparisons    []comparison `json:"comparisons"`
	Memory         []memory     `json:"memory"`
	Verdict        *verdict     `json:"verdict,omitempty"` // nil when 32 connections were not measured
}

// paired compares the two targets round by round (the k-th run of each,
// which the A/B/B/A order puts next to each other in time) and takes the
// median of the per-round ratios and differences, so drift of the machine
// over the whole run cancels out instead of landing on one target.
func (r *report) paired(c int) comparison {
	var bare, bg []runResult
	for _, run := range r.Runs {
		if run.Conns != c {
			continue
		}
		switch run.Target {
		case nameBare:
			bare = append(bare, run)
		case nameBackgate:
			bg = append(bg, run)
		}
	}
	var ratio []float64
	var p50, p99, cpu []time.Duration
	var latBare, latBG [][]time.Duration
	for k := range min(len(bare), len(bg)) {
		if bare[k].RPS == 0 {
			continue
		}
		latBare, latBG = append(latBare, bare[k].lat), append(latBG, bg[k].lat)
		ratio = append(ratio, bg[k].RPS/bare[k].RPS)
		p50 = append(p50, bg[k].P50-bare[k].P50)
		p99 = append(p99, bg[k].P99-bare[k].P99)
		cpu = append(cpu, bg[k].CPUPerReq-bare[k].CPUPerReq)
	}
	if len(ratio) == 0 {
		return comparison{Conns: c}
	}
	cmp := comparison{Conns: c, RPSRatio: median(ratio), P50Extra: median(p50), P99Extra: median(p99), CPUExtraPerRq: median(cpu)}
	if lo, hi, ok := medianInterval(p99, 0.90); ok {
		cmp.P99Interval = &[2]time.Duration{lo, hi}
	}
	var lo, hi time.Duration
	var ok bool
	if cmp.P99Pooled, lo, hi, ok = pooledP99Extra(latBare, latBG); ok {
		cmp.P99PooledInterval = &[2]time.Duration{lo, hi}
	}
	return cmp
}

// medianInterval is the sign test's interval for the median of v: the k-th
// smallest and k-th largest value, with k the largest rank for which the
// interval holds the median with probability at least conf, whatever the
// distribution of v (the values must be independent). ok is false when
// even the smallest and largest value give less than conf (fewer than 5
// values at 90%).
func medianInterval[T ~int64 | ~float64](v []T, conf float64) (lo, hi T, ok bool) {
	n := len(v)
	// tail(j) = P(Binomial(n, 1/2) <= j); the interval [x(k), x(n-k+1)]
	// misses the median with probability 2*tail(k-1).
	pmf := math.Pow(0.5, float64(n)) // P(X = 0)
	tail, k := 0.0, 0
	for j := 0; j < n/2; j++ {
		tail += pmf
		if 2*tail > 1-conf {
			break
		}
		k = j + 1
		pmf = pmf * float64(n-j) / float64(j+1)
	}
	if k == 0 {
		return lo, hi, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[k-1], s[n-k], true
}

// summarise takes, per concurrency and target, the median of each figure
// over the rounds, and compares backgate with bare round by round.
func (r *report) summarise() {
	r.Summaries, r.Comparisons, r.Verdict = nil, nil, nil
	for _, c := range r.Options.Concurrency {
		var pair [2]summary
		for i, name := range []string{nameBare, nameBackgate} {
			var rps []float64
			var p50, p99, cpu []time.Duration
			var errs int64
			for _, run := range r.Runs {
				if run.Conns == c && run.Target == name {
					rps = append(rps, run.RPS)
					p50, p99, cpu = append(p50, run.P50), append(p99, run.P99), append(cpu, run.CPUPerReq)
					errs += run.Errors
				}
			}
			if len(rps) == 0 {
				continue
			}
			pair[i] = summary{Target: name, Conns: c, RPS: median(rps), P50: median(p50), P99: median(p99),
				CPUPerReq: median(cpu), Errors: errs}
			r.Summaries = append(r.Summaries, pair[i])
		}
		if pair[0].RPS == 0 || pair[1].Target == "" {
			continue
		}
		cmp := r.paired(c)
		r.Comparisons = append(r.Comparisons, cmp)
		if c == targetConns {
			r.Verdict = &verdict{Conns: c, ThroughputRatio: cmp.RPSRatio, ThroughputMet: cmp.RPSRatio >= targetThroughput,
				P99ExtraMs: float64(cmp.P99Extra) / 1e6, P99Met: cmp.P99Extra <= targetP99Extra}
			r.Verdict.P99IntervalMs = msInterval(cmp.P99Interval)
			r.Verdict.P99PooledExtraMs = float64(cmp.P99Pooled) / 1e6
			r.Verdict.P99PooledIntervalMs = msInterval(cmp.P99PooledInterval)
		}
	}
}

// msInterval is iv in milliseconds (nil for nil).
func msInterval(iv *[2]time.Duration) *[2]float64 {
	if iv == nil {
		return nil
	}
	return &[2]float64{float64(iv[0]) / 1e6, float64(iv[1]) / 1e6}
}

// write prints the human-readable report.
func (r *report) write(w io.Writer) {
	o := r.Options
	judged := ""
	if slices.Contains(o.Concurrency, targetConns) {
		tr, td := o.plan(targetConns)
		judged = fmt.Sprintf(", %d x %s at %d connections where the targets are judged", tr, td, targetConns)
	}
	fmt.Fprintf(w, "backgate-bench: %s, %d CPUs; %d rounds x %s per target and concurrency%s (A/B alternated), median shown\n",
		r.GoVersion, r.CPUs, o.Rounds, o.Duration, judged)
	fmt.Fprintf(w, "catalog %d components / %d groups / %d users; body %d bytes; unique tokens %v; load average %s (start), %s (end)\n",
		o.Catalog.Components, o.Catalog.Groups, o.Catalog.Users, o.BodySize, o.Unique, r.LoadStart, r.LoadEnd)
	if o.AA {
		fmt.Fprintf(w, "A/A calibration: two bare proxies (GOGC %d), no backgate; \"bare B\" stands where backgate would\n\n", o.BareGCPercent)
	} else {
		fmt.Fprintf(w, "garbage collector: backgate server.gc_percent %d (its default), bare proxy GOGC %d\n\n", config.DefaultGCPercent, o.BareGCPercent)
	}
	label, ratio := func(t string) string { return t }, "backgate/bare"
	if o.AA {
		label = func(t string) string {
			if t == nameBackgate {
				return "bare B"
			}
			return t
		}
		ratio = "B/bare"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "conns\ttarget\treq/s\tp50\tp99\tproxy cpu/req\terrors\t")
	for _, c := range o.Concurrency {
		for _, s := range r.Summaries {
			if s.Conns == c {
				fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%s\t%d\t\n", c, label(s.Target), s.RPS, fmtDur(s.P50), fmtDur(s.P99), fmtDur(s.CPUPerReq), s.Errors)
			}
		}
		for _, cmp := range r.Comparisons {
			if cmp.Conns == c {
				fmt.Fprintf(tw, "\t%s\t%.2fx\t%s\t%s\t%s\t\t\n", ratio, cmp.RPSRatio, signed(cmp.P50Extra), signed(cmp.P99Extra), signed(cmp.CPUExtraPerRq))
			}
		}
	}
	_ = tw.Flush()
	fmt.Fprint(w, "\npeak memory (VmHWM):")
	for _, m := range r.Memory {
		fmt.Fprintf(w, "  %s %.1f MiB (now %.1f MiB)", m.Process, float64(m.PeakRSS)/(1<<20), float64(m.RSS)/(1<<20))
	}
	fmt.Fprintln(w)
	if v := r.Verdict; v != nil && o.AA {
		fmt.Fprintf(w, "noise floor at %d connections (two identical proxies, no target): throughput %.2fx, p99 %+.3f ms%s\n",
			v.Conns, v.ThroughputRatio, v.P99ExtraMs, v.interval())
	} else if v != nil {
		fmt.Fprintf(w, "targets at %d connections: throughput %.2fx bare (target >= %.2fx): %s; p99 %+.3f ms vs bare (target <= +%.0f ms): %s%s\n",
			v.Conns, v.ThroughputRatio, targetThroughput, metStr(v.ThroughputMet), v.P99ExtraMs, float64(targetP99Extra)/1e6, metStr(v.P99Met), v.interval())
	} else {
		fmt.Fprintf(w, "targets: not checked (needs %d connections in --concurrency)\n", targetConns)
	}
	if v := r.Verdict; v != nil {
		fmt.Fprintf(w, "p99 over every request of the %d-connection rounds (not the verdict's figure): %+.3f ms%s\n", v.Conns, v.P99PooledExtraMs, v.pooledInterval())
	}
	fmt.Fprintf(w, "startup %.1fs, total %.1fs\n", r.StartupSeconds, r.TotalSeconds)
}

// interval describes the p99 interval, or nothing without one.
func (v *verdict) interval() string {
	if v.P99IntervalMs == nil {
		return ""
	}
	return fmt.Sprintf(" (the median round's p99 difference lies in %+.2f..%+.2f ms with 90%% confidence)", v.P99IntervalMs[0], v.P99IntervalMs[1])
}

// pooledInterval describes the pooled p99's interval, or nothing without one.
func (v *verdict) pooledInterval() string {
	if v.P99PooledIntervalMs == nil {
		return ""
	}
	return fmt.Sprintf(" (%+.2f..%+.2f ms, 90%% bootstrap interval over the round pairs)", v.P99PooledIntervalMs[0], v.P99PooledIntervalMs[1])
}

// signed is fmtDur with a sign.
func signed(d time.Duration) string {
	if d < 0 {
		return fmtDur(d)
	}
	return "+" + fmtDur(d)
}

func metStr(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Millisecond:
		s = fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		s = fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		s = fmt.Sprintf("%.2fs", d.Seconds())
	}
	if neg {
		return "-" + s
	}
	return s
}
