package backstage_test

import (
	"context"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/backgate/backgate/backstage"
	"github.com/backgate/backgate/configs"
)

func build(t *testing.T, opts backstage.BuildOptions, docs ...string) *backstage.Catalog {
	t.Helper()
	ents, probs := backstage.ParseDocuments([]byte(strings.Join(docs, "\n---\n")), "t.yaml")
	if len(probs) > 0 {
		t.Fatalf("parse problems: %v", probs)
	}
	c, err := backstage.Build(&backstage.Snapshot{Source: "t", Entities: ents}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	grp  = "apiVersion: v1\nkind: Group\nmetadata: {name: team, annotations: {backgate.io/idp-group: 'Team-SSO, other'}}\nspec: {type: team}"
	grp2 = "apiVersion: v1\nkind: Group\nmetadata: {name: other, namespace: ops}\nspec: {type: team}"
)

func comp(name, owner, lifecycle string, ann map[string]string) string {
	s := "apiVersion: v1\nkind: Component\nmetadata:\n  name: " + name + "\n  annotations:\n"
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s += "    " + k + ": '" + ann[k] + "'\n"
	}
	if owner != "" {
		s += "spec: {type: service, lifecycle: " + lifecycle + ", owner: '" + owner + "'}\n"
	} else {
		s += "spec: {type: service, lifecycle: " + lifecycle + "}\n"
	}
	return s
}

func TestRoutes(t *testing.T) {
	up := "http://10.0.0.1:8080"
	c := build(t, backstage.BuildOptions{Routes: backstage.RouteOptions{DefaultEnvironment: "sandbox"}}, grp,
		comp("pay", "team", "production", map[string]string{"backgate.io/hosts": "Pay.corp, pay-2.corp,pay.corp", "backgate.io/upstream": up, "backgate.io/bigip-pool": "/Common/pay"}),
		comp("pay-stg", "team", "experimental", map[string]string{"backgate.io/hosts": "pay-stg.corp", "backgate.io/upstream": up, "backgate.io/environment": "Staging", "backgate.io/path-prefix": "/api/"}),
		comp("aaa-thief", "team", "experimental", map[string]string{"backgate.io/hosts": "pay-2.corp", "backgate.io/upstream": up}),
		comp("zzz-thief", "team", "experimental", map[string]string{"backgate.io/hosts": "pay.corp", "backgate.io/upstream": up}),
		comp("bad-up", "team", "experimental", map[string]string{"backgate.io/hosts": "x.corp", "backgate.io/upstream": "http://user:pw@x"}),
		comp("bad-host", "team", "experimental", map[string]string{"backgate.io/hosts": "ok.corp, bad_host, -x.corp", "backgate.io/upstream": up}),
		comp("bad-prefix", "team", "experimental", map[string]string{"backgate.io/hosts": "p.corp", "backgate.io/upstream": up, "backgate.io/path-prefix": "/a/../b"}),
		comp("no-hosts", "team", "experimental", map[string]string{"backgate.io/upstream": up}),
		comp("sandbox", "team", "experimental", map[string]string{"backgate.io/hosts": "sb.corp", "backgate.io/upstream": "https://sb"}),
	)
	var got []string
	for _, r := range c.Routes() {
		got = append(got, strings.Join([]string{r.Name, r.Host, r.PathPrefix, r.Service, r.Environment, r.Pool, r.Upstream}, "|"))
	}
	want := []string{
		"default/bad-host@ok.corp|ok.corp|/|component:default/bad-host|sandbox||" + up,
		"default/aaa-thief@pay-2.corp|pay-2.corp|/|component:default/aaa-thief|sandbox||" + up, // aaa < pay
		"default/pay-stg@pay-stg.corp/api/|pay-stg.corp|/api/|component:default/pay-stg|staging||" + up,
		"default/pay@pay.corp|pay.corp|/|component:default/pay|prod|/Common/pay|" + up, // pay < zzz-thief
		"default/sandbox@sb.corp|sb.corp|/|component:default/sandbox|sandbox||https://sb",
	}
	if !slices.Equal(got, want) {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	probs := map[string][]string{}
	for _, p := range c.Problems() {
		probs[p.Ref] = append(probs[p.Ref], p.Message)
	}
	for ref, sub := range map[string]string{
		"component:default/pay":        "route conflict",
		"component:default/zzz-thief":  "route conflict",
		"component:default/bad-up":     "credentials",
		"component:default/bad-host":   "bad_host",
		"component:default/bad-prefix": "clean absolute path",
		"component:default/no-hosts":   "backgate.io/hosts is empty",
	} {
		if !strings.Contains(strings.Join(probs[ref], ";"), sub) {
			t.Errorf("%s problems %v lack %q", ref, probs[ref], sub)
		}
	}
	if _, err := backstage.Build(&backstage.Snapshot{}, backstage.BuildOptions{Routes: backstage.RouteOptions{DefaultEnvironment: "Bad Env"}}); err == nil {
		t.Error("invalid default environment: want error")
	}
}

func user(name, ns, email, extra string) string {
	return "apiVersion: v1\nkind: User\nmetadata: {name: " + name + ", namespace: " + ns + extra + "}\nspec: {profile: {email: '" + email + "'}, memberOf: [group:default/team]}"
}

func TestResolveUser(t *testing.T) {
	docs := []string{grp, grp2,
		user("alice", "default", "Alice@Example.com", ", annotations: {backgate.io/idp-subject: sub-1, backgate.io/suspended: 'true'}"),
		user("bob", "default", "bob@corp.example", ""),
		user("bob", "ops", "robert@corp.example", ""),
		user("carol", "ops", "carol@x.example", ""),
	}
	tests := []struct {
		name                     string
		opts                     backstage.IdentityOptions
		subject, email, username string
		want                     string
	}{
		{name: "annotation first", subject: "sub-1", email: "bob@corp.example", want: "user:default/alice"},
		{name: "email case-insensitive", email: "ALICE@example.COM", want: "user:default/alice"},
		{name: "email before name", email: "robert@corp.example", username: "carol", want: "user:ops/bob"},
		{name: "name by username", username: "Carol", want: "user:ops/carol"},
		{name: "name by email local part", email: "carol@elsewhere", want: "user:ops/carol"},
		{name: "ambiguous name fails closed", username: "bob"},
		{name: "namespace restriction disambiguates", opts: backstage.IdentityOptions{Namespaces: []string{"default"}}, username: "bob", want: "user:default/bob"},
		{name: "order name only", opts: backstage.IdentityOptions{UserMatch: []string{"name"}}, subject: "sub-1", email: "Alice@example.com", want: "user:default/alice"}, // local part
		{name: "order name only ignores subject", opts: backstage.IdentityOptions{UserMatch: []string{"name"}}, subject: "sub-1", email: "zed@example.com"},
		{name: "order email then annotation", opts: backstage.IdentityOptions{UserMatch: []string{"email", "annotation"}}, subject: "sub-1", email: "bob@corp.example", want: "user:default/bob"},
		{name: "unknown", subject: "nope", email: "nobody@x", username: "nobody"},
		{name: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := build(t, backstage.BuildOptions{Identity: tt.opts}, docs...)
			got, ok := c.ResolveUser(tt.subject, tt.email, tt.username)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("ResolveUser = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
	c := build(t, backstage.BuildOptions{}, docs...)
	u := c.Document()["users"].(map[string]any)["user:default/alice"].(map[string]any)
	if u["suspended"] != true || u["email"] != "alice@example.com" {
		t.Errorf("alice doc = %v", u)
	}
	if got := c.IDPGroups([]string{"Team-SSO", "other", "team"}); !slices.Equal(got, []string{"group:default/team", "group:ops/other"}) {
		t.Errorf("IDPGroups = %v", got)
	}
	idp := c.Document()["idp_groups"].(map[string]any)
	if len(idp) != 3 || len(idp["other"].([]any)) != 2 {
		t.Errorf("idp_groups = %v", idp)
	}
	c = build(t, backstage.BuildOptions{Identity: backstage.IdentityOptions{GroupMatch: []string{"annotation"}}}, docs...)
	if got := c.IDPGroups([]string{"team"}); len(got) != 0 {
		t.Errorf("annotation-only group match = %v", got)
	}
}

func TestBadEntitiesAreSkipped(t *testing.T) {
	c := build(t, backstage.BuildOptions{}, grp,
		"apiVersion: v1\nkind: Group\nmetadata: {name: loop1}\nspec: {type: team, parent: loop2}",
		"apiVersion: v1\nkind: Group\nmetadata: {name: loop2}\nspec: {type: team, parent: loop1}",
		"apiVersion: v1\nkind: User\nmetadata: {name: u}\nspec: {memberOf: [loop1, ghost, 'group:/bad']}",
		comp("no-owner", "", "production", nil),
		comp("ghost-owner", "ghost", "production", nil),
		comp("bad-owner", "group:", "production", nil),
		comp("sys-owner", "system:x", "production", nil),
		comp("ok", "team", "production", nil),
	)
	if _, ok := c.Component("component:default/ok"); !ok {
		t.Error("ok component missing")
	}
	for _, n := range []string{"no-owner", "ghost-owner", "bad-owner", "sys-owner"} {
		if _, ok := c.Component("component:default/" + n); ok {
			t.Errorf("%s should be skipped", n)
		}
	}
	u, _ := c.User("user:default/u")
	if !slices.Equal(u.Groups, []string{"group:default/loop1"}) || !slices.Equal(u.AllGroups, []string{"group:default/loop1", "group:default/loop2"}) {
		t.Errorf("u = %+v", u)
	}
	g, _ := c.Group("group:default/loop1")
	if !slices.Equal(g.Ancestors, []string{"group:default/loop2"}) || !slices.Equal(g.AllMembers, []string{"user:default/u"}) {
		t.Errorf("loop1 = %+v", g)
	}
	all := ""
	for _, p := range c.Problems() {
		all += p.String() + "\n"
	}
	for _, sub := range []string{"spec.owner is missing", `group "group:default/ghost" does not exist`, "not on the form", "neither a user nor a group", "cycle"} {
		if !strings.Contains(all, sub) {
			t.Errorf("problems lack %q:\n%s", sub, all)
		}
	}
}

func TestDemoCatalog(t *testing.T) {
	fsys, err := fs.Sub(configs.Catalog, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := (&backstage.FileSource{FS: fsys, Name: "embedded"}).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := backstage.Build(snap, backstage.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Problems()) != 0 {
		t.Errorf("demo catalog problems: %v", c.Problems())
	}
	got := map[string]string{}
	for _, r := range c.Routes() {
		got[r.Host+r.PathPrefix] = r.Service + " " + r.Environment + " " + r.Upstream + " " + r.Pool
	}
	want := map[string]string{
		"petstore-dev.demo.localhost/":        "component:default/petstore-dev dev http://127.0.0.1:9001 /Common/petstore_dev",
		"petstore-staging.demo.localhost/":    "component:default/petstore-staging staging http://127.0.0.1:9001 /Common/petstore_staging",
		"petstore.demo.localhost/":            "component:default/petstore-prod prod http://127.0.0.1:9001 /Common/petstore_prod",
		"artist-portal.demo.localhost/":       "component:default/artist-portal staging http://127.0.0.1:9001 /Common/artist_portal_staging",
		"artist-portal.demo.localhost/admin/": "component:default/artist-portal-admin staging http://127.0.0.1:9001 /Common/artist_portal_admin_staging",
	}
	if len(got) != len(want) {
		t.Errorf("routes = %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("route %s = %q, want %q", k, got[k], v)
		}
	}
	for email, ref := range map[string]string{"alice@example.com": "user:default/alice", "bob@example.com": "user:default/bob"} {
		if r, ok := c.ResolveUser("", email, ""); !ok || r != ref {
			t.Errorf("ResolveUser(%s) = %q %v", email, r, ok)
		}
	}
	p, _ := c.Component("component:default/petstore-prod")
	if !slices.Contains(p.OwnerUsers, "user:default/alice") || slices.Contains(p.OwnerUsers, "user:default/bob") {
		t.Errorf("petstore-prod owner users = %v", p.OwnerUsers)
	}
	a, _ := c.Component("component:default/artist-portal-admin")
	if !slices.Equal(a.OwnerUsers, []string{"user:default/bob"}) || a.SystemOwner != "group:default/team-a" {
		t.Errorf("artist-portal-admin = %+v", a)
	}
}
