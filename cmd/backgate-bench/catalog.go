package main

import (
	"fmt"
	"time"

	"github.com/backgate/backgate/backstage"
)

// catalogSize is the shape of the generated catalog.
type catalogSize struct {
	Components, Groups, Users int
}

// defaultCatalog is the catalog: 10,000 components, 2,000 nested
// groups, 20,000 users.
var defaultCatalog = catalogSize{Components: 10000, Groups: 2000, Users: 20000}

// The benchmark user and the service it may reach in staging: user u0 is a
// member of the leaf group that owns component c0 (see genSnapshot).
const (
	benchUsername = "u0"
	benchEmail    = "u0@bench.example"
	benchPassword = "bench-password"
	benchService  = "component:default/c0"
	benchEnv      = "staging"
)

// genSnapshot builds a synthetic catalog: groups in a 5-ary tree under g0
// (parent of gi is g((i-1)/5), about five levels deep), users in one leaf
// group each (every third in a second one), components owned by leaf groups.
// User u0 is in the first leaf group, which owns c0.
func genSnapshot(sz catalogSize, now time.Time) (*backstage.Snapshot, error) {
	if sz.Groups < 10 || sz.Users < 1 || sz.Components < 1 {
		return nil, fmt.Errorf("catalog size %+v: need at least 10 groups, 1 user and 1 component", sz)
	}
	firstLeaf := (sz.Groups-2)/5 + 1 // groups with index >= firstLeaf have no children
	leaves := sz.Groups - firstLeaf
	leaf := func(i int) string { return fmt.Sprintf("g%d", firstLeaf+i%leaves) }
	mk := func(kind, name string, spec backstage.Spec) backstage.Entity {
		return backstage.Entity{APIVersion: "backstage.io/v1alpha1", Kind: kind,
			Metadata: backstage.Metadata{Name: name, Namespace: "default"}, Spec: spec}
	}
	ents := make([]backstage.Entity, 0, sz.Groups+sz.Users+sz.Components)
	for i := range sz.Groups {
		sp := backstage.Spec{Type: "team", Profile: backstage.Profile{DisplayName: fmt.Sprintf("Team %d", i)}}
		if i > 0 {
			sp.Parent = fmt.Sprintf("g%d", (i-1)/5)
		}
		ents = append(ents, mk("Group", fmt.Sprintf("g%d", i), sp))
	}
	for i := range sz.Users {
		sp := backstage.Spec{
			Profile:  backstage.Profile{Email: fmt.Sprintf("u%d@bench.example", i), DisplayName: fmt.Sprintf("User %d", i)},
			MemberOf: backstage.StringList{leaf(i)},
		}
		if i%3 == 0 && i > 0 {
			sp.MemberOf = append(sp.MemberOf, leaf(i*7+1))
		}
		ents = append(ents, mk("User", fmt.Sprintf("u%d", i), sp))
	}
	for i := range sz.Components {
		ents = append(ents, mk("Component", fmt.Sprintf("c%d", i),
			backstage.Spec{Type: "service", Lifecycle: "production", Owner: "group:" + leaf(i*13)}))
	}
	return &backstage.Snapshot{Source: "generated", FetchedAt: now, Entities: ents}, nil
}
