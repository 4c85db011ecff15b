package pages

import (
	"bytes"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
)

//go:embed templates/*.html
var files embed.FS

// Page is what a template may show. Every field is optional.
type Page struct {
	Status    int    // HTTP status; sets the heading's code
	Title     string // short heading, e.g. "Access denied"
	Message   string // one or two sentences for the person
	User      string // who they are logged in as
	Service   string // the Backstage entity behind the URL
	Env       string // its environment
	Owners    []string
	Host      string
	RequestID string // correlates with the access and decision logs
	// Action is a link the page offers: request access, log in again, ...
	ActionURL  string
	ActionText string
	// Extra links shown small below the message.
	LogoutURL string
}

// Renderer renders the embedded templates.
type Renderer struct {
	t   *template.Template
	log *slog.Logger
}

// New parses the embedded templates.
func New(log *slog.Logger) (*Renderer, error) {
	t, err := template.New("").ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Renderer{t: t, log: log}, nil
}

// Render writes p with status p.Status using the named template ("error",
// "denied", "loggedout"). The response is never cached and never framed.
func (r *Renderer) Render(w http.ResponseWriter, name string, p Page) {
	if p.Status == 0 {
		p.Status = http.StatusOK
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	Execute(w, r.t, name+".html", p, p.Status, r.log)
}

// Execute renders the named template of t to a buffer and writes it with
// WriteHTML, so a template error never leaves half a page: it is logged and
// the person gets a plain 500.
func Execute(w http.ResponseWriter, t *template.Template, name string, data any, status int, log *slog.Logger) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		log.Error("render page", "template", name, "err", err)
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	WriteHTML(w, status, buf.Bytes())
}

// WriteHTML writes a page backgate rendered, with the headers every such
// page gets: never cached, framed or sniffed, and allowed to load nothing
// from anywhere (inline styles only; forms post to the same origin).
func WriteHTML(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Error renders the generic error page.
func (r *Renderer) Error(w http.ResponseWriter, status int, title, message, requestID string) {
	r.Render(w, "error", Page{Status: status, Title: title, Message: message, RequestID: requestID})
}
