package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestPooledQuantile: the value search gives what sorting the union would,
// and a weight of k counts a round as k copies of it.
func TestPooledQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := range 200 {
		rounds := make([][]time.Duration, 1+rng.IntN(6))
		weight := make([]int, len(rounds))
		var union, weighted []time.Duration
		for i := range rounds {
			n := rng.IntN(50) // some rounds are empty
			for range n {
				rounds[i] = append(rounds[i], time.Duration(1+rng.IntN(1000))) // ties are common
			}
			slices.Sort(rounds[i])
			weight[i] = rng.IntN(3)
			union = append(union, rounds[i]...)
			for range weight[i] {
				weighted = append(weighted, rounds[i]...)
			}
		}
		for _, p := range []float64{0.01, 0.5, 0.99, 1} {
			if got, want := pooledQuantile(rounds, nil, p), percentile(slices.Clone(union), p); got != want {
				t.Fatalf("trial %d p%v: pooled %v, sorted union %v (rounds %v)", trial, p, got, want, rounds)
			}
			if got, want := pooledQuantile(rounds, weight, p), percentile(slices.Clone(weighted), p); got != want {
				t.Fatalf("trial %d p%v weights %v: pooled %v, sorted copies %v", trial, p, weight, got, want)
			}
		}
	}
}

// TestPooledP99Extra: a constant shift comes out exactly, interval and
// all; a pause that one round in ten meets moves the pooled p99 although
// the median round does not see it; fewer than five pairs give no
// interval.
func TestPooledP99Extra(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	round := func(add time.Duration) []time.Duration {
		r := make([]time.Duration, 1000)
		for i := range r {
			r[i] = time.Duration(rng.IntN(10_000))*time.Microsecond + add
		}
		slices.Sort(r)
		return r
	}
	var bare, shifted, paused [][]time.Duration
	for k := range 10 {
		b := round(0)
		bare = append(bare, b)
		s := slices.Clone(b)
		for i := range s {
			s[i] += 2 * time.Millisecond
		}
		shifted = append(shifted, s)
		p := slices.Clone(b)
		if k == 3 {
			for i := range p[:200] { // a fifth of one round waits 50 ms more
				p[i] += 50 * time.Millisecond
			}
			slices.Sort(p)
		}
		paused = append(paused, p)
	}
	extra, lo, hi, ok := pooledP99Extra(bare, shifted)
	if !ok || extra != 2*time.Millisecond || lo != 2*time.Millisecond || hi != 2*time.Millisecond {
		t.Errorf("shift by 2ms: extra %v interval [%v, %v] ok %v, want exactly 2ms", extra, lo, hi, ok)
	}
	extra, lo, hi, ok = pooledP99Extra(bare, paused)
	if !ok || extra < 40*time.Millisecond || lo > 0 || hi < 40*time.Millisecond {
		t.Errorf("pause in one round of ten: extra %v interval [%v, %v] ok %v, want about +50ms, the interval reaching 0", extra, lo, hi, ok)
	}
	if _, _, _, ok := pooledP99Extra(bare[:4], shifted[:4]); ok {
		t.Error("interval from 4 pairs")
	}
}
