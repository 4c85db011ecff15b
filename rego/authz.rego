# METADATA
# title: Backgate access decision
# description: |
#   Decides whether a signed-in person may reach a service behind backgate,
#   from the Backstage catalog (data.catalog), temporary grants (data.grants)
#   and the request (input). Access is denied unless an allow rule below
#   fires and no deny rule does.
#
#   dev: the engineering organisation. staging: the owning group, its parent
#   groups, and a user who owns the service directly. prod: the owning group
#   and the emergency groups. Everywhere: an unexpired temporary grant.
# schemas:
#   - data.catalog: schema.catalog
#   - data.grants: schema.grants
package backgate.authz

import data.backgate.settings

# METADATA
# title: Decision
# description: |
#   The answer backgate acts on. "allow" is true only when no deny rule fired
#   and at least one allow rule did. "matched" explains it: the deny rules
#   that fired if any did, else the allow rules that fired, else why nothing
#   allowed the request. Each is {"rule": name, "reason": text}; a temporary
#   grant adds "grant": {"id", "expires_at"} (backgate reports the one
#   running longest).
decision := {"allow": false, "matched": denied} if {
	denied := deny
	count(denied) > 0
} else := {"allow": true, "matched": permitted} if {
	permitted := permit
	count(permitted) > 0
} else := {"allow": false, "matched": {{"rule": "no_matching_rule", "reason": sprintf("no rule allows %s to reach %s in %s: %s", [
	user_name, input.route.service, input.route.environment,
	environment_model[input.route.environment],
])}}}

# METADATA
# title: What each environment allows
# description: |
#   Used to explain a denial when no allow rule fired. One rule per
#   environment, so only the one asked about is evaluated.
environment_model["dev"] := sprintf("dev allows the engineering organisation (%s) and temporary grants", [settings.engineering_org_group])

environment_model["staging"] := "staging allows the owning group, its parent groups, a user who owns the service, and temporary grants"

environment_model["prod"] := "prod allows only the owning group, the emergency groups and temporary grants"

# --- Facts looked up once per decision -------------------------------------

# METADATA
# title: Signed-in Backstage user
# description: The catalog entry of the user the identity resolved to; undefined for unknown users.
user := data.catalog.users[input.user.ref]

# METADATA
# title: Name used in reasons
# description: The user's catalog name, else the identity's e-mail, else its subject.
user_name := user.name if {
	user.name != ""
} else := input.user.email if {
	input.user.email != ""
} else := input.user.sub

# METADATA
# title: Requested service
# description: The component, resource or API the route points at; undefined if the catalog has no such entity.
service := s if {
	s := data.catalog.components[input.route.service]
} else := s if {
	s := data.catalog.resources[input.route.service]
} else := s if {
	s := data.catalog.apis[input.route.service]
}

# METADATA
# title: Owning group
# description: The catalog group that owns the service (undefined when a user owns it).
owning_group := data.catalog.groups[service.owner] if service.owner_kind == "group"

# METADATA
# title: Active temporary grants
# description: |
#   Grants for this user, service and environment that have not expired at the
#   decision time and do not run longer than the environment's maximum.
active_grants contains g if {
	some g in data.grants[input.user.ref][input.route.service]
	g.environment == input.route.environment
	input.time < g.expires_at
	g.expires_at - input.time <= settings.max_grant_duration_ns[input.route.environment]
}

# --- Deny rules: any one of them denies ------------------------------------

# METADATA
# title: No catalog loaded
# description: Until the Backstage catalog has been loaded nobody is let in.
deny contains {"rule": "no_catalog", "reason": "no Backstage catalog is loaded yet, so nobody can be identified"} if {
	not data.catalog.revision
}

# METADATA
# title: Unknown user
# description: An identity that matches no Backstage user is denied.
deny contains {"rule": "unknown_user", "reason": reason} if {
	data.catalog.revision
	not user
	reason := sprintf("the signed-in identity (e-mail %q, subject %q) matches no Backstage user", [input.user.email, input.user.sub])
}

# METADATA
# title: Suspended user
# description: A Backstage user marked suspended is denied everywhere, grants included.
deny contains {"rule": "suspended_user", "reason": sprintf("%s is suspended in Backstage", [user.ref])} if {
	user.suspended == true
}

# METADATA
# title: Unknown service
# description: A route pointing at an entity the catalog does not have is denied.
deny contains {"rule": "unknown_service", "reason": sprintf("%s is not in the Backstage catalog", [input.route.service])} if {
	data.catalog.revision
	not service
}

# METADATA
# title: Unknown environment
# description: Only the environments listed in the settings exist; anything else is denied.
deny contains {"rule": "unknown_environment", "reason": reason} if {
	not input.route.environment in settings.environments
	reason := sprintf("environment %q is not one the policy knows (%s)", [
		input.route.environment,
		concat(", ", sort(settings.environments)),
	])
}

# --- Allow rules -------------------------------------------------------------

# METADATA
# title: Engineering organisation (dev)
# description: In dev, anyone in the engineering organisation group or any group below it may enter.
permit contains {"rule": "dev_engineering_org", "reason": reason} if {
	input.route.environment == "dev"
	settings.engineering_org_group in user.all_groups
	reason := sprintf("%s is in the engineering organisation %s (dev allows the whole organisation)", [
		user_name,
		settings.engineering_org_group,
	])
}

# METADATA
# title: Any known user (dev)
# description: In dev, any Backstage user may enter when the setting dev_open_to_all_known_users is true.
permit contains {"rule": "dev_known_user", "reason": reason} if {
	input.route.environment == "dev"
	settings.dev_open_to_all_known_users == true
	user.ref
	reason := sprintf("%s is a known Backstage user (dev is open to all known users)", [user_name])
}

# METADATA
# title: Owning group (all environments)
# description: |
#   Members of the group that owns the service, directly or through one of its
#   sub-groups, may enter in every environment.
permit contains {"rule": "owning_group", "reason": reason} if {
	owning_group.ref in user.all_groups
	reason := sprintf("%s is a member of %s, which owns %s (%s allows the owning group)", [
		user_name, owning_group.name, input.route.service, input.route.environment,
	])
}

# METADATA
# title: Parent of the owning group (staging)
# description: In staging, direct members of any group above the owning group may enter.
permit contains {"rule": "staging_parent_group", "reason": reason} if {
	input.route.environment == "staging"
	some g in user.groups
	g in owning_group.ancestors
	reason := sprintf("%s is a member of %s, a parent of %s, which owns %s (staging allows the owning group and its parents)", [
		user_name, data.catalog.groups[g].name, owning_group.name, input.route.service,
	])
}

# METADATA
# title: Service owned by the user (dev, staging)
# description: In dev and staging, a user who owns the service directly (not through a group) may enter.
permit contains {"rule": "owner_user", "reason": reason} if {
	input.route.environment in {"dev", "staging"}
	service.owner_kind == "user"
	service.owner == user.ref
	reason := sprintf("%s owns %s directly (%s allows a user who owns the service)", [
		user_name, input.route.service, input.route.environment,
	])
}

# METADATA
# title: Emergency group (prod)
# description: |
#   In prod, members of an emergency group may enter any service. Membership
#   counts from the catalog or from an IdP group mapped to the emergency group.
permit contains {"rule": "prod_emergency_group", "reason": reason} if {
	input.route.environment == "prod"
	some g in settings.emergency_groups
	emergency_member(g)
	reason := sprintf("%s is a member of the emergency group %s (prod allows emergency groups)", [user_name, g])
}

# METADATA
# title: Temporary grant (all environments)
# description: An approved temporary grant for this user, service and environment allows entry until it expires.
permit contains {"rule": "temporary_grant", "reason": reason, "grant": {"id": g.id, "expires_at": g.expires_at}} if {
	some g in active_grants
	reason := sprintf("%s holds temporary grant %s for %s in %s, approved by %s, valid until %s", [
		user_name, g.id, input.route.service, input.route.environment,
		concat(", ", g.approved_by), time.format(g.expires_at),
	])
}

# METADATA
# title: Emergency group membership
# description: True when the user is in the group in the catalog (directly or through a sub-group).
emergency_member(g) if g in user.all_groups

# METADATA
# title: Emergency group membership from the IdP
# description: True when one of the IdP groups the identity provider asserted maps to the group.
emergency_member(g) if {
	user.ref
	some name in input.user.groups
	g in data.catalog.idp_groups[name]
}
