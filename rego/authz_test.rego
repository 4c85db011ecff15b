package backgate.authz_test

import data.backgate.authz
import data.backgate.test.fixtures as fx

pet := "component:default/petstore"

decide(user, service, env) := d if {
	d := authz.decision with data.catalog as fx.catalog with input as fx.request(user, service, env)
}

rules_of(d) := [m.rule | some m in d.matched]

reasons_of(d) := [m.reason | some m in d.matched]

# The grant backgate reports: the one running longest.
grant_of(d) := {"id": best[1], "expires_at": best[0]} if {
	grants := {[m.grant.expires_at, m.grant.id] | some m in d.matched; m.grant}
	count(grants) > 0
	best := max(grants)
} else := {}

allowed_by(d, rule) if {
	d.allow == true
	rule in rules_of(d)
}

denied_by(d, rule) if {
	d.allow == false
	rules_of(d) == [rule]
}

test_dev_allows_engineering_org if allowed_by(decide("carol", pet, "dev"), "dev_engineering_org")

test_dev_denies_outsider if denied_by(decide("gina", pet, "dev"), "no_matching_rule")

test_dev_open_to_known_users_setting if {
	d := decide("gina", pet, "dev") with data.backgate.settings.dev_open_to_all_known_users as true
	allowed_by(d, "dev_known_user")
}

test_owning_group_everywhere if {
	every env in ["dev", "staging", "prod"] {
		allowed_by(decide("alice", pet, env), "owning_group")
	}
}

test_owning_group_reason_reads_well if {
	d := decide("alice", pet, "staging")
	reasons_of(d) == ["alice is a member of team-c, which owns component:default/petstore (staging allows the owning group)"]
}

test_staging_allows_parent_group if {
	d := decide("bob", pet, "staging")
	allowed_by(d, "staging_parent_group")
	reasons_of(d) == ["bob is a member of dept-b, a parent of team-c, which owns component:default/petstore (staging allows the owning group and its parents)"]
}

test_staging_denies_sibling_team if denied_by(decide("carol", pet, "staging"), "no_matching_rule")

test_prod_denies_parent_group if denied_by(decide("bob", pet, "prod"), "no_matching_rule")

test_owner_user_dev_and_staging if {
	allowed_by(decide("olivia", "component:default/toolbox", "staging"), "owner_user")
	allowed_by(decide("olivia", "component:default/toolbox", "dev"), "owner_user")
	denied_by(decide("olivia", "component:default/toolbox", "prod"), "no_matching_rule")
}

test_prod_emergency_group_from_catalog if allowed_by(decide("erin", pet, "prod"), "prod_emergency_group")

test_prod_emergency_group_from_idp if {
	req := object.union(fx.request("gina", pet, "prod"), {"user": {"groups": ["okta-sre-oncall"], "ref": "user:default/gina", "sub": "s", "email": "e"}})
	d := authz.decision with data.catalog as fx.catalog with input as req
	allowed_by(d, "prod_emergency_group")
}

test_emergency_not_in_staging if denied_by(decide("erin", pet, "staging"), "no_matching_rule")

test_resource_and_api_entities if {
	allowed_by(decide("alice", "resource:default/orders-db", "prod"), "owning_group")
	allowed_by(decide("alice", "api:default/petstore-api", "prod"), "owning_group")
}

test_suspended_denied_even_with_grant if {
	grants := {"user:default/frank": {pet: [{"id": "g", "environment": "dev", "expires_at": fx.now + fx.hour, "approved_by": []}]}}
	d := decide("frank", pet, "dev") with data.grants as grants
	denied_by(d, "suspended_user")
}

test_unknown_user_denied if {
	d := decide("mallory", pet, "dev")
	denied_by(d, "unknown_user")
	reasons_of(d) == [`the signed-in identity (e-mail "mallory@acme.example", subject "sub-mallory") matches no Backstage user`]
}

test_unknown_service_denied if denied_by(decide("alice", "component:default/nope", "dev"), "unknown_service")

test_unknown_environment_denied if denied_by(decide("alice", pet, "qa"), "unknown_environment")

test_no_catalog_denied if {
	d := authz.decision with input as fx.request("alice", pet, "dev")
	d.allow == false
	"no_catalog" in rules_of(d)
}

test_name_falls_back_to_email_then_subject if {
	d1 := decide("", "component:default/nope", "dev") with data.catalog.users["user:default/"].name as ""
	d1.allow == false
	authz.user_name == "@acme.example" with data.catalog as fx.catalog with input as fx.request("", pet, "dev")
	authz.user_name == "sub-x" with data.catalog as fx.catalog
		with input as {"user": {"sub": "sub-x", "email": "", "ref": "user:default/x"}, "route": {"service": pet, "environment": "dev"}, "time": 0}
}

grant(id, env, expires) := {"id": id, "environment": env, "expires_at": expires, "approved_by": ["user:default/alice", "user:default/sam"]}

test_grant_allows_until_expiry if {
	grants := {"user:default/carol": {pet: [grant("g-1", "prod", fx.now + fx.hour)]}}
	d := decide("carol", pet, "prod") with data.grants as grants
	allowed_by(d, "temporary_grant")
	grant_of(d) == {"id": "g-1", "expires_at": fx.now + fx.hour}
	reasons_of(d) == ["carol holds temporary grant g-1 for component:default/petstore in prod, approved by user:default/alice, user:default/sam, valid until 2026-03-01T13:00:00Z"]
}

test_grant_expired_at_expiry_instant if {
	grants := {"user:default/carol": {pet: [grant("g-1", "prod", fx.now)]}}
	d := decide("carol", pet, "prod") with data.grants as grants
	denied_by(d, "no_matching_rule")
	grant_of(d) == {}
}

test_grant_longer_than_maximum_ignored if {
	grants := {"user:default/carol": {pet: [grant("g-1", "prod", fx.now + (5 * fx.hour))]}}
	d0 := decide("carol", pet, "prod") with data.grants as grants
	denied_by(d0, "no_matching_rule")
	d := decide("carol", pet, "staging") with data.grants as {"user:default/carol": {pet: [grant("g-2", "staging", fx.now + (5 * fx.hour))]}}
	allowed_by(d, "temporary_grant")
}

test_grant_for_other_environment_ignored if {
	grants := {"user:default/carol": {pet: [grant("g-1", "dev", fx.now + fx.hour)]}}
	d0 := decide("carol", pet, "prod") with data.grants as grants
	denied_by(d0, "no_matching_rule")
}

test_longest_grant_reported if {
	grants := {"user:default/carol": {pet: [grant("short", "prod", fx.now + fx.hour), grant("long", "prod", fx.now + (2 * fx.hour))]}}
	d := decide("carol", pet, "prod") with data.grants as grants
	grant_of(d).id == "long"
}
