package backstage

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// genCatalog builds a synthetic snapshot: nGroups groups in a 5-ary tree
// (depth ~5), nUsers users each in one or two groups, nComps components owned
// by groups (90%) or users (10%), 200 systems in 20 domains.
func genCatalog(nComps, nGroups, nUsers int) *Snapshot {
	ents := make([]Entity, 0, nComps+nGroups+nUsers+220)
	mk := func(kind, name string, spec Spec) Entity {
		return Entity{APIVersion: "backstage.io/v1alpha1", Kind: kind, Metadata: Metadata{Name: name, Namespace: "default"}, Spec: spec}
	}
	for i := range nGroups {
		sp := Spec{Type: "team"}
		if i > 0 {
			sp.Parent = fmt.Sprintf("g%d", (i-1)/5)
		}
		ents = append(ents, mk("Group", fmt.Sprintf("g%d", i), sp))
	}
	for i := range nUsers {
		sp := Spec{Profile: Profile{Email: fmt.Sprintf("u%d@example.com", i)}, MemberOf: StringList{fmt.Sprintf("g%d", nGroups/2+i%(nGroups/2))}}
		if i%3 == 0 {
			sp.MemberOf = append(sp.MemberOf, fmt.Sprintf("g%d", (i*7)%nGroups))
		}
		e := mk("User", fmt.Sprintf("u%d", i), sp)
		e.Metadata.Annotations = map[string]string{AnnotationIDPSubject: fmt.Sprintf("sub-%d", i)}
		ents = append(ents, e)
	}
	for i := range 20 {
		ents = append(ents, mk("Domain", fmt.Sprintf("d%d", i), Spec{Owner: fmt.Sprintf("g%d", i)}))
	}
	for i := range 200 {
		ents = append(ents, mk("System", fmt.Sprintf("s%d", i), Spec{Owner: fmt.Sprintf("g%d", i*3), Domain: fmt.Sprintf("d%d", i%20)}))
	}
	for i := range nComps {
		owner := fmt.Sprintf("g%d", (i*13)%nGroups)
		if i%10 == 0 {
			owner = fmt.Sprintf("user:u%d", i%nUsers)
		}
		e := mk("Component", fmt.Sprintf("c%d", i), Spec{Type: "service", Lifecycle: "production", Owner: owner, System: fmt.Sprintf("s%d", i%200)})
		e.Metadata.Annotations = map[string]string{AnnotationHosts: fmt.Sprintf("c%d.corp", i), AnnotationUpstream: "https://bigip-vs.corp"}
		e.Metadata.Tags = StringList{"go"}
		ents = append(ents, e)
	}
	return &Snapshot{Source: "generated", FetchedAt: t0, Entities: ents}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestLargeCatalogMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large catalog skipped in -short")
	}
	snap := genCatalog(10000, 2000, 20000)
	before := heapInUse()
	c := mustBuild(t, snap, BuildOptions{})
	after := heapInUse()
	runtime.KeepAlive(c)
	retained := int64(after) - int64(before)
	t.Logf("10k components, 2k groups, 20k users: catalog retains %.1f MB; %d routes; %d problems", float64(retained)/(1<<20), len(c.Routes()), len(c.Problems()))
	if len(c.Problems()) != 0 || len(c.Routes()) != 10000 {
		t.Fatalf("problems %v, routes %d", c.Problems()[:min(3, len(c.Problems()))], len(c.Routes()))
	}
	if retained > 300<<20 {
		t.Errorf("catalog retains %d MB, limit 300 MB", retained>>20)
	}
	root, _ := c.Group("group:default/g0")
	if len(root.AllMembers) != 20000 {
		t.Errorf("root all_members = %d, want 20000", len(root.AllMembers))
	}
}

func BenchmarkBuildLargeCatalog(b *testing.B) {
	snap := genCatalog(10000, 2000, 20000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(snap, BuildOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	before := heapInUse()
	c, _ := Build(snap, BuildOptions{})
	after := heapInUse()
	runtime.KeepAlive(c)
	b.ReportMetric(float64(int64(after)-int64(before))/(1<<20), "retained-MB")
}

// BenchmarkSyncUnchanged: a refresh that finds the catalog unchanged (the
// usual minute) collects and hashes the entities but derives nothing;
// compare BenchmarkBuildLargeCatalog, the same catalog built in full.
func BenchmarkSyncUnchanged(b *testing.B) {
	s := syncedStatic(b, genCatalog(10000, 2000, 20000))
	first, ctx := s.Current(), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SyncOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if s.Current() != first {
		b.Fatal("an unchanged refresh replaced the catalog")
	}
}
