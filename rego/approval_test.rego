package backgate.approval_test

import data.backgate.approval
import data.backgate.test.fixtures as fx

pet := "component:default/petstore"

ask(env, requester, approver, approved_by, duration) := r if {
	r := approval.result with data.catalog as fx.catalog
		with input as {
			"route": {"service": pet, "environment": env},
			"approval": {"requester": requester, "approver": approver, "approved_by": approved_by, "duration_ns": duration},
			"time": fx.now,
		}
}

alice := "user:default/alice"

carol := "user:default/carol"

sam := "user:default/sam"

tess := "user:default/tess"

test_owning_group_member_may_approve if {
	r := ask("staging", carol, alice, [], fx.hour)
	r.may_approve == true
	r.reasons == ["user:default/alice may approve as owning_group"]
}

test_nobody_approves_own_request if {
	r := ask("staging", alice, alice, [], fx.hour)
	r.may_approve == false
	"nobody may approve their own request" in r.reasons
}

test_outsider_may_not_approve if {
	r := ask("staging", carol, "user:default/bob", [], fx.hour)
	r.may_approve == false
	r.reasons == ["user:default/bob is not in group:default/team-c (the owning group) or a prod approver group"]
}

test_suspended_and_unknown_approvers if {
	ask("dev", carol, "user:default/frank", [], fx.hour).may_approve == false
	ask("dev", carol, "user:default/nobody", [], fx.hour).may_approve == false
}

test_prod_approver_group_may_approve_prod_only if {
	ask("prod", carol, sam, [], fx.hour).may_approve == true
	ask("staging", carol, sam, [], fx.hour).may_approve == false
}

test_approvers_list if {
	ask("staging", carol, alice, [], fx.hour).approvers == {alice, tess}
	ask("prod", carol, alice, [], fx.hour).approvers == {alice, tess, sam}
	ask("staging", alice, tess, [], fx.hour).approvers == {tess}
}

test_duration_limits if {
	ask("prod", carol, alice, [], 4 * fx.hour).may_approve == true
	r := ask("prod", carol, alice, [], 5 * fx.hour)
	r.may_approve == false
	r.reasons == ["requested duration 18000000000000ns exceeds the prod maximum of 14400000000000ns"]
	ask("dev", carol, alice, [], 0).may_approve == false
	ask("staging", carol, alice, [], 24 * fx.hour).may_approve == true
}

test_missing_duration_is_invalid if {
	r := approval.result with data.catalog as fx.catalog
		with input as {"route": {"service": pet, "environment": "dev"}, "approval": {"requester": carol, "approver": alice}}
	r.may_approve == false
	"requested duration must be positive" in r.reasons
}

test_bad_request if {
	ask("qa", carol, alice, [], fx.hour).may_approve == false
	ask("dev", "user:default/ghost", alice, [], fx.hour).may_approve == false
	r := approval.result with data.catalog as fx.catalog
		with input as {"route": {"service": "component:default/nope", "environment": "dev"}, "approval": {"requester": carol, "approver": alice, "duration_ns": 1}}
	"component:default/nope is not in the Backstage catalog" in r.reasons
}

test_complete_outside_prod_needs_one_owner if {
	ask("staging", carol, alice, [alice], fx.hour).complete == true
	ask("staging", carol, alice, [], fx.hour).complete == false
	ask("staging", carol, alice, [sam], fx.hour).complete == false
}

test_complete_prod_needs_owner_and_second_group if {
	ask("prod", carol, alice, [alice], fx.hour).complete == false
	ask("prod", carol, alice, [alice, sam], fx.hour).complete == true
	ask("prod", carol, alice, [alice, tess], fx.hour).complete == false
}

test_complete_rejects_self_approval if {
	ask("staging", alice, tess, [alice, tess], fx.hour).complete == false
}
