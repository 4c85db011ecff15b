package access

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	acc "github.com/backgate/backgate/access"
)

// fakeService is an in-memory Service with the semantics of
// *access.Service: one pending request per person, service and
// environment; owners approve, deny and revoke; nobody approves their own
// request; ToDecide lists pending requests only; unknown services are
// ErrInvalid; revoking what is not approved is ErrNotActive. One approval
// completes a request.
type fakeService struct {
	mu     sync.Mutex
	now    func() time.Time
	max    map[string]map[string]time.Duration // service → environment → longest grant
	owners map[string][]string                 // service → user refs who may decide
	reqs   []*acc.Request
	calls  []call
	fail   error // returned by every method when set (an internal error)
}

type call struct {
	op     string
	actor  acc.Actor
	id     string
	reason string
}

var _ Service = (*fakeService)(nil)

func (f *fakeService) record(op string, a acc.Actor, id, reason string) error {
	f.calls = append(f.calls, call{op: op, actor: a, id: id, reason: reason})
	return f.fail
}

func (f *fakeService) find(id string) (*acc.Request, error) {
	for _, r := range f.reqs {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, fmt.Errorf("request %q: %w", id, acc.ErrNotFound)
}

func (f *fakeService) owns(user, service string) bool {
	return slices.Contains(f.owners[service], user)
}

func (f *fakeService) maxLocked(service, env string) (time.Duration, error) {
	envs, ok := f.max[service]
	if !ok {
		return 0, fmt.Errorf("%w: unknown service %q", acc.ErrInvalid, service)
	}
	return envs[env], nil
}

func (f *fakeService) Request(_ context.Context, a acc.Actor, service, env string, d time.Duration, reason string) (acc.Request, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("request", a, "", reason); err != nil {
		return acc.Request{}, false, err
	}
	if a.UserRef == "" {
		return acc.Request{}, false, acc.ErrUnknownUser
	}
	max, err := f.maxLocked(service, env)
	if err != nil {
		return acc.Request{}, false, err
	}
	switch {
	case max == 0:
		return acc.Request{}, false, fmt.Errorf("environment %q offers no temporary access: %w", env, acc.ErrInvalid)
	case d > max:
		return acc.Request{}, false, fmt.Errorf("duration %s > %s: %w", d, max, acc.ErrDurationTooLong)
	case reason == "":
		return acc.Request{}, false, fmt.Errorf("reason is empty: %w", acc.ErrInvalid)
	}
	for _, r := range f.reqs {
		if r.Requester == a.UserRef && r.Service == service && r.Environment == env && r.State == acc.StatePending {
			return *r, true, nil
		}
	}
	r := &acc.Request{ID: "r" + strconv.Itoa(len(f.reqs)+1), Requester: a.UserRef, RequesterEmail: a.Email, Service: service,
		Environment: env, Duration: d, Reason: reason, State: acc.StatePending, CreatedAt: f.now()}
	f.reqs = append(f.reqs, r)
	return *r, false, nil
}

// decide runs the checks shared by approve and deny.
func (f *fakeService) decide(a acc.Actor, id string) (*acc.Request, error) {
	r, err := f.find(id)
	if err != nil {
		return nil, err
	}
	switch {
	case a.UserRef == "":
		return nil, acc.ErrUnknownUser
	case r.Requester == a.UserRef:
		return nil, acc.ErrSelfApproval
	case !f.owns(a.UserRef, r.Service):
		return nil, acc.ErrForbidden
	case r.State != acc.StatePending:
		return nil, fmt.Errorf("request %s is %s: %w", id, r.State, acc.ErrNotPending)
	case slices.ContainsFunc(r.Approvals, func(ap acc.Approval) bool { return ap.By == a.UserRef }):
		return nil, fmt.Errorf("%s already approved %s: %w", a.UserRef, id, acc.ErrForbidden)
	}
	return r, nil
}

func (f *fakeService) Approve(_ context.Context, a acc.Actor, id string) (acc.Request, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("approve", a, id, ""); err != nil {
		return acc.Request{}, err
	}
	r, err := f.decide(a, id)
	if err != nil {
		return acc.Request{}, err
	}
	r.Approvals = append(r.Approvals, acc.Approval{By: a.UserRef, Email: a.Email, At: f.now()})
	r.State, r.DecidedAt, r.DecidedBy = acc.StateApproved, f.now(), a.UserRef
	r.GrantID, r.ExpiresAt = "g"+r.ID, f.now().Add(r.Duration)
	return *r, nil
}

func (f *fakeService) Deny(_ context.Context, a acc.Actor, id, reason string) (acc.Request, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("deny", a, id, reason); err != nil {
		return acc.Request{}, err
	}
	if reason == "" {
		return acc.Request{}, fmt.Errorf("deny needs a reason: %w", acc.ErrInvalid)
	}
	if r, err := f.find(id); err == nil && r.Requester == a.UserRef {
		return acc.Request{}, fmt.Errorf("request %s is your own: cancel it: %w", id, acc.ErrForbidden)
	}
	r, err := f.decide(a, id)
	if err != nil {
		return acc.Request{}, err
	}
	r.State, r.DecidedAt, r.DecidedBy, r.DecisionReason = acc.StateDenied, f.now(), a.UserRef, reason
	return *r, nil
}

func (f *fakeService) Revoke(_ context.Context, a acc.Actor, id, reason string) (acc.Request, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("revoke", a, id, reason); err != nil {
		return acc.Request{}, err
	}
	r, err := f.find(id)
	if err != nil {
		return acc.Request{}, err
	}
	if r.State != acc.StateApproved {
		return acc.Request{}, fmt.Errorf("request %s is %s: %w", id, r.State, acc.ErrNotActive)
	}
	if r.Requester != a.UserRef && !f.owns(a.UserRef, r.Service) {
		return acc.Request{}, acc.ErrForbidden
	}
	r.State, r.DecisionReason, r.RevokedAt, r.RevokedBy = acc.StateRevoked, reason, f.now(), a.UserRef
	return *r, nil
}

func (f *fakeService) Cancel(_ context.Context, a acc.Actor, id string) (acc.Request, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("cancel", a, id, ""); err != nil {
		return acc.Request{}, err
	}
	r, err := f.find(id)
	if err != nil {
		return acc.Request{}, err
	}
	if r.Requester != a.UserRef {
		return acc.Request{}, acc.ErrForbidden
	}
	if r.State != acc.StatePending {
		return acc.Request{}, fmt.Errorf("request %s is %s: %w", id, r.State, acc.ErrNotPending)
	}
	r.State, r.DecidedAt = acc.StateCanceled, f.now()
	return *r, nil
}

func (f *fakeService) Get(_ context.Context, id string) (acc.Request, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return acc.Request{}, f.fail
	}
	r, err := f.find(id)
	if err != nil {
		return acc.Request{}, err
	}
	return *r, nil
}

func (f *fakeService) Mine(_ context.Context, a acc.Actor) ([]acc.Request, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []acc.Request
	for _, r := range slices.Backward(f.reqs) { // newest first
		if r.Requester == a.UserRef {
			out = append(out, *r)
		}
	}
	return out, nil
}

func (f *fakeService) ToDecide(_ context.Context, a acc.Actor) ([]acc.Request, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []acc.Request
	for _, r := range slices.Backward(f.reqs) { // pending ones the actor may decide, newest first
		approved := slices.ContainsFunc(r.Approvals, func(ap acc.Approval) bool { return ap.By == a.UserRef })
		if f.owns(a.UserRef, r.Service) && r.Requester != a.UserRef && r.State == acc.StatePending && !approved {
			out = append(out, *r)
		}
	}
	return out, nil
}

func (f *fakeService) MaxDuration(_ context.Context, service, env string) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	return f.maxLocked(service, env)
}

// lastCall returns the last recorded call.
func (f *fakeService) lastCall() (call, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return call{}, 0
	}
	return f.calls[len(f.calls)-1], len(f.calls)
}

func (f *fakeService) state(id string) acc.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.find(id)
	if err != nil {
		return ""
	}
	return r.State
}
