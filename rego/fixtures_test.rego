# METADATA
# title: Test fixtures
# description: A small catalog in the data.catalog shape, shared by the policy tests.
package backgate.test.fixtures

group(name, parent, ancestors, members, all_members) := {
	"ref": sprintf("group:default/%s", [name]), "name": name, "type": "team", "parent": parent,
	"ancestors": ancestors, "children": [], "members": members, "all_members": all_members,
}

person(name, groups, all_groups, suspended) := {
	"ref": sprintf("user:default/%s", [name]), "name": name, "namespace": "default",
	"email": sprintf("%s@acme.example", [name]), "display_name": name,
	"groups": groups, "all_groups": all_groups, "suspended": suspended, "annotations": {},
}

entity(ref, owner, kind) := {
	"ref": ref, "name": ref, "namespace": "default", "type": "service", "lifecycle": "production",
	"owner": owner, "owner_kind": kind, "owner_users": [], "system": "", "system_owner": "",
	"domain": "", "domain_owner": "", "annotations": {}, "tags": [],
}

org := "group:default/acme-corp"

dept := "group:default/dept-b"

team := "group:default/team-c"

catalog := {
	"revision": "test-1",
	"users": {
		"user:default/alice": person("alice", [team], [team, dept, org], false),
		"user:default/bob": person("bob", [dept], [dept, org], false),
		"user:default/carol": person("carol", ["group:default/team-x"], ["group:default/team-x", dept, org], false),
		"user:default/erin": person("erin", ["group:default/sre-oncall"], ["group:default/sre-oncall", org], false),
		"user:default/frank": person("frank", [team], [team, dept, org], true),
		"user:default/gina": person("gina", [], [], false),
		"user:default/olivia": person("olivia", ["group:default/team-x"], ["group:default/team-x", dept, org], false),
		"user:default/sam": person("sam", ["group:default/security"], ["group:default/security", org], false),
		"user:default/tess": person("tess", [team], [team, dept, org], false),
		"user:default/": person("", [], [], false),
	},
	"groups": {
		org: group("acme-corp", "", [], [], []),
		dept: group("dept-b", org, [org], ["user:default/bob"], ["user:default/bob"]),
		team: group("team-c", dept, [dept, org], ["user:default/alice", "user:default/frank", "user:default/tess"], ["user:default/alice", "user:default/frank", "user:default/tess"]),
		"group:default/team-x": group("team-x", dept, [dept, org], ["user:default/carol"], ["user:default/carol"]),
		"group:default/security": group("security", org, [org], ["user:default/sam"], ["user:default/sam"]),
	},
	"components": {
		"component:default/petstore": entity("component:default/petstore", team, "group"),
		"component:default/toolbox": entity("component:default/toolbox", "user:default/olivia", "user"),
	},
	"resources": {"resource:default/orders-db": entity("resource:default/orders-db", team, "group")},
	"apis": {"api:default/petstore-api": entity("api:default/petstore-api", team, "group")},
	"systems": {},
	"domains": {},
	"idp_groups": {"okta-sre-oncall": ["group:default/sre-oncall"]},
}

now := 1772366400000000000 # 2026-03-01T12:00:00Z

hour := 3600000000000

request(user, service, env) := {
	"user": {"sub": sprintf("sub-%s", [user]), "email": sprintf("%s@acme.example", [user]), "groups": [], "ref": sprintf("user:default/%s", [user])},
	"route": {"service": service, "environment": env},
	"time": now,
}
