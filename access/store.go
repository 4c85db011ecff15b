package access

import (
	"context"
	"errors"
	"time"
)

// Store keeps requests, approvals, grants and the audit trail. Every method
// that changes state does so in one transaction together with the audit
// row describing the change, so an acknowledged change and its audit record
// are never separated. Implementations are safe for concurrent use, also by
// several processes sharing one database.
type Store interface {
	// CreateRequest inserts r (State pending) and ev. If the requester
	// already has a pending request for the same service and environment,
	// nothing is written and that request is returned with true.
	CreateRequest(ctx context.Context, r Request, ev AuditEvent) (Request, AuditEvent, bool, error)
	// GetRequest returns one request with its approvals and grant, or an
	// error wrapping ErrNotFound.
	GetRequest(ctx context.Context, id string) (Request, error)
	// ListRequests returns requests matching f, newest first.
	ListRequests(ctx context.Context, f RequestFilter) ([]Request, error)
	// Approve records one approval of a pending request; with op.Complete
	// it also makes the request approved and inserts op.Grant. It fails
	// with ErrNotPending when the request is no longer pending and with
	// ErrConflict when another approval landed since the caller read the
	// request (op.SeenApprovals differs): re-read and ask the policy again.
	Approve(ctx context.Context, op ApproveOp) (Request, AuditEvent, error)
	// Finish ends a pending request (denied or canceled); ErrNotPending if it
	// is not pending any more.
	Finish(ctx context.Context, op FinishOp) (Request, AuditEvent, error)
	// Revoke revokes the grant of an approved request; ErrNotActive if the
	// request is not approved (pending, denied, already revoked or expired).
	Revoke(ctx context.Context, op RevokeOp) (Request, AuditEvent, error)
	// ActiveGrants returns the grants that are unrevoked and not expired at now.
	ActiveGrants(ctx context.Context, now time.Time) ([]Grant, error)
	// ExpireDue marks approved requests whose grant ran out by now as
	// expired and records an audit event for each (made by ev). A grant is
	// expired at most once, also with several callers at the same time.
	ExpireDue(ctx context.Context, now time.Time, ev func(Grant) AuditEvent) ([]AuditEvent, error)
	// Audit returns audit events matching f, oldest first.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// ErrConflict means the request changed between reading and writing it;
// the caller re-reads it and tries again.
var ErrConflict = errors.New("the request changed concurrently")

// RequestFilter selects requests; zero fields match everything.
type RequestFilter struct {
	Requester string
	State     State
	Limit     int // 0: no limit
}

// ApproveOp is one approval as Store.Approve records it.
type ApproveOp struct {
	RequestID     string
	SeenApprovals int // len(Request.Approvals) when the policy was asked
	Approval      Approval
	Complete      bool  // this approval makes the request approved
	Grant         Grant // with Complete: ID, CreatedAt and ExpiresAt (the rest comes from the request)
	Event         AuditEvent
}

// FinishOp ends a pending request.
type FinishOp struct {
	RequestID string
	State     State // StateDenied or StateCanceled
	By        string
	At        time.Time
	Reason    string
	Event     AuditEvent
}

// RevokeOp revokes the grant of an approved request.
type RevokeOp struct {
	RequestID string
	By        string
	At        time.Time
	Reason    string
	Event     AuditEvent
}
