package access

import (
	"context"
	"errors"
	"time"
)

// State is where a request stands.
type State string

const (
	StatePending  State = "pending"
	StateApproved State = "approved" // a grant exists (it may have expired or been revoked since)
	StateDenied   State = "denied"
	StateRevoked  State = "revoked" // its grant was revoked
	StateExpired  State = "expired" // its grant ran out (recorded lazily; the policy's clock check is what ends access)
	StateCanceled State = "canceled"
)

// Request is one ask for temporary access.
type Request struct {
	ID             string
	Requester      string // Backstage user ref
	RequesterEmail string
	Service        string // Backstage entity ref
	Environment    string
	Duration       time.Duration
	Reason         string
	State          State
	CreatedAt      time.Time
	DecidedAt      time.Time // zero while pending
	DecidedBy      string    // Backstage user ref of the approver/denier
	DecisionReason string    // why denied or revoked
	GrantID        string    // set once approved
	ExpiresAt      time.Time // grant expiry, set once approved
	// Approvals so far, oldest first. A request that needs more than one
	// approver (ApprovalResult.Complete false) stays pending with the
	// approvals it has; the policy sees them in ApprovalInput.Request.
	Approvals []Approval
	RevokedAt time.Time // zero unless revoked
	RevokedBy string    // Backstage user ref of who revoked
}

// Approval is one approver's yes to a request.
type Approval struct {
	By    string // Backstage user ref
	Email string
	At    time.Time
}

// Grant is approved access, valid while now < ExpiresAt and not revoked.
type Grant struct {
	ID          string
	RequestID   string
	User        string // Backstage user ref
	Service     string
	Environment string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	ApprovedBy  []string
	RevokedAt   time.Time
	RevokedBy   string
}

// Active reports whether g still grants access at now.
func (g Grant) Active(now time.Time) bool { return g.RevokedAt.IsZero() && now.Before(g.ExpiresAt) }

// Actor is who performs an action and from where, for checks and the audit.
type Actor struct {
	UserRef string // Backstage user ref ("" if the identity maps to none)
	Email   string
	Groups  []string // IdP groups
	Address string   // client IP
	Via     string   // "page", "api", "service-token:NAME", "cli"
}

// AuditEvent is one append-only audit record.
type AuditEvent struct {
	ID          int64
	Time        time.Time
	Action      string // request, approve, deny, revoke, expire, cancel
	Actor       string // user ref, or "system"
	ActorEmail  string
	Address     string
	Via         string
	RequestID   string
	GrantID     string
	User        string // the requester the event is about
	Service     string
	Environment string
	Reason      string
	Detail      string // e.g. "duration=1h0m0s"
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	User    string
	Service string
	Since   time.Time
	Until   time.Time
	Limit   int
}

// ApprovalInput asks the policy whether Approver may decide Request.
type ApprovalInput struct {
	Approver Actor
	Request  Request
	Time     time.Time
}

// ApprovalResult is the policy's answer.
type ApprovalResult struct {
	MayApprove bool
	Reasons    []string
	// Complete is false when this approval alone is not enough (prod may
	// require an approver from an extra group as well).
	Complete bool
}

// Approver is the policy side of approvals; package policy implements it.
type Approver interface {
	MayApprove(ctx context.Context, in ApprovalInput) (ApprovalResult, error)
	// MaxDuration is the longest grant the policy allows in an environment
	// (0: temporary access is not offered there).
	MaxDuration(ctx context.Context, service, environment string) (time.Duration, error)
}

// Errors callers branch on. Their messages are safe to show to users.
var (
	ErrNotFound        = errors.New("no such request or grant")
	ErrForbidden       = errors.New("you may not do this")
	ErrSelfApproval    = errors.New("nobody may approve their own request")
	ErrNotPending      = errors.New("the request is no longer pending")
	ErrInvalid         = errors.New("invalid request")
	ErrDurationTooLong = errors.New("the duration is longer than the policy allows")
	ErrUnknownUser     = errors.New("your identity does not match a Backstage user")
	ErrNotActive       = errors.New("the access is not active (not approved, already revoked or expired)")
)
