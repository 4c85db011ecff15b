package policy

import (
	"context"
	"testing"
	"testing/fstest"
)

func BenchmarkDecideTrivialPolicy(b *testing.B) {
	fsys := fstest.MapFS{"authz.rego": &fstest.MapFile{Data: []byte(`package backgate.authz

decision := {"allow": true, "reasons": ["ok"], "rules": ["r"], "grant": {}}
`)}}
	e := newTestEngine(b, Options{PolicyFS: fsys})
	in := req("alice", "component:default/petstore", "staging")
	ctx := context.Background()
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}
