package access

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxReasonLen is the longest reason (in characters) a request, denial or
// revocation may carry.
const MaxReasonLen = 500

var envPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Options configures a Service.
type Options struct {
	// Store keeps requests, grants and the audit trail. Required.
	Store Store
	// Approver is the policy: who may approve, and the longest grant per
	// environment. Required.
	Approver Approver
	// Services reports whether service is a known service (a Backstage
	// entity ref). nil: every service is known.
	Services func(service string) bool
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Audit receives one JSON line per audit event, after the event is
	// committed to the store. nil: none.
	Audit io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NewID makes request and grant IDs; nil means 128 random bits in hex.
	NewID func() string
	// Notifier is told about new requests and decisions, asynchronously.
	// nil: none.
	Notifier Notifier
	// OnChange is called after every change to grants (approval,
	// revocation, expiry) so the caller can push ActiveGrants to the policy
	// engine. It runs synchronously on the caller's goroutine; keep it short.
	// nil: none.
	OnChange func()
}

// Service is temporary access: requests, decisions, grants and the audit.
// It is safe for concurrent use.
type Service struct {
	store    Store
	approver Approver
	services func(string) bool
	log      *slog.Logger
	audit    io.Writer
	auditMu  sync.Mutex
	now      func() time.Time
	newID    func() string
	notifier Notifier
	onChange func()
	changed  chan struct{} // wakes RunGrantSync
}

// NewService checks o and builds a Service.
func NewService(o Options) (*Service, error) {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("access: Options.Store is nil"))
	}
	if o.Approver == nil {
		errs = append(errs, errors.New("access: Options.Approver is nil"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Service{
		store:    o.Store,
		approver: o.Approver,
		services: o.Services,
		log:      o.Logger,
		audit:    o.Audit,
		now:      o.Now,
		newID:    o.NewID,
		notifier: o.Notifier,
		onChange: o.OnChange,
		changed:  make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = randomID
	}
	return s, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return hex.EncodeToString(b[:])
}

func (s *Service) clock() time.Time { return s.now().UTC() }

// checkReason trims reason and checks it: required, at most MaxReasonLen
// characters, valid UTF-8, no control characters other than newline and tab.
func checkReason(field, reason string, required bool) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		if required {
			return "", fmt.Errorf("%w: %s is empty", ErrInvalid, field)
		}
		return "", nil
	}
	if !utf8.ValidString(reason) {
		return "", fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	if n := utf8.RuneCountInString(reason); n > MaxReasonLen {
		return "", fmt.Errorf("%w: %s is %d characters, at most %d are allowed", ErrInvalid, field, n, MaxReasonLen)
	}
	for _, r := range reason {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return "", fmt.Errorf("%w: %s contains control character %U", ErrInvalid, field, r)
		}
	}
	return reason, nil
}

func checkEnv(env string) error {
	if !envPattern.MatchString(env) {
		return fmt.Errorf("%w: environment %q must be 1-63 characters of a-z, 0-9 and '-'", ErrInvalid, env)
	}
	return nil
}

func (s *Service) checkService(service string) error {
	if strings.TrimSpace(service) == "" || len(service) > 300 || !utf8.ValidString(service) {
		return fmt.Errorf("%w: service %q is not a valid service reference", ErrInvalid, service)
	}
	if s.services != nil && !s.services(service) {
		return fmt.Errorf("%w: unknown service %q", ErrInvalid, service)
	}
	return nil
}

func actorEvent(a Actor, action string, r Request, at time.Time) AuditEvent {
	return AuditEvent{
		Time:        at,
		Action:      action,
		Actor:       a.UserRef,
		ActorEmail:  a.Email,
		Address:     a.Address,
		Via:         a.Via,
		RequestID:   r.ID,
		GrantID:     r.GrantID,
		User:        r.Requester,
		Service:     r.Service,
		Environment: r.Environment,
	}
}

// MaxDuration is the longest grant the policy offers for service in env
// (0: temporary access is not offered there).
func (s *Service) MaxDuration(ctx context.Context, service, env string) (time.Duration, error) {
	if err := s.checkService(service); err != nil {
		return 0, err
	}
	if err := checkEnv(env); err != nil {
		return 0, err
	}
	d, err := s.approver.MaxDuration(ctx, service, env)
	if err != nil {
		return 0, fmt.Errorf("access: max duration for %s in %s: %w", service, env, err)
	}
	return max(d, 0), nil
}

// Request asks for access to service in env for d. If a's user already has a
// pending request for the same service and environment, that one is
// returned with true and nothing changes.
func (s *Service) Request(ctx context.Context, a Actor, service, env string, d time.Duration, reason string) (Request, bool, error) {
	if a.UserRef == "" {
		return Request{}, false, fmt.Errorf("request access: %w", ErrUnknownUser)
	}
	if err := s.checkService(service); err != nil {
		return Request{}, false, err
	}
	if err := checkEnv(env); err != nil {
		return Request{}, false, err
	}
	reason, err := checkReason("reason", reason, true)
	if err != nil {
		return Request{}, false, err
	}
	if d <= 0 {
		return Request{}, false, fmt.Errorf("%w: duration %s must be positive", ErrInvalid, d)
	}
	maxD, err := s.MaxDuration(ctx, service, env)
	if err != nil {
		return Request{}, false, err
	}
	if maxD == 0 {
		return Request{}, false, fmt.Errorf("%w: temporary access to %s is not offered in environment %q", ErrInvalid, service, env)
	}
	if d > maxD {
		return Request{}, false, fmt.Errorf("%w: duration %s is above the maximum %s for %s in %s", ErrDurationTooLong, d, maxD, service, env)
	}
	now := s.clock()
	r := Request{
		ID:             s.newID(),
		Requester:      a.UserRef,
		RequesterEmail: a.Email,
		Service:        service,
		Environment:    env,
		Duration:       d,
		Reason:         reason,
		State:          StatePending,
		CreatedAt:      now,
	}
	ev := actorEvent(a, "request", r, now)
	ev.Reason = reason
	ev.Detail = "duration=" + d.String()
	out, stored, existing, err := s.store.CreateRequest(ctx, r, ev)
	if err != nil {
		return Request{}, false, fmt.Errorf("access: request: %w", err)
	}
	if existing {
		return out, true, nil
	}
	s.recorded(ctx, stored, out, false)
	return out, false, nil
}

// Get returns one request.
func (s *Service) Get(ctx context.Context, id string) (Request, error) {
	if id == "" || len(id) > 128 {
		return Request{}, fmt.Errorf("request %q: %w", id, ErrNotFound)
	}
	return s.store.GetRequest(ctx, id)
}

// Mine returns the requests a's user made, newest first.
func (s *Service) Mine(ctx context.Context, a Actor) ([]Request, error) {
	if a.UserRef == "" {
		return nil, fmt.Errorf("list requests: %w", ErrUnknownUser)
	}
	return s.store.ListRequests(ctx, RequestFilter{Requester: a.UserRef, Limit: 200})
}

// ToDecide returns the pending requests a may approve or deny, newest first:
// not their own, not already approved by them, and allowed by the policy.
func (s *Service) ToDecide(ctx context.Context, a Actor) ([]Request, error) {
	if a.UserRef == "" {
		return nil, fmt.Errorf("list requests to decide: %w", ErrUnknownUser)
	}
	pending, err := s.store.ListRequests(ctx, RequestFilter{State: StatePending, Limit: 1000})
	if err != nil {
		return nil, err
	}
	now := s.clock()
	var out []Request
	for _, r := range pending {
		if r.Requester == a.UserRef || approvedBy(r, a.UserRef) {
			continue
		}
		res, err := s.approver.MayApprove(ctx, ApprovalInput{Approver: a, Request: r, Time: now})
		if err != nil {
			return nil, fmt.Errorf("access: may %s approve %s: %w", a.UserRef, r.ID, err)
		}
		if res.MayApprove {
			out = append(out, r)
		}
	}
	return out, nil
}

func approvedBy(r Request, user string) bool {
	return slices.ContainsFunc(r.Approvals, func(ap Approval) bool { return ap.By == user })
}

// mayDecide checks that a may approve or deny r.
func (s *Service) mayDecide(ctx context.Context, a Actor, r Request, now time.Time) (ApprovalResult, error) {
	if a.UserRef == "" {
		return ApprovalResult{}, ErrUnknownUser
	}
	if r.State != StatePending {
		return ApprovalResult{}, fmt.Errorf("request %s is %s: %w", r.ID, r.State, ErrNotPending)
	}
	if r.Requester == a.UserRef {
		return ApprovalResult{}, fmt.Errorf("request %s: %w", r.ID, ErrSelfApproval)
	}
	res, err := s.approver.MayApprove(ctx, ApprovalInput{Approver: a, Request: r, Time: now})
	if err != nil {
		return ApprovalResult{}, fmt.Errorf("access: may %s approve %s: %w", a.UserRef, r.ID, err)
	}
	if !res.MayApprove {
		return ApprovalResult{}, fmt.Errorf("%s may not decide request %s: %w", a.UserRef, r.ID, ErrForbidden)
	}
	return res, nil
}

// Approve approves a pending request. When the policy says the approval is
// complete, the request becomes approved and its grant, valid from now for
// the requested duration, is created in the same transaction. Otherwise the
// approval is recorded and the request stays pending for another approver.
// Concurrent approvals of one request give one grant.
func (s *Service) Approve(ctx context.Context, a Actor, requestID string) (Request, error) {
	for attempt := 0; ; attempt++ {
		r, err := s.Get(ctx, requestID)
		if err != nil {
			return Request{}, err
		}
		now := s.clock()
		res, err := s.mayDecide(ctx, a, r, now)
		if err != nil {
			return Request{}, err
		}
		if approvedBy(r, a.UserRef) {
			return Request{}, fmt.Errorf("%s already approved request %s: %w", a.UserRef, r.ID, ErrForbidden)
		}
		op := ApproveOp{
			RequestID:     r.ID,
			SeenApprovals: len(r.Approvals),
			Approval:      Approval{By: a.UserRef, Email: a.Email, At: now},
			Complete:      res.Complete,
		}
		op.Event = actorEvent(a, "approve", r, now)
		if res.Complete {
			op.Grant = Grant{ID: s.newID(), CreatedAt: now, ExpiresAt: now.Add(r.Duration)}
			op.Event.Detail = "expires=" + op.Grant.ExpiresAt.Format(time.RFC3339)
		} else {
			op.Event.Detail = "partial: another approval is required"
		}
		out, ev, err := s.store.Approve(ctx, op)
		if errors.Is(err, ErrConflict) && attempt < 10 {
			continue // another approval landed meanwhile: ask the policy again
		}
		if err != nil {
			return Request{}, fmt.Errorf("access: approve: %w", err)
		}
		s.recorded(ctx, ev, out, res.Complete)
		return out, nil
	}
}

// Deny refuses a pending request with a reason.
func (s *Service) Deny(ctx context.Context, a Actor, requestID, reason string) (Request, error) {
	reason, err := checkReason("reason", reason, true)
	if err != nil {
		return Request{}, err
	}
	r, err := s.Get(ctx, requestID)
	if err != nil {
		return Request{}, err
	}
	now := s.clock()
	if r.Requester == a.UserRef && a.UserRef != "" {
		return Request{}, fmt.Errorf("request %s is your own: cancel it instead of denying it: %w", r.ID, ErrForbidden)
	}
	if _, err := s.mayDecide(ctx, a, r, now); err != nil {
		return Request{}, err
	}
	ev := actorEvent(a, "deny", r, now)
	ev.Reason = reason
	out, stored, err := s.store.Finish(ctx, FinishOp{RequestID: r.ID, State: StateDenied, By: a.UserRef, At: now, Reason: reason, Event: ev})
	if err != nil {
		return Request{}, fmt.Errorf("access: deny: %w", err)
	}
	s.recorded(ctx, stored, out, false)
	return out, nil
}

// Cancel withdraws a pending request; only its requester may.
func (s *Service) Cancel(ctx context.Context, a Actor, requestID string) (Request, error) {
	if a.UserRef == "" {
		return Request{}, fmt.Errorf("cancel: %w", ErrUnknownUser)
	}
	r, err := s.Get(ctx, requestID)
	if err != nil {
		return Request{}, err
	}
	if r.Requester != a.UserRef {
		return Request{}, fmt.Errorf("only the requester may cancel request %s: %w", r.ID, ErrForbidden)
	}
	if r.State != StatePending {
		return Request{}, fmt.Errorf("request %s is %s: %w", r.ID, r.State, ErrNotPending)
	}
	now := s.clock()
	ev := actorEvent(a, "cancel", r, now)
	out, stored, err := s.store.Finish(ctx, FinishOp{RequestID: r.ID, State: StateCanceled, By: a.UserRef, At: now, Event: ev})
	if err != nil {
		return Request{}, fmt.Errorf("access: cancel: %w", err)
	}
	s.recorded(ctx, stored, out, false)
	return out, nil
}

// Revoke ends an approved request's grant now. The requester may revoke
// their own access; otherwise a must be someone the policy lets approve the
// request. The reason is optional.
func (s *Service) Revoke(ctx context.Context, a Actor, requestID, reason string) (Request, error) {
	if a.UserRef == "" {
		return Request{}, fmt.Errorf("revoke: %w", ErrUnknownUser)
	}
	reason, err := checkReason("reason", reason, false)
	if err != nil {
		return Request{}, err
	}
	r, err := s.Get(ctx, requestID)
	if err != nil {
		return Request{}, err
	}
	now := s.clock()
	if r.State != StateApproved {
		return Request{}, fmt.Errorf("request %s is %s: %w", r.ID, r.State, ErrNotActive)
	}
	if r.Requester != a.UserRef {
		res, err := s.approver.MayApprove(ctx, ApprovalInput{Approver: a, Request: r, Time: now})
		if err != nil {
			return Request{}, fmt.Errorf("access: may %s revoke %s: %w", a.UserRef, r.ID, err)
		}
		if !res.MayApprove {
			return Request{}, fmt.Errorf("%s may not revoke request %s: %w", a.UserRef, r.ID, ErrForbidden)
		}
	}
	ev := actorEvent(a, "revoke", r, now)
	ev.Reason = reason
	out, stored, err := s.store.Revoke(ctx, RevokeOp{RequestID: r.ID, By: a.UserRef, At: now, Reason: reason, Event: ev})
	if err != nil {
		return Request{}, fmt.Errorf("access: revoke: %w", err)
	}
	s.recorded(ctx, stored, out, true)
	return out, nil
}

// ActiveGrants returns the grants valid now (unrevoked, now before expiry).
// The policy must still compare each grant's ExpiresAt with its own clock
// at decision time: that check, not ExpireDue, ends access.
func (s *Service) ActiveGrants(ctx context.Context) ([]Grant, error) {
	return s.store.ActiveGrants(ctx, s.clock())
}

// ExpireDue records an 'expire' audit event for each grant that ran out and
// marks its request expired. This is bookkeeping only: access already ended
// by the policy's clock check. It returns how many grants it expired.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	now := s.clock()
	evs, err := s.store.ExpireDue(ctx, now, func(g Grant) AuditEvent {
		return AuditEvent{
			Time:        g.ExpiresAt,
			Action:      "expire",
			Actor:       "system",
			Via:         "expiry",
			RequestID:   g.RequestID,
			GrantID:     g.ID,
			User:        g.User,
			Service:     g.Service,
			Environment: g.Environment,
			Detail:      "recorded=" + now.Format(time.RFC3339),
		}
	})
	for _, ev := range evs {
		s.writeAudit(ev)
	}
	if len(evs) > 0 {
		s.changedGrants()
	}
	if err != nil {
		return len(evs), fmt.Errorf("access: expire: %w", err)
	}
	return len(evs), nil
}

// Audit returns the audit events matching f, oldest first.
func (s *Service) Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("%w: limit %d is negative", ErrInvalid, f.Limit)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return nil, fmt.Errorf("%w: since %s is not before until %s", ErrInvalid, f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	return s.store.Audit(ctx, f)
}

// recorded runs after a change is committed: JSON audit line, OnChange when
// grants changed, then the (asynchronous) notification.
func (s *Service) recorded(ctx context.Context, ev AuditEvent, r Request, grantsChanged bool) {
	s.writeAudit(ev)
	if grantsChanged {
		s.changedGrants()
	}
	if s.notifier != nil {
		s.notifier.Notify(context.WithoutCancel(ctx), Event{Action: ev.Action, Time: ev.Time, Actor: ev.Actor, ActorEmail: ev.ActorEmail, Request: r, Reason: ev.Reason, Detail: ev.Detail})
	}
}

func (s *Service) changedGrants() {
	if s.onChange != nil {
		s.onChange()
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Service) writeAudit(ev AuditEvent) {
	s.log.Info("access audit", "action", ev.Action, "actor", ev.Actor, "request", ev.RequestID, "service", ev.Service, "environment", ev.Environment)
	if s.audit == nil {
		return
	}
	line, err := auditLine(ev)
	if err != nil {
		s.log.Error("access: encode audit line", "err", err)
		return
	}
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if _, err := s.audit.Write(line); err != nil {
		s.log.Error("access: write audit line", "err", err)
	}
}

// RunGrantSync calls push with the active grants at once, then whenever they
// change: right after a change through this Service, and otherwise checked
// every interval (which also catches changes by other replicas sharing the
// database and grants dropping out at expiry). Each round also runs
// ExpireDue. It returns when ctx ends.
func (s *Service) RunGrantSync(ctx context.Context, every time.Duration, push func([]Grant)) error {
	if every <= 0 {
		return fmt.Errorf("%w: grant sync interval %s must be positive", ErrInvalid, every)
	}
	var last []Grant
	first := true
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.ExpireDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("access: recording expired grants", "err", err)
		}
		gs, err := s.ActiveGrants(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("access: reading active grants", "err", err)
		case err == nil && (first || !sameGrants(last, gs)):
			push(gs)
			last, first = gs, false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-s.changed:
		}
	}
}

func sameGrants(a, b []Grant) bool {
	return slices.EqualFunc(a, b, func(x, y Grant) bool {
		return x.ID == y.ID && x.RevokedAt.Equal(y.RevokedAt) && x.ExpiresAt.Equal(y.ExpiresAt) && slices.Equal(x.ApprovedBy, y.ApprovedBy)
	})
}
