package access

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	acc "github.com/backgate/backgate/access"
	"github.com/backgate/backgate/proxy"
)

// API error codes.
const (
	CodeInvalid          = "invalid"            // 400: bad input; the message names the field
	CodeUnauthorized     = "unauthorized"       // 401: no session, bad service token
	CodeForbidden        = "forbidden"          // 403: policy, CSRF, self-approval, token scope
	CodeNotFound         = "not_found"          // 404
	CodeConflict         = "conflict"           // 409: the request is no longer pending
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeInternal         = "internal"           // 500: see the logs under request_id
)

// APIRequest is a request as the JSON API shows it.
type APIRequest struct {
	ID              string        `json:"id"`
	Requester       string        `json:"requester"`
	RequesterEmail  string        `json:"requester_email,omitempty"`
	Service         string        `json:"service"`
	Environment     string        `json:"environment"`
	Duration        string        `json:"duration"`
	DurationSeconds int64         `json:"duration_seconds"`
	Reason          string        `json:"reason"`
	State           string        `json:"state"`
	Active          bool          `json:"active"` // approved and not yet expired
	CreatedAt       time.Time     `json:"created_at"`
	DecidedAt       *time.Time    `json:"decided_at,omitempty"`
	DecidedBy       string        `json:"decided_by,omitempty"`
	DecisionReason  string        `json:"decision_reason,omitempty"`
	GrantID         string        `json:"grant_id,omitempty"`
	ExpiresAt       *time.Time    `json:"expires_at,omitempty"`
	Approvals       []APIApproval `json:"approvals,omitempty"`
	RevokedAt       *time.Time    `json:"revoked_at,omitempty"`
	RevokedBy       string        `json:"revoked_by,omitempty"`
}

// APIApproval is one approver's yes.
type APIApproval struct {
	By    string    `json:"by"`
	Email string    `json:"email,omitempty"`
	At    time.Time `json:"at"`
}

// CreateBody is the body of POST api/v1/requests.
type CreateBody struct {
	Service     string `json:"service"`
	Environment string `json:"environment"`
	Duration    string `json:"duration"` // "1h", "90m", "7d"
	Reason      string `json:"reason"`
	OnBehalfOf  string `json:"on_behalf_of,omitempty"` // delegating service tokens only
}

// ActionBody is the body of POST api/v1/requests/{id}/{action}; it may be
// empty for approve and cancel.
type ActionBody struct {
	Reason     string `json:"reason,omitempty"`
	OnBehalfOf string `json:"on_behalf_of,omitempty"`
}

// apiError is an error answer.
type apiError struct {
	status    int
	code, msg string
	allow     string // for 405
}

func (e *apiError) Error() string { return e.msg }

func apiErr(status int, code, format string, a ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, a...)}
}

func (h *Handler) toAPIRequest(r acc.Request) APIRequest {
	out := APIRequest{ID: r.ID, Requester: r.Requester, RequesterEmail: r.RequesterEmail, Service: r.Service,
		Environment: r.Environment, Duration: formatDuration(r.Duration), DurationSeconds: int64(r.Duration / time.Second),
		Reason: r.Reason, State: string(r.State), CreatedAt: r.CreatedAt.UTC(), DecidedBy: r.DecidedBy,
		DecisionReason: r.DecisionReason, GrantID: r.GrantID, RevokedBy: r.RevokedBy}
	out.Active = r.State == acc.StateApproved && r.RevokedAt.IsZero() && h.now().Before(r.ExpiresAt)
	for _, a := range r.Approvals {
		out.Approvals = append(out.Approvals, APIApproval{By: a.By, Email: a.Email, At: a.At.UTC()})
	}
	if !r.RevokedAt.IsZero() {
		t := r.RevokedAt.UTC()
		out.RevokedAt = &t
	}
	if !r.DecidedAt.IsZero() {
		t := r.DecidedAt.UTC()
		out.DecidedAt = &t
	}
	if !r.ExpiresAt.IsZero() {
		t := r.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out
}

func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, rest, rid string) {
	status, v := h.api(w, r, rest, rid)
	if e, ok := v.(*apiError); ok {
		v = map[string]string{"error": e.msg, "code": e.code, "request_id": rid}
		status = e.status
		if e.allow != "" {
			w.Header().Set("Allow", e.allow)
		}
	}
	body, err := json.Marshal(v)
	if err != nil {
		h.log.Error("access: encode API answer", "request_id", rid, "err", err)
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error","code":"internal"}`)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// api routes rest (after /api) and returns the status and the value to
// encode, or an *apiError.
func (h *Handler) api(w http.ResponseWriter, r *http.Request, rest, rid string) (int, any) {
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	post := r.Method == http.MethodPost
	notAllowed := func(allow string) (int, any) {
		return 0, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed, allow: allow,
			msg: fmt.Sprintf("method %s is not allowed here; use %s", r.Method, allow)}
	}
	var id, action string
	switch {
	case rest == "/v1/csrf":
		if !get {
			return notAllowed("GET")
		}
	case rest == "/v1/requests":
		if !get && !post {
			return notAllowed("GET, POST")
		}
	case rest == "/v1/requests/to-decide":
		if !get {
			return notAllowed("GET")
		}
	case strings.HasPrefix(rest, "/v1/requests/"):
		var hasAction bool
		id, action, hasAction = strings.Cut(strings.TrimPrefix(rest, "/v1/requests/"), "/")
		if _, known := pastTense[action]; !validID(id) || hasAction && !known {
			return 0, apiErr(http.StatusNotFound, CodeNotFound, "no API endpoint at %s", r.URL.Path)
		}
		if hasAction && !post {
			return notAllowed("POST")
		}
		if !hasAction && !get {
			return notAllowed("GET")
		}
	default:
		return 0, apiErr(http.StatusNotFound, CodeNotFound, "no API endpoint at %s", r.URL.Path)
	}

	c, aerr := h.apiAuth(w, r, rid)
	if aerr != nil {
		return 0, aerr
	}
	ctx := r.Context()
	switch {
	case rest == "/v1/csrf":
		if !c.session {
			return 0, apiErr(http.StatusBadRequest, CodeInvalid, "CSRF tokens are for session callers; service tokens need none")
		}
		return http.StatusOK, map[string]any{"csrf_token": h.csrf.mint(c.id.Issuer, c.id.Subject, h.now()),
			"expires_at": h.now().Add(h.csrf.ttl).UTC(), "header": "X-CSRF-Token"}

	case rest == "/v1/requests" && get, rest == "/v1/requests/to-decide":
		if e := h.apiActor(r, &c, r.URL.Query().Get("on_behalf_of")); e != nil {
			return 0, e
		}
		var list []acc.Request
		var err error
		if rest == "/v1/requests" {
			list, err = h.opt.Service.Mine(ctx, c.actor)
		} else {
			list, err = h.opt.Service.ToDecide(ctx, c.actor)
		}
		if err != nil {
			return 0, h.apiServiceError(rid, c, "list requests", err)
		}
		out := make([]APIRequest, 0, len(list))
		for _, x := range list {
			if rest != "/v1/requests" && x.Requester == c.actor.UserRef {
				continue
			}
			out = append(out, h.toAPIRequest(x))
		}
		return http.StatusOK, map[string]any{"requests": out}

	case rest == "/v1/requests": // POST
		var b CreateBody
		if e := decodeBody(w, r, &b); e != nil {
			return 0, e
		}
		if e := h.apiActor(r, &c, b.OnBehalfOf); e != nil {
			return 0, e
		}
		in := createInput{Service: b.Service, Env: b.Environment, Duration: b.Duration, Reason: b.Reason}
		d, _, err := h.checkCreate(ctx, &in)
		if err == nil {
			var req acc.Request
			var existing bool
			if req, existing, err = h.opt.Service.Request(ctx, c.actor, in.Service, in.Env, d, in.Reason); err == nil {
				h.log.Info("access: requested", "request_id", rid, "user", c.actor.UserRef, "via", c.actor.Via,
					"access_request", req.ID, "existing", existing)
				status := http.StatusCreated
				if existing {
					status = http.StatusOK
				}
				return status, map[string]any{"request": h.toAPIRequest(req), "created": !existing}
			}
		}
		return 0, h.apiServiceError(rid, c, "create request", err)

	case action == "": // GET one
		return h.apiGet(r, c, id, rid)
	}

	// POST requests/{id}/{action}
	var b ActionBody
	if e := decodeBody(w, r, &b); e != nil {
		return 0, e
	}
	if e := h.apiActor(r, &c, b.OnBehalfOf); e != nil {
		return 0, e
	}
	var req acc.Request
	var err error
	switch action {
	case "approve":
		if strings.TrimSpace(b.Reason) != "" {
			return 0, apiErr(http.StatusBadRequest, CodeInvalid, "reason is not taken when approving")
		}
		req, err = h.opt.Service.Approve(ctx, c.actor, id)
	case "deny":
		var reason string
		if reason, err = checkReason(b.Reason, true); err == nil {
			req, err = h.opt.Service.Deny(ctx, c.actor, id, reason)
		}
	case "revoke":
		var reason string
		if reason, err = checkReason(b.Reason, false); err == nil {
			req, err = h.opt.Service.Revoke(ctx, c.actor, id, reason)
		}
	case "cancel":
		req, err = h.opt.Service.Cancel(ctx, c.actor, id)
	}
	if err != nil {
		return 0, h.apiServiceError(rid, c, action+" request", err)
	}
	h.log.Info("access: action", "request_id", rid, "user", c.actor.UserRef, "via", c.actor.Via, "action", action, "access_request", id)
	return http.StatusOK, map[string]any{"request": h.toAPIRequest(req)}
}

func (h *Handler) apiGet(r *http.Request, c caller, id, rid string) (int, any) {
	obo := r.URL.Query().Get("on_behalf_of")
	readAny := !c.session && obo == "" // any service token may read one request by id
	if !readAny {
		if e := h.apiActor(r, &c, obo); e != nil {
			return 0, e
		}
	}
	req, err := h.opt.Service.Get(r.Context(), id)
	if err != nil {
		return 0, h.apiServiceError(rid, c, "get request", err)
	}
	if !readAny {
		ok, err := h.visible(r.Context(), c.actor, req)
		if err != nil {
			return 0, h.apiServiceError(rid, c, "get request", err)
		}
		if !ok {
			return 0, apiErr(http.StatusNotFound, CodeNotFound, "%s", acc.ErrNotFound.Error())
		}
	}
	return http.StatusOK, map[string]any{"request": h.toAPIRequest(req)}
}

// apiAuth authenticates an API call: a service token when an Authorization
// header is present (and then only it), the session otherwise, with the
// CSRF check for state changes.
func (h *Handler) apiAuth(w http.ResponseWriter, r *http.Request, rid string) (caller, *apiError) {
	if auth, present := r.Header["Authorization"]; present {
		if len(auth) != 1 {
			return caller{}, apiErr(http.StatusUnauthorized, CodeUnauthorized, "send exactly one Authorization header")
		}
		scheme, tok, ok := strings.Cut(auth[0], " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return caller{}, apiErr(http.StatusUnauthorized, CodeUnauthorized, "the Authorization header must be \"Bearer <service token>\"")
		}
		st := h.matchToken(tok)
		if st == nil {
			h.log.Warn("access: API call with an unknown service token", "request_id", rid, "addr", h.clientAddr(r))
			return caller{}, apiErr(http.StatusUnauthorized, CodeUnauthorized, "invalid service token")
		}
		return caller{token: st}, nil
	}
	id, err := h.opt.Identify(w, r)
	if err != nil {
		if !errors.Is(err, proxy.ErrNotLoggedIn) {
			h.log.Warn("access: session", "request_id", rid, "err", err)
		}
		return caller{}, apiErr(http.StatusUnauthorized, CodeUnauthorized, "login required: send the session cookie or a service token")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := h.checkCSRF(r, id, ""); err != nil {
			h.log.Warn("access: refused API call", "request_id", rid, "user", id.Email, "path", r.URL.Path, "reason", err.Error())
			return caller{}, apiErr(http.StatusForbidden, CodeForbidden,
				"missing or invalid CSRF token: calls with the session cookie must send X-CSRF-Token (from GET %s/api/v1/csrf) from the same origin", h.base)
		}
	}
	return caller{id: id, session: true}, nil
}

// apiActor sets c.actor: the session's user, or for a delegating service
// token the user named by onBehalfOf.
func (h *Handler) apiActor(r *http.Request, c *caller, onBehalfOf string) *apiError {
	if c.session {
		if onBehalfOf != "" {
			return apiErr(http.StatusBadRequest, CodeInvalid, "on_behalf_of is only for service tokens")
		}
		actor, ok := h.actorFor(r, c.id, "api")
		if !ok {
			return apiErr(http.StatusForbidden, CodeForbidden, "%s", acc.ErrUnknownUser.Error())
		}
		c.actor = actor
		return nil
	}
	if !c.token.delegating {
		return apiErr(http.StatusForbidden, CodeForbidden, "service token %q may only read requests by id; it may not act on behalf of users", c.token.name)
	}
	email, err := checkEmail(onBehalfOf)
	if err != nil {
		return apiErr(http.StatusBadRequest, CodeInvalid, "%s", err.Error())
	}
	ref, ok := h.opt.ResolveUser(proxy.Identity{Email: email})
	if !ok || ref == "" {
		return apiErr(http.StatusForbidden, CodeForbidden, "on_behalf_of %q does not match a Backstage user", email)
	}
	c.actor = acc.Actor{UserRef: ref, Email: email, Address: h.clientAddr(r), Via: "service-token:" + c.token.name}
	return nil
}

// apiServiceError maps bad input and the Service's errors; others are
// logged and answered with the request id only.
func (h *Handler) apiServiceError(rid string, c caller, what string, err error) *apiError {
	var ie *inputError
	if errors.As(err, &ie) {
		return apiErr(http.StatusBadRequest, CodeInvalid, "%s", ie.msg)
	}
	status, code, msg, ok := errStatus(err)
	if !ok {
		h.log.Error("access: "+what, "request_id", rid, "user", c.actor.UserRef, "via", c.actor.Via, "err", err)
		return apiErr(http.StatusInternalServerError, CodeInternal, "internal error; quote request_id %s", rid)
	}
	return apiErr(status, code, "%s", msg)
}

// decodeBody reads one JSON object of bounded size into v; an empty body
// leaves v zero.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apiErr(http.StatusRequestEntityTooLarge, CodeInvalid, "the body is larger than %d bytes", maxBodyBytes)
		}
		return apiErr(http.StatusBadRequest, CodeInvalid, "the body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return apiErr(http.StatusUnsupportedMediaType, CodeInvalid, "the body must be JSON with Content-Type application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiErr(http.StatusBadRequest, CodeInvalid, "the body is not the expected JSON object: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return apiErr(http.StatusBadRequest, CodeInvalid, "the body has data after the JSON object")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the body.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at offset %d", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed JSON"
}
