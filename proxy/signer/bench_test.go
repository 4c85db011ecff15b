package signer

import (
	"strconv"
	"testing"
)

// BenchmarkSign is the cold path: every call mints both tokens.
func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{AlgES256, AlgEdDSA, AlgES384, AlgRS256} {
		b.Run(alg, func(b *testing.B) {
			f := newFixture(b, KeyringOptions{Algorithm: alg}, Options{DisableCache: true})
			req := f.request()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.s.Sign(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignCached is the warm path: the same identity and route again.
func BenchmarkSignCached(b *testing.B) {
	f := newFixture(b, KeyringOptions{}, Options{})
	req := f.request()
	req.Host = "payments.example.com" // as the proxy passes it: lower case, no port
	if _, err := f.s.Sign(req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.s.Sign(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignCachedParallel spreads 256 identities over all CPUs.
func BenchmarkSignCachedParallel(b *testing.B) {
	f := newFixture(b, KeyringOptions{}, Options{})
	reqs := make([]SignRequest, 256)
	for i := range reqs {
		reqs[i] = f.request()
		reqs[i].Host = "payments.example.com"
		reqs[i].Subject = "user-" + strconv.Itoa(i)
		if _, err := f.s.Sign(reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := f.s.Sign(reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
