package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

var (
	keyMayApprove = ast.StringTerm("may_approve")
	keyComplete   = ast.StringTerm("complete")
)

// MayApprove evaluates data.backgate.approval.result: whether in.ApproverRef
// may approve in.Request and whether the request is then fully approved.
// Refs, service and environment are lower-cased. Any evaluation error or
// malformed answer is returned with a zero result (may not approve).
func (e *Engine) MayApprove(ctx context.Context, in ApprovalInput) (res ApprovalResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = ApprovalResult{}, fmt.Errorf("%w: %v", ErrEnginePanic, r)
			e.log.Error("policy engine panic in MayApprove; approval refused", "request", in.Request.ID, "panic", fmt.Sprint(r))
		}
	}()
	if err := ctx.Err(); err != nil {
		return ApprovalResult{}, fmt.Errorf("policy: may approve: %w", err)
	}
	if in.Time.IsZero() {
		in.Time = e.now()
	}
	p, snap := e.policy.Load(), e.data.Load()
	v, err := e.eval(ctx, p, &p.approval, snap, approvalInput(&in), in.Time, nil)
	if err != nil {
		return ApprovalResult{}, err
	}
	res, err = readApproval(v)
	if err != nil {
		return ApprovalResult{}, err
	}
	return res, nil
}

func approvalInput(in *ApprovalInput) ast.Value {
	approver := strings.ToLower(in.ApproverRef)
	by := make([]*ast.Term, 0, len(in.Request.ApprovedBy)+1)
	seen := make([]string, 0, len(in.Request.ApprovedBy)+1)
	for _, a := range append(slices.Clip(in.Request.ApprovedBy), approver) {
		a = strings.ToLower(a)
		if a == "" || slices.Contains(seen, a) {
			continue
		}
		seen = append(seen, a)
		by = append(by, ast.StringTerm(a))
	}
	user := ast.NewObject(
		[2]*ast.Term{kSub, str(in.Approver.Subject)},
		[2]*ast.Term{kIss, str(in.Approver.Issuer)},
		[2]*ast.Term{kEmail, str(in.Approver.Email)},
		[2]*ast.Term{kName, str(in.Approver.Name)},
		[2]*ast.Term{kUsername, str(in.Approver.Username)},
		[2]*ast.Term{kGroups, strArray(in.Approver.Groups)},
		[2]*ast.Term{kRef, str(approver)},
	)
	route := ast.NewObject(
		[2]*ast.Term{kService, str(strings.ToLower(in.Request.Service))},
		[2]*ast.Term{kEnvironment, str(strings.ToLower(in.Request.Environment))},
	)
	approval := ast.NewObject(
		[2]*ast.Term{kRequester, str(strings.ToLower(in.Request.Requester))},
		[2]*ast.Term{kApprover, str(approver)},
		[2]*ast.Term{kApprovedBy, ast.ArrayTerm(by...)},
		[2]*ast.Term{kDurationNs, nanos(int64(in.Request.Duration))},
	)
	return ast.NewObject(
		[2]*ast.Term{kUser, ast.NewTerm(user)},
		[2]*ast.Term{kRoute, ast.NewTerm(route)},
		[2]*ast.Term{kApproval, ast.NewTerm(approval)},
		[2]*ast.Term{kTime, nanos(in.Time.UnixNano())},
	)
}

func readApproval(v ast.Value) (ApprovalResult, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return ApprovalResult{}, fmt.Errorf("%w: approval result is %s, not an object", ErrBadDecision, ast.ValueName(v))
	}
	boolean := func(k *ast.Term) (bool, error) {
		t := obj.Get(k)
		if t == nil {
			return false, fmt.Errorf("%w: approval result %v is missing", ErrBadDecision, k)
		}
		b, ok := t.Value.(ast.Boolean)
		if !ok {
			return false, fmt.Errorf("%w: approval result %v is not a boolean", ErrBadDecision, k)
		}
		return bool(b), nil
	}
	may, err := boolean(keyMayApprove)
	if err != nil {
		return ApprovalResult{}, err
	}
	complete, err := boolean(keyComplete)
	if err != nil {
		return ApprovalResult{}, err
	}
	reasons, err := stringArray(obj.Get(keyReasons), "approval reasons")
	if err != nil {
		return ApprovalResult{}, err
	}
	return ApprovalResult{MayApprove: may, Complete: may && complete, Reasons: reasons}, nil
}

// MaxGrantDuration is the longest temporary grant the policy offers for
// service in environment: data.backgate.settings.max_grant_duration_ns
// (rego/settings.rego), 0 when the environment has no entry (not offered).
// The shipped settings are per environment; service is accepted so the
// contract does not change if per-service limits are added.
func (e *Engine) MaxGrantDuration(ctx context.Context, service, environment string) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("policy: max grant duration: %w", err)
	}
	if service == "" || environment == "" {
		return 0, fmt.Errorf("policy: max grant duration: service %q and environment %q are required", service, environment)
	}
	p, snap := e.policy.Load(), e.data.Load()
	v, err := e.eval(ctx, p, &p.maxDur, snap, ast.NewObject(), e.now(), nil)
	if errors.Is(err, ErrUndefined) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return 0, fmt.Errorf("%w: %s is %s, not an object", ErrBadDecision, MaxDurationQuery, ast.ValueName(v))
	}
	t := obj.Get(ast.StringTerm(strings.ToLower(environment)))
	if t == nil {
		return 0, nil
	}
	n, ok := t.Value.(ast.Number)
	ns, isInt := n.Int64()
	if !ok || !isInt || ns < 0 {
		return 0, fmt.Errorf("%w: %s[%q] = %v is not a non-negative integer", ErrBadDecision, MaxDurationQuery, environment, t)
	}
	return time.Duration(ns), nil
}
