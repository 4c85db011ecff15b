package access

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	acc "github.com/backgate/backgate/access"
	"github.com/backgate/backgate/proxy"
)

// pastTense names what an action did, for notices; it also whitelists the
// actions.
var pastTense = map[string]string{"approve": "approved", "deny": "denied", "revoke": "revoked", "cancel": "canceled"}

// pageCtx is a logged-in page request.
type pageCtx struct {
	id    proxy.Identity
	actor acc.Actor
	user  string
	rid   string
	csrf  string
}

func (h *Handler) servePages(w http.ResponseWriter, r *http.Request, rest, rid string) {
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	post := r.Method == http.MethodPost
	switch {
	case rest == "" && get:
		http.Redirect(w, r, h.base+"/", http.StatusSeeOther)
	case rest == "/" && get:
		if pc, ok := h.pageSession(w, r, rid); ok {
			h.renderIndex(r.Context(), w, pc, http.StatusOK, "", h.notice(r), h.noticeURL(r))
		}
	case rest == "/request" && get:
		if pc, ok := h.pageSession(w, r, rid); ok {
			h.requestForm(w, r, pc)
		}
	case rest == "/request" && post:
		if pc, ok := h.pagePost(w, r, rid); ok {
			h.createPage(w, r, pc)
		}
	case strings.HasPrefix(rest, "/requests/"):
		id, action, hasAction := strings.Cut(strings.TrimPrefix(rest, "/requests/"), "/")
		_, known := pastTense[action]
		switch {
		case !validID(id) || hasAction && !known:
			h.tmpl.errorPage(w, http.StatusNotFound, "Not found", "There is nothing at this address.", rid)
		case !hasAction && get:
			if pc, ok := h.pageSession(w, r, rid); ok {
				h.statusPage(w, r, pc, id)
			}
		case hasAction && post:
			if pc, ok := h.pagePost(w, r, rid); ok {
				h.actionPage(w, r, pc, id, action)
			}
		default:
			h.methodNotAllowed(w, rid, hasAction)
		}
	case rest == "" || rest == "/" || rest == "/request":
		h.methodNotAllowed(w, rid, rest == "/request")
	default:
		h.tmpl.errorPage(w, http.StatusNotFound, "Not found", "There is nothing at this address.", rid)
	}
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, rid string, postToo bool) {
	allow := "GET, HEAD"
	if postToo {
		allow += ", POST"
	}
	w.Header().Set("Allow", allow)
	h.tmpl.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "This address does not take that kind of request.", rid)
}

// pageSession finds the logged-in person or answers for them: a login for
// a GET, a page otherwise.
func (h *Handler) pageSession(w http.ResponseWriter, r *http.Request, rid string) (pageCtx, bool) {
	id, err := h.opt.Identify(w, r)
	if err != nil {
		if !errors.Is(err, proxy.ErrNotLoggedIn) {
			h.log.Warn("access: session", "request_id", rid, "err", err)
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h.opt.Login(w, r, r.URL.RequestURI())
			return pageCtx{}, false
		}
		h.tmpl.render(w, "error", pageData{Status: http.StatusUnauthorized, Title: "Signed out",
			Message: "Your session has ended. Sign in again, then repeat what you were doing.", RequestID: rid,
			ActionURL: h.base + "/", ActionText: "Sign in"})
		return pageCtx{}, false
	}
	pc := pageCtx{id: id, user: id.Email, rid: rid}
	if pc.user == "" {
		pc.user = id.Subject
	}
	actor, ok := h.actorFor(r, id, "page")
	if !ok {
		h.log.Info("access: identity maps to no Backstage user", "request_id", rid, "user", pc.user)
		h.tmpl.render(w, "error", pageData{Status: http.StatusForbidden, Title: "No Backstage user", User: pc.user,
			Message:   "Your sign-in does not match a user in the Backstage catalog, and temporary access is granted to catalog users only. Ask your platform team to add you.",
			RequestID: rid})
		return pageCtx{}, false
	}
	pc.actor = actor
	pc.csrf = h.csrf.mint(id.Issuer, id.Subject, h.now())
	return pc, true
}

// pagePost is pageSession plus the form and its CSRF check.
func (h *Handler) pagePost(w http.ResponseWriter, r *http.Request, rid string) (pageCtx, bool) {
	pc, ok := h.pageSession(w, r, rid)
	if !ok {
		return pc, false
	}
	if err := parseForm(w, r); err != nil {
		h.tmpl.render(w, "error", pageData{Status: http.StatusBadRequest, Title: "Bad request", Message: err.Error(), RequestID: rid, User: pc.user})
		return pc, false
	}
	if err := h.checkCSRF(r, pc.id, r.PostForm.Get("csrf_token")); err != nil {
		h.log.Warn("access: refused form post", "request_id", rid, "user", pc.user, "path", r.URL.Path, "reason", err.Error())
		h.tmpl.render(w, "error", pageData{Status: http.StatusForbidden, Title: "Form refused", User: pc.user, Base: h.base,
			Message:   "This form has expired or was not sent from backgate's own page. Go back, reload the page and try again.",
			RequestID: rid})
		return pc, false
	}
	return pc, true
}

// internalError logs err and shows a page with the request id only.
func (h *Handler) internalError(w http.ResponseWriter, pc pageCtx, what string, err error) {
	h.log.Error("access: "+what, "request_id", pc.rid, "user", pc.actor.UserRef, "err", err)
	h.tmpl.render(w, "error", pageData{Status: http.StatusInternalServerError, Title: "Something went wrong", User: pc.user,
		Message: "backgate could not complete this. Try again in a minute; if it keeps failing, quote the request ID below.", RequestID: pc.rid})
}

// serviceError shows an error of the Service: its safe message for the
// known ones, a request id for the rest.
func (h *Handler) serviceError(w http.ResponseWriter, pc pageCtx, what string, err error) {
	status, _, msg, ok := errStatus(err)
	if !ok {
		h.internalError(w, pc, what, err)
		return
	}
	h.tmpl.render(w, "error", pageData{Status: status, Title: http.StatusText(status), Message: msg, User: pc.user, Base: h.base, RequestID: pc.rid})
}

func (h *Handler) requestForm(w http.ResponseWriter, r *http.Request, pc pageCtx) {
	q := r.URL.Query()
	in := createInput{Service: q.Get("service"), Env: q.Get("env")}
	ret := h.returnLink(r, q.Get("return"))
	var err error
	if in.Service, err = checkText("service", in.Service, maxRefLen); err == nil {
		in.Env, err = checkText("environment", in.Env, maxEnvLen)
	}
	var max time.Duration
	if err == nil {
		max, err = h.maxFor(r.Context(), in.Service, in.Env)
	}
	if err != nil {
		h.formError(w, pc, err)
		return
	}
	mine, err := h.opt.Service.Mine(r.Context(), pc.actor)
	if err != nil {
		h.serviceError(w, pc, "list own requests", err)
		return
	}
	if i := slices.IndexFunc(mine, func(x acc.Request) bool {
		return x.State == acc.StatePending && x.Service == in.Service && x.Environment == in.Env
	}); i >= 0 {
		v := h.view(mine[i], roleRequester, pc.csrf, "status")
		h.tmpl.render(w, "status", pageData{Title: "Your request is pending", User: pc.user, RequestID: pc.rid, Base: h.base,
			Notice: "You already asked for access to " + in.Service + " in " + in.Env + ". It waits for an owner's decision.",
			Req:    &v, Return: ret})
		return
	}
	h.tmpl.render(w, "form", pageData{Title: "Request access", User: pc.user, RequestID: pc.rid, Base: h.base, CSRF: pc.csrf,
		Form: h.formView(in, max, ret)})
}

// formError shows bad input before a form can be built (unknown service,
// no temporary access offered), or an internal error.
func (h *Handler) formError(w http.ResponseWriter, pc pageCtx, err error) {
	var ie *inputError
	if errors.As(err, &ie) {
		h.tmpl.render(w, "error", pageData{Status: http.StatusBadRequest, Title: "Cannot request access", Message: ie.msg,
			User: pc.user, Base: h.base, RequestID: pc.rid})
		return
	}
	h.serviceError(w, pc, "request form", err)
}

func (h *Handler) formView(in createInput, max time.Duration, ret string) *formView {
	f := &formView{Service: in.Service, Env: in.Env, Max: humanDuration(max), Reason: in.Reason, Return: ret}
	if h.opt.Owners != nil {
		f.Owners = h.opt.Owners(in.Service)
	}
	choices := allowedDurations(max)
	sel := -1
	if d, err := parseDuration(in.Duration); err == nil {
		sel = slices.Index(choices, d)
	}
	if sel < 0 {
		sel = 0
		for i, d := range choices { // default: one hour if offered (least privilege, but useful)
			if d <= durationChoices[1] {
				sel = i
			}
		}
	}
	for i, d := range choices {
		f.Choices = append(f.Choices, choice{Value: formatDuration(d), Label: humanDuration(d), Selected: i == sel})
	}
	return f
}

func (h *Handler) createPage(w http.ResponseWriter, r *http.Request, pc pageCtx) {
	in := createInput{Service: r.PostForm.Get("service"), Env: r.PostForm.Get("env"),
		Duration: r.PostForm.Get("duration"), Reason: r.PostForm.Get("reason")}
	ret := h.returnLink(r, r.PostForm.Get("return"))
	d, max, err := h.checkCreate(r.Context(), &in)
	if err != nil {
		h.createError(w, pc, in, max, ret, err)
		return
	}
	req, existing, err := h.opt.Service.Request(r.Context(), pc.actor, in.Service, in.Env, d, in.Reason)
	if err != nil {
		h.createError(w, pc, in, max, ret, err)
		return
	}
	h.log.Info("access: requested", "request_id", pc.rid, "user", pc.actor.UserRef, "access_request", req.ID, "existing", existing)
	q := url.Values{}
	if existing {
		q.Set("existing", "1")
	} else {
		q.Set("sent", "1")
	}
	if ret != "" {
		q.Set("return", ret)
	}
	http.Redirect(w, r, h.base+"/requests/"+url.PathEscape(req.ID)+"?"+q.Encode(), http.StatusSeeOther)
}

// createError re-renders the form with the message when the input was bad
// and the form can be shown, else an error page.
func (h *Handler) createError(w http.ResponseWriter, pc pageCtx, in createInput, max time.Duration, ret string, err error) {
	var ie *inputError
	msg := ""
	status := http.StatusBadRequest
	switch {
	case errors.As(err, &ie):
		msg = ie.msg
	default:
		var ok bool
		if status, _, msg, ok = errStatus(err); !ok {
			h.internalError(w, pc, "create request", err)
			return
		}
	}
	if max < minDuration || status != http.StatusBadRequest {
		h.tmpl.render(w, "error", pageData{Status: status, Title: "Cannot request access", Message: msg, User: pc.user, Base: h.base, RequestID: pc.rid})
		return
	}
	h.tmpl.render(w, "form", pageData{Status: status, Title: "Request access", Error: msg, User: pc.user, RequestID: pc.rid,
		Base: h.base, CSRF: pc.csrf, Form: h.formView(in, max, ret)})
}

// notice is the message after a redirect, from fixed texts only.
func (h *Handler) notice(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case q.Get("sent") == "1":
		return "Your request was sent. The service's owners decide on it; this page shows where it stands."
	case q.Get("existing") == "1":
		return "You already had a pending request for this service and environment; here it is. Cancel it first to ask differently."
	}
	if past, ok := pastTense[q.Get("done")]; ok {
		if id := q.Get("id"); validID(id) {
			return "Request " + id + " " + past + "."
		}
		return "Request " + past + "."
	}
	return ""
}

// noticeURL links the request a notice is about.
func (h *Handler) noticeURL(r *http.Request) string {
	if id := r.URL.Query().Get("id"); validID(id) && pastTense[r.URL.Query().Get("done")] != "" {
		return h.base + "/requests/" + url.PathEscape(id)
	}
	return ""
}

func (h *Handler) statusPage(w http.ResponseWriter, r *http.Request, pc pageCtx, id string) {
	req, err := h.opt.Service.Get(r.Context(), id)
	if errors.Is(err, acc.ErrNotFound) {
		h.tmpl.render(w, "error", pageData{Status: http.StatusNotFound, Title: "Not found", Message: acc.ErrNotFound.Error(),
			User: pc.user, Base: h.base, RequestID: pc.rid})
		return
	}
	if err != nil {
		h.serviceError(w, pc, "get request", err)
		return
	}
	rl := roleRequester
	if req.Requester != pc.actor.UserRef {
		list, err := h.opt.Service.ToDecide(r.Context(), pc.actor)
		if err != nil {
			h.serviceError(w, pc, "list requests to decide", err)
			return
		}
		switch {
		case slices.ContainsFunc(list, func(x acc.Request) bool { return x.ID == req.ID }):
			rl = roleDecider
		case involved(pc.actor.UserRef, req):
			// Approvers who took part may revoke the grant from here; the
			// Service checks the policy again.
			rl = roleApprover
		default:
			// Someone else's request: do not even confirm it exists.
			h.tmpl.render(w, "error", pageData{Status: http.StatusNotFound, Title: "Not found", Message: acc.ErrNotFound.Error(),
				User: pc.user, Base: h.base, RequestID: pc.rid})
			return
		}
	}
	v := h.view(req, rl, pc.csrf, "status")
	h.tmpl.render(w, "status", pageData{Title: "Access request", User: pc.user, RequestID: pc.rid, Base: h.base,
		Notice: h.notice(r), Req: &v, Return: h.returnLink(r, r.URL.Query().Get("return"))})
}

func (h *Handler) actionPage(w http.ResponseWriter, r *http.Request, pc pageCtx, id, action string) {
	var err error
	switch action {
	case "approve":
		_, err = h.opt.Service.Approve(r.Context(), pc.actor, id)
	case "deny":
		var reason string
		if reason, err = checkReason(r.PostForm.Get("reason"), true); err == nil {
			_, err = h.opt.Service.Deny(r.Context(), pc.actor, id, reason)
		}
	case "revoke":
		var reason string
		if reason, err = checkReason(r.PostForm.Get("reason"), false); err == nil {
			_, err = h.opt.Service.Revoke(r.Context(), pc.actor, id, reason)
		}
	case "cancel":
		_, err = h.opt.Service.Cancel(r.Context(), pc.actor, id)
	}
	if err != nil {
		var ie *inputError
		status, msg := http.StatusBadRequest, ""
		if errors.As(err, &ie) {
			msg = ie.msg
		} else {
			var ok bool
			if status, _, msg, ok = errStatus(err); !ok {
				h.internalError(w, pc, action+" request", err)
				return
			}
		}
		h.log.Info("access: action refused", "request_id", pc.rid, "user", pc.actor.UserRef, "action", action,
			"access_request", id, "reason", msg)
		h.renderIndex(r.Context(), w, pc, status, "Could not "+action+" request "+id+": "+msg, "", "")
		return
	}
	h.log.Info("access: action", "request_id", pc.rid, "user", pc.actor.UserRef, "action", action, "access_request", id)
	if r.PostForm.Get("from") == "status" {
		http.Redirect(w, r, h.base+"/requests/"+url.PathEscape(id)+"?done="+action, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, h.base+"/?"+url.Values{"done": {action}, "id": {id}}.Encode(), http.StatusSeeOther)
}

// renderIndex shows the person's requests and those they may act on.
func (h *Handler) renderIndex(ctx context.Context, w http.ResponseWriter, pc pageCtx, status int, errMsg, notice, noticeURL string) {
	mine, err := h.opt.Service.Mine(ctx, pc.actor)
	if err != nil {
		h.serviceError(w, pc, "list own requests", err)
		return
	}
	todo, err := h.opt.Service.ToDecide(ctx, pc.actor)
	if err != nil {
		h.serviceError(w, pc, "list requests to decide", err)
		return
	}
	d := pageData{Status: status, Title: "Temporary access", User: pc.user, RequestID: pc.rid, Base: h.base, CSRF: pc.csrf,
		Error: errMsg, Notice: notice, NoticeURL: noticeURL}
	for _, x := range mine {
		d.Mine = append(d.Mine, h.view(x, roleRequester, pc.csrf, "index"))
	}
	for _, x := range todo {
		if x.Requester == pc.actor.UserRef {
			continue // never offer to approve one's own request
		}
		d.ToDecide = append(d.ToDecide, h.view(x, roleDecider, pc.csrf, "index"))
	}
	h.tmpl.render(w, "index", d)
}
