package policy

import (
	"fmt"
	"strings"
)

// testCatalog implements CatalogData over a document built in the
// data.catalog shape package backstage produces.
type testCatalog struct {
	rev   string
	doc   map[string]any
	users map[string]string // sub, email and username -> user ref
}

func (c *testCatalog) Revision() string         { return c.rev }
func (c *testCatalog) Document() map[string]any { return c.doc }
func (c *testCatalog) ResolveUser(sub, email, username string) (string, bool) {
	for _, k := range []string{sub, strings.ToLower(email), username} {
		if ref, ok := c.users[k]; ok && k != "" {
			return ref, true
		}
	}
	return "", false
}

type fxGroup struct{ name, parent string }
type fxUser struct {
	name      string
	groups    []string // group names
	suspended bool
}
type fxEntity struct{ kind, name, owner string } // owner: "group:default/x" or "user:default/y"

func gref(n string) string { return "group:default/" + n }
func uref(n string) string { return "user:default/" + n }

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// buildCatalog derives ancestors, children, members and all_groups the way
// package backstage does.
func buildCatalog(rev string, groups []fxGroup, users []fxUser, entities []fxEntity, idp map[string][]string) *testCatalog {
	parent := map[string]string{}
	for _, g := range groups {
		if g.parent != "" {
			parent[gref(g.name)] = gref(g.parent)
		}
	}
	ancestors := func(ref string) []string {
		var out []string
		for p := parent[ref]; p != ""; p = parent[p] {
			out = append(out, p)
		}
		return out
	}
	children := map[string][]string{}
	for _, g := range groups {
		if g.parent != "" {
			children[gref(g.parent)] = append(children[gref(g.parent)], gref(g.name))
		}
	}
	members, allMembers := map[string][]string{}, map[string][]string{}
	usersDoc := map[string]any{}
	tc := &testCatalog{rev: rev, users: map[string]string{}}
	for _, u := range users {
		ref := uref(u.name)
		var direct, all []string
		seen := map[string]bool{}
		for _, g := range u.groups {
			gr := gref(g)
			direct = append(direct, gr)
			members[gr] = append(members[gr], ref)
			for _, a := range append([]string{gr}, ancestors(gr)...) {
				if !seen[a] {
					seen[a] = true
					all = append(all, a)
					allMembers[a] = append(allMembers[a], ref)
				}
			}
		}
		usersDoc[ref] = map[string]any{
			"ref": ref, "name": u.name, "namespace": "default",
			"email": u.name + "@acme.example", "display_name": strings.ToUpper(u.name[:1]) + u.name[1:],
			"groups": strs(direct), "all_groups": strs(all), "suspended": u.suspended,
			"annotations": map[string]any{},
		}
		tc.users["sub-"+u.name] = ref
		tc.users[u.name+"@acme.example"] = ref
		tc.users[u.name] = ref
	}
	groupsDoc := map[string]any{}
	for _, g := range groups {
		ref := gref(g.name)
		groupsDoc[ref] = map[string]any{
			"ref": ref, "name": g.name, "type": "team", "parent": parent[ref],
			"ancestors": strs(ancestors(ref)), "children": strs(children[ref]),
			"members": strs(members[ref]), "all_members": strs(allMembers[ref]),
		}
	}
	kinds := map[string]map[string]any{"component": {}, "resource": {}, "api": {}}
	for _, en := range entities {
		ref := fmt.Sprintf("%s:default/%s", en.kind, en.name)
		ownerKind, ownerUsers := "group", allMembers[en.owner]
		if strings.HasPrefix(en.owner, "user:") {
			ownerKind, ownerUsers = "user", []string{en.owner}
		}
		kinds[en.kind][ref] = map[string]any{
			"ref": ref, "name": en.name, "namespace": "default", "type": "service", "lifecycle": "production",
			"owner": en.owner, "owner_kind": ownerKind, "owner_users": strs(ownerUsers),
			"system": "", "system_owner": "", "domain": "", "domain_owner": "",
			"annotations": map[string]any{}, "tags": []any{},
		}
	}
	idpDoc := map[string]any{}
	for k, v := range idp {
		idpDoc[k] = strs(v)
	}
	tc.doc = map[string]any{
		"revision": rev, "users": usersDoc, "groups": groupsDoc,
		"components": kinds["component"], "resources": kinds["resource"], "apis": kinds["api"],
		"systems": map[string]any{}, "domains": map[string]any{}, "idp_groups": idpDoc,
	}
	return tc
}

// smallCatalog: acme-corp > dept-b > team-c > team-c-sub; dept-b > team-x;
// acme-corp > sre-oncall, security; contractors stands outside the org.
func smallCatalog(rev string) *testCatalog {
	return buildCatalog(rev,
		[]fxGroup{
			{"acme-corp", ""}, {"dept-b", "acme-corp"}, {"team-c", "dept-b"}, {"team-c-sub", "team-c"},
			{"team-x", "dept-b"}, {"sre-oncall", "acme-corp"}, {"security", "acme-corp"}, {"contractors", ""},
		},
		[]fxUser{
			{name: "alice", groups: []string{"team-c"}},
			{name: "bob", groups: []string{"dept-b"}},
			{name: "carol", groups: []string{"team-x"}},
			{name: "dave", groups: []string{"team-c-sub"}},
			{name: "erin", groups: []string{"sre-oncall"}},
			{name: "frank", groups: []string{"team-c"}, suspended: true},
			{name: "gina", groups: []string{"contractors"}},
			{name: "olivia", groups: []string{"team-x"}},
			{name: "sam", groups: []string{"security"}},
		},
		[]fxEntity{
			{"component", "petstore", gref("team-c")},
			{"component", "toolbox", uref("olivia")},
			{"resource", "orders-db", gref("team-c")},
			{"api", "petstore-api", gref("team-c")},
		},
		map[string][]string{"okta-sre-oncall": {gref("sre-oncall")}},
	)
}
