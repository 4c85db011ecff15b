package access

import (
	"embed"
	"github.com/backgate/backgate/proxy/pages"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	acc "github.com/backgate/backgate/access"
)

//go:embed templates/*.html
var templateFiles embed.FS

// renderer renders the embedded templates; their CSS is proxy/pages' look.
type renderer struct {
	t   *template.Template
	log *slog.Logger
}

func newRenderer(log *slog.Logger) (*renderer, error) {
	t, err := template.New("").ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return &renderer{t: t, log: log}, nil
}

// pageData is what the templates may show. Everything is escaped by
// html/template.
type pageData struct {
	Status     int
	Title      string
	User       string
	RequestID  string
	Base       string
	CSRF       string
	Error      string
	Notice     string
	NoticeURL  string // a link after the notice
	Message    string
	ActionURL  string
	ActionText string
	Form       *formView
	Req        *reqView
	Return     string
	Mine       []reqView
	ToDecide   []reqView
}

type formView struct {
	Service, Env string
	Owners       []string
	Max          string
	Choices      []choice
	Reason       string
	Return       string
}

type choice struct {
	Value, Label string
	Selected     bool
}

// reqView is one request with the actions the viewer may take on it.
type reqView struct {
	ID, Requester, RequesterEmail, Service, Env, Duration, Reason, State string
	Created, Decided, DecidedBy, DecisionReason, Expires                 string
	Revoked, RevokedBy                                                   string
	Approvals                                                            []string
	Active, Mine                                                         bool
	CanApprove, CanDeny, CanRevoke, CanCancel                            bool
	Base, CSRF, From                                                     string
}

const timeLayout = "2006-01-02 15:04 MST"

// role is how a viewer relates to a request; it decides the buttons.
type role int

const (
	roleNone      role = iota
	roleRequester      // may cancel while pending, end the grant while active
	roleDecider        // among ToDecide: may approve or deny
	roleApprover       // took part in deciding: may revoke while active
)

// view builds the view of req for a viewer in role r.
func (h *Handler) view(req acc.Request, r role, csrf, from string) reqView {
	now := h.now()
	v := reqView{ID: req.ID, Requester: req.Requester, RequesterEmail: req.RequesterEmail, Service: req.Service,
		Env: req.Environment, Duration: humanDuration(req.Duration), Reason: req.Reason, State: string(req.State),
		Created: req.CreatedAt.UTC().Format(timeLayout), DecidedBy: req.DecidedBy, DecisionReason: req.DecisionReason,
		RevokedBy: req.RevokedBy, Mine: r == roleRequester, Base: h.base, CSRF: csrf, From: from}
	if !req.DecidedAt.IsZero() {
		v.Decided = req.DecidedAt.UTC().Format(timeLayout)
	}
	if !req.RevokedAt.IsZero() {
		v.Revoked = req.RevokedAt.UTC().Format(timeLayout)
	}
	for _, a := range req.Approvals {
		v.Approvals = append(v.Approvals, a.By+" at "+a.At.UTC().Format(timeLayout))
	}
	if !req.ExpiresAt.IsZero() {
		v.Expires = req.ExpiresAt.UTC().Format(timeLayout)
	}
	v.Active = req.State == acc.StateApproved && req.RevokedAt.IsZero() && now.Before(req.ExpiresAt)
	if v.Active {
		v.Expires += " (" + humanDuration(req.ExpiresAt.Sub(now).Truncate(time.Minute)) + " left)"
	}
	pending := req.State == acc.StatePending
	switch r {
	case roleRequester:
		v.CanCancel = pending
		v.CanRevoke = v.Active
	case roleDecider:
		v.CanApprove, v.CanDeny = pending, pending
		v.CanRevoke = v.Active
	case roleApprover:
		v.CanRevoke = v.Active
	}
	return v
}

// render writes the named template with status d.Status. Pages are never
// cached, framed or sniffed, and load nothing from elsewhere.
func (t *renderer) render(w http.ResponseWriter, name string, d pageData) {
	if d.Status == 0 {
		d.Status = http.StatusOK
	}
	if d.Title == "" {
		d.Title = http.StatusText(d.Status)
	}
	pages.Execute(w, t.t, name+".html", d, d.Status, t.log)
}

func (t *renderer) errorPage(w http.ResponseWriter, status int, title, msg, rid string) {
	t.render(w, "error", pageData{Status: status, Title: title, Message: msg, RequestID: rid})
}
