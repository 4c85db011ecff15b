package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// pooledQuantile is the nearest-rank p-quantile of the union of the sorted
// samples in rounds, each round counted as many times as weight says (nil
// weight: once each). It searches the value instead of merging: the
// quantile is the smallest latency x for which at least ceil(p*n) samples
// are <= x.
func pooledQuantile(rounds [][]time.Duration, weight []int, p float64) time.Duration {
	w := func(i int) int {
		if weight == nil {
			return 1
		}
		return weight[i]
	}
	var n int
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for i, r := range rounds {
		if len(r) == 0 || w(i) == 0 {
			continue
		}
		n += len(r) * w(i)
		lo, hi = min(lo, r[0]), max(hi, r[len(r)-1])
	}
	if n == 0 {
		return 0
	}
	rank := max(int(math.Ceil(p*float64(n))), 1)
	atMost := func(x time.Duration) int {
		c := 0
		for i, r := range rounds {
			if w(i) > 0 {
				c += sort.Search(len(r), func(j int) bool { return r[j] > x }) * w(i)
			}
		}
		return c
	}
	// Smallest x in [lo, hi] with atMost(x) >= rank; hi qualifies.
	for lo < hi {
		mid := lo + (hi-lo)/2
		if atMost(mid) >= rank {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// pooledP99Extra is backgate's p99 over all its rounds minus bare's over
// all of theirs, with a 90% percentile-bootstrap interval that resamples
// the round pairs (the k-th round of each target, run next to each other):
// pairs, not single requests, because requests within a round share the
// machine's state and are far from independent. The resampling is seeded,
// so a report is reproducible from its rounds. ok is false with fewer than
// 5 pairs.
func pooledP99Extra(bare, bg [][]time.Duration) (extra time.Duration, lo, hi time.Duration, ok bool) {
	n := min(len(bare), len(bg))
	bare, bg = bare[:n], bg[:n]
	extra = pooledQuantile(bg, nil, 0.99) - pooledQuantile(bare, nil, 0.99)
	if n < 5 {
		return extra, 0, 0, false
	}
	const resamples = 1000
	rng := rand.New(rand.NewPCG(1, 2))
	weight := make([]int, n)
	d := make([]time.Duration, resamples)
	for i := range d {
		clear(weight)
		for range n {
			weight[rng.IntN(n)]++
		}
		d[i] = pooledQuantile(bg, weight, 0.99) - pooledQuantile(bare, weight, 0.99)
	}
	slices.Sort(d)
	return extra, d[resamples*5/100], d[resamples*95/100-1], true
}
