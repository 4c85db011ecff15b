package policy

import (
	"context"
	"time"
)

// Input is everything a decision is made from, apart from the catalog and
// grant data the engine holds. The proxy fills it per request.
type Input struct {
	User    User
	Request Request
	Route   Route
	// Time is the decision time; grants whose expiry is not after it do not count.
	Time time.Time
}

// User is the identity the OIDC provider asserted, as stored in the session.
type User struct {
	Subject  string   // ID token "sub"
	Issuer   string   // ID token "iss"
	Email    string   // lower-cased e-mail, may be empty
	Name     string   // display name, may be empty
	Username string   // preferred_username, may be empty
	Groups   []string // IdP group claim values
}

// Request is the part of the HTTP request the policy may look at.
type Request struct {
	Method string
	Host   string // lower-case, without port
	Path   string // cleaned URL path
}

// Route is the matched route: which Backstage entity serves this host and in
// which environment.
type Route struct {
	Name        string // route id from config or catalog
	Host        string
	PathPrefix  string
	Service     string // Backstage entity ref, e.g. component:default/payments
	Environment string // dev, staging, prod, ...
}

// Decision is the engine's answer. Reasons and Rules are for logs and tools,
// never for the user's browser.
type Decision struct {
	ID              string   // decision id, also in the decision log
	Allow           bool     // false unless the policy said true
	Reasons         []string // human-readable, in policy order
	Rules           []string // names of the rules that fired
	UserRef         string   // Backstage user the identity resolved to ("" if none)
	GrantID         string   // temporary grant that allowed the request, if any
	GrantExpiry     time.Time
	PolicyRevision  string
	CatalogRevision string
}

// Authorizer decides requests. Implementations are safe for concurrent use;
// an error means no decision could be made and the caller must deny.
type Authorizer interface {
	Decide(ctx context.Context, in Input) (Decision, error)
}

// ApprovalInput asks the policy (data.backgate.approval.result) whether
// ApproverRef may approve Request. It mirrors access.ApprovalInput; the
// integrator adapts one to the other.
type ApprovalInput struct {
	Approver    User   // the approver's identity as the OIDC provider asserted it
	ApproverRef string // Backstage user ref of the approver
	Request     ApprovalRequest
	// Time is when the approval happens; zero means the engine's clock.
	Time time.Time
}

// ApprovalRequest is the temporary access request being approved.
type ApprovalRequest struct {
	ID          string
	Requester   string // Backstage user ref
	Service     string // Backstage entity ref
	Environment string
	Duration    time.Duration
	// ApprovedBy lists the Backstage user refs that approved the request
	// before this approver (access.Request.Approvals). Complete is judged
	// with this approver added to them.
	ApprovedBy []string
}

// ApprovalResult is the policy's answer.
type ApprovalResult struct {
	MayApprove bool
	Reasons    []string // from the policy, human-readable
	// Complete is true when, with this approval, the request has every
	// approval it needs (prod also needs a prod approver group member).
	Complete bool
}
