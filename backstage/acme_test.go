package backstage

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// acmeRoots are the entry points of the ACME example plus the newer team-e
// file, which no Location references.
var acmeRoots = []string{"*.yaml", "acme/team-e-big-name-group.yaml"}

// derived is the golden view: memberships, owners and problems.
type derived struct {
	Revision string
	Counts   map[string]int
	Users    map[string]*User
	Groups   map[string]*Group
	Owned    map[string]*Owned
	Systems  map[string]*System
	Domains  map[string]*Domain
	IDP      map[string][]string
	Problems []Problem
}

func deriveView(c *Catalog) derived {
	d := derived{Revision: c.Revision(), Users: c.users, Groups: c.groups, Owned: map[string]*Owned{},
		Systems: c.systems, Domains: c.domains, IDP: c.idpGroups, Problems: c.Problems(),
		Counts: map[string]int{"users": len(c.users), "groups": len(c.groups), "components": len(c.components),
			"apis": len(c.apis), "resources": len(c.resources), "systems": len(c.systems), "domains": len(c.domains)}}
	for _, m := range []map[string]*Owned{c.components, c.resources, c.apis} {
		for k, v := range m {
			d.Owned[k] = v
		}
	}
	return d
}

func checkACME(t *testing.T, c *Catalog) {
	t.Helper()
	// Hand-checked facts, independent of the golden file.
	g, _ := c.Group("group:default/team-a")
	if g.Parent != "group:default/backstage" || !slices.Equal(g.Ancestors, []string{"group:default/backstage", "group:default/infrastructure", "group:default/acme-corp"}) {
		t.Errorf("team-a parent/ancestors = %q %v", g.Parent, g.Ancestors)
	}
	if !slices.Contains(g.Members, "user:development/guest") || !slices.Contains(g.Members, "user:default/guest") {
		t.Errorf("team-a members %v lack the two guests", g.Members)
	}
	dg, ok := c.User("user:development/guest")
	if !ok || !slices.Equal(dg.Groups, []string{"group:default/team-a"}) ||
		!slices.Equal(dg.AllGroups, []string{"group:default/acme-corp", "group:default/backstage", "group:default/infrastructure", "group:default/team-a"}) {
		t.Errorf("development/guest = %+v", dg)
	}
	root, _ := c.Group("group:default/acme-corp")
	if len(root.AllMembers) != len(c.users)-countUsersWithoutGroups(c) {
		t.Errorf("acme-corp all_members = %d, users in some group = %d", len(root.AllMembers), len(c.users)-countUsersWithoutGroups(c))
	}
	// team-e names boxoffice as parent; boxoffice's children list (2021) does not name it.
	te, _ := c.Group("group:default/team-e")
	bo, _ := c.Group("group:default/boxoffice")
	if te.Parent != "group:default/boxoffice" || !slices.Contains(bo.Children, "group:default/team-e") {
		t.Errorf("team-e parent %q, boxoffice children %v", te.Parent, bo.Children)
	}
	// Components owned by a user directly.
	for _, n := range []string{"playback-order", "searcher", "shuffle-api"} {
		o, _ := c.Component("component:default/" + n)
		if o == nil || o.OwnerKind != "user" || o.Owner != "user:default/guest" || !slices.Equal(o.OwnerUsers, []string{"user:default/guest"}) {
			t.Errorf("%s owner = %+v", n, o)
		}
	}
	so, _ := c.Component("component:default/shuffle-api")
	if so.System != "system:default/audio-playback" || so.SystemOwner != "group:default/team-c" ||
		so.Domain != "domain:default/playback" || so.DomainOwner != "user:default/frank.tiernan" {
		t.Errorf("shuffle-api system/domain = %+v", so)
	}
	if ref, ok := c.ResolveUser("", "janelle-dawe@example.com", ""); !ok || ref != "user:default/janelle.dawe" {
		t.Errorf("ResolveUser(janelle email) = %q %v", ref, ok)
	}
	// Two guests share the e-mail and name: ambiguous, so resolution fails closed.
	if ref, ok := c.ResolveUser("", "guest@example.com", "guest"); ok {
		t.Errorf("ResolveUser(guest) = %q, want ambiguous failure", ref)
	}
}

func countUsersWithoutGroups(c *Catalog) int {
	n := 0
	for _, u := range c.users {
		if len(u.Groups) == 0 {
			n++
		}
	}
	return n
}

func TestACMEGoldenTestdata(t *testing.T) {
	c := mustBuild(t, fetchFS(t, os.DirFS("testdata/acme"), acmeRoots...), BuildOptions{})
	checkACME(t, c)
	golden(t, "acme.golden.json", deriveView(c))
	golden(t, "acme.document.golden.json", c.Document())
}

// overlayFS serves the shared example tree with the newer upstream files
// substituted, as SOURCE.md instructs (load them instead of the 2021 ones).
type overlayFS struct {
	fs.FS
	swap map[string]string
}

func (o overlayFS) Open(name string) (fs.File, error) {
	if p, ok := o.swap[name]; ok {
		name = p
	}
	return o.FS.Open(name)
}

// sharedExamples locates ../shared/backstage-examples from the repo root.
func sharedExamples(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "backstage-examples") // package dir is <repo>/backstage
	if _, err := os.Stat(filepath.Join(dir, "SOURCE.md")); err != nil {
		t.Skipf("SKIPPING: Backstage example catalog not found at %s (repo-root relative ../shared/backstage-examples): %v", dir, err)
	}
	return dir
}

func TestACMESharedExamples(t *testing.T) {
	dir := sharedExamples(t)
	fsys := overlayFS{FS: os.DirFS(dir), swap: map[string]string{
		"acme/team-a-group.yaml":          "extras-later-upstream/acme/team-a-group.yaml",
		"acme/team-e-big-name-group.yaml": "extras-later-upstream/acme/team-e-big-name-group.yaml",
	}}
	snap := fetchFS(t, fsys, acmeRoots...)
	// 57 entities + the development/guest user + team-e.
	if len(snap.Entities) != 59 {
		t.Errorf("entities = %d, want 59", len(snap.Entities))
	}
	c := mustBuild(t, snap, BuildOptions{})
	checkACME(t, c)
	golden(t, "acme.golden.json", deriveView(c)) // same content as the testdata copy
}

func TestACMESharedExamples2021(t *testing.T) {
	dir := sharedExamples(t)
	snap := fetchFS(t, os.DirFS(dir), "*.yaml")
	if len(snap.Entities) != 57 || len(snap.Problems) != 0 {
		t.Fatalf("entities = %d (want 57), problems = %v", len(snap.Entities), snap.Problems)
	}
	kinds := map[string]int{}
	for _, e := range snap.Entities {
		kinds[e.Kind]++
	}
	want := map[string]int{"Group": 8, "User": 16, "Component": 13, "API": 7, "System": 3, "Domain": 2, "Resource": 1, "Location": 7}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%s: %d, want %d", k, kinds[k], n)
		}
	}
}
