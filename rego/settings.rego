# METADATA
# title: Access policy settings
# description: |
#   Values the security team tunes. Every decision reads them, so a change
#   here (and a policy reload) changes who gets in; no Go code is involved.
package backgate.settings

# METADATA
# title: Engineering organisation group
# description: |
#   The Backstage group at the root of the engineering organisation. Anyone in
#   it, or in any group below it, may reach services in dev.
engineering_org_group := "group:default/acme-corp"

# METADATA
# title: Dev open to every known user
# description: |
#   When true, any Backstage user who is not suspended may reach dev, not only
#   the engineering organisation.
dev_open_to_all_known_users := false

# METADATA
# title: Emergency groups
# description: |
#   Members of these groups may reach any service in prod (break-glass on-call).
#   Membership may come from the catalog or from an IdP group mapped to them.
emergency_groups := {"group:default/sre-oncall"}

# METADATA
# title: Prod approver groups
# description: |
#   A temporary grant for prod needs, besides an approver from the owning
#   group, a second person from one of these groups.
prod_approver_groups := {"group:default/security"}

# METADATA
# title: Known environments
# description: Requests for any other environment are denied.
environments := {"dev", "staging", "prod"}

# METADATA
# title: Maximum temporary grant duration per environment
# description: |
#   In nanoseconds: dev 7 days, staging 24 hours, prod 4 hours. A grant that
#   still has more than this left to run is ignored (it was issued too long).
max_grant_duration_ns := {
	"dev": 604800000000000,
	"staging": 86400000000000,
	"prod": 14400000000000,
}
