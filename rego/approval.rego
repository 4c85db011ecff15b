# METADATA
# title: Who may approve temporary access
# description: |
#   Used by the access-request feature. input.route names the service and
#   environment, input.approval the requester, the approver being checked,
#   who has approved so far and the requested duration.
#
#   Members of the owning group (directly or through a sub-group) may approve.
#   Nobody may approve their own request. prod needs, in addition, a second
#   person from a prod approver group (see settings).
# schemas:
#   - data.catalog: schema.catalog
package backgate.approval

import data.backgate.authz
import data.backgate.settings

# METADATA
# title: Approval answer
# description: Everything the access-request feature needs in one object.
result := {
	"may_approve": may_approve,
	"reasons": reasons,
	"approvers": approvers,
	"complete": complete,
}

# METADATA
# title: May approve
# description: True when input.approval.approver may approve this request.
default may_approve := false

may_approve if {
	count(request_problems) == 0
	count(approver_problems) == 0
	count(roles(input.approval.approver)) > 0
}

# METADATA
# title: Reasons
# description: Why the approver may or may not approve.
reasons := sort(request_problems | approver_problems) if {
	count(request_problems | approver_problems) > 0
} else := [sprintf("%s may approve as %s", [
	input.approval.approver,
	concat(" and ", sort(roles(input.approval.approver))),
])] if {
	count(roles(input.approval.approver)) > 0
} else := [sprintf("%s is not in %s (the owning group) or a prod approver group", [
	input.approval.approver, authz.service.owner,
])]

# METADATA
# title: Approvers
# description: |
#   Everyone who may approve this request: members of the owning group and,
#   for prod, of the prod approver groups; never the requester, never a suspended user.
approvers contains u if {
	some u in authz.owning_group.all_members
	eligible(u)
}

approvers contains u if {
	input.route.environment == "prod"
	some g in settings.prod_approver_groups
	some u in data.catalog.groups[g].all_members
	eligible(u)
}

# METADATA
# title: Fully approved
# description: |
#   True when the request is valid, every approval in input.approval.approved_by
#   came from an eligible person, at least one came from the owning group and,
#   for prod, another person from a prod approver group approved as well.
default complete := false

complete if {
	count(request_problems) == 0
	every a in input.approval.approved_by {
		eligible(a)
		count(roles(a)) > 0
	}
	some owner_approver in input.approval.approved_by
	"owning_group" in roles(owner_approver)
	prod_second_approval(owner_approver)
}

# METADATA
# title: Second prod approval
# description: Outside prod nothing more is needed; in prod a different person from a prod approver group must approve.
prod_second_approval(_) if input.route.environment != "prod"

prod_second_approval(first) if {
	input.route.environment == "prod"
	some a in input.approval.approved_by
	a != first
	"prod_approver" in roles(a)
}

# METADATA
# title: Approver roles
# description: The capacities in which a user may approve this request.
roles(u) := {r | some r in ["owning_group", "prod_approver"]; has_role(u, r)}

# METADATA
# title: Owning-group approver
# description: A member of the owning group, directly or through a sub-group.
has_role(u, "owning_group") if {
	authz.owning_group.ref in data.catalog.users[u].all_groups
}

# METADATA
# title: Prod approver
# description: In prod, a member of a prod approver group.
has_role(u, "prod_approver") if {
	input.route.environment == "prod"
	some g in settings.prod_approver_groups
	g in data.catalog.users[u].all_groups
}

# METADATA
# title: Eligible approver
# description: A known, not suspended Backstage user who is not the requester.
eligible(u) if {
	u != input.approval.requester
	data.catalog.users[u].suspended == false
}

# METADATA
# title: Problems with the request itself
# description: Unknown requester or service, unknown environment, or a duration over the environment's maximum.
request_problems contains sprintf("requester %q is not a Backstage user", [input.approval.requester]) if {
	not data.catalog.users[input.approval.requester]
}

request_problems contains sprintf("%s is not in the Backstage catalog", [input.route.service]) if {
	not authz.service
}

request_problems contains sprintf("environment %q is not one the policy knows", [input.route.environment]) if {
	not settings.max_grant_duration_ns[input.route.environment]
}

request_problems contains msg if {
	max_ns := settings.max_grant_duration_ns[input.route.environment]
	duration_ns > max_ns
	msg := sprintf("requested duration %dns exceeds the %s maximum of %dns", [
		duration_ns, input.route.environment, max_ns,
	])
}

request_problems contains "requested duration must be positive" if {
	duration_ns <= 0
}

# METADATA
# title: Requested duration
# description: input.approval.duration_ns, or 0 (invalid) when missing.
duration_ns := object.get(input, ["approval", "duration_ns"], 0)

# METADATA
# title: Problems with the approver
# description: The requester approving their own request, or an unknown or suspended approver.
approver_problems contains "nobody may approve their own request" if {
	input.approval.approver == input.approval.requester
}

approver_problems contains sprintf("approver %q is not a Backstage user", [input.approval.approver]) if {
	not data.catalog.users[input.approval.approver]
}

approver_problems contains sprintf("approver %s is suspended", [input.approval.approver]) if {
	data.catalog.users[input.approval.approver].suspended == true
}
