package demo

import (
	"context"
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
)

//go:embed templates/*.html
var templateFS embed.FS

const maxFormBytes = 16 << 10

type loginConfig struct {
	store    *storage
	callback func(ctx context.Context, authRequestID string) string
	cookies  *securecookie.SecureCookie
	secure   bool
	logger   *slog.Logger
	now      func() time.Time
}

// login serves the demo provider's login page. It must run behind
// op.IssuerInterceptor, which puts the issuer into the request context that
// callback reads.
type login struct {
	loginConfig
	tmpl *template.Template
}

// session is the content of the provider's sign-in cookie.
type session struct {
	Subject  string `json:"sub"`
	AuthTime int64  `json:"auth_time"`
}

type loginUser struct {
	Username, Password, Name, Email, About string
	Groups                                 []string
}

type loginPage struct {
	ID     string
	Client string
	Error  string
	Users  []loginUser
	// Username is put back into the form after a failed attempt.
	Username string
}

func newLogin(cfg loginConfig) (*login, error) {
	tmpl, err := template.ParseFS(templateFS, "templates/login.html", "templates/loggedout.html")
	if err != nil {
		return nil, fmt.Errorf("demo: parse login templates: %w", err)
	}
	return &login{loginConfig: cfg, tmpl: tmpl}, nil
}

func (l *login) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		l.handleGet(w, r)
	case http.MethodPost:
		l.handlePost(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (l *login) handleGet(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	req, ok := l.store.pendingRequest(id)
	if !ok {
		l.render(w, http.StatusBadRequest, loginPage{Error: "This sign-in request is unknown or has expired. Go back to the app and try again."})
		return
	}
	if s, ok := l.readSession(r); ok {
		u, known := l.store.users[s.Subject]
		authTime := time.Unix(s.AuthTime, 0)
		if known && !req.forcesLogin(authTime, l.now()) {
			if err := l.store.completeLogin(id, u, authTime); err == nil {
				l.logger.Info("demo idp: signed in from session", "user", u.Username, "client", req.clientID)
				http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
				return
			}
		}
	}
	l.render(w, http.StatusOK, l.page(req, ""))
}

func (l *login) handlePost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		l.render(w, http.StatusBadRequest, loginPage{Error: "The form could not be read."})
		return
	}
	id := r.PostForm.Get("id")
	req, ok := l.store.pendingRequest(id)
	if !ok {
		l.render(w, http.StatusBadRequest, loginPage{Error: "This sign-in request is unknown or has expired. Go back to the app and try again."})
		return
	}
	username := r.PostForm.Get("username")
	u, known := l.store.byLogin[username]
	if !known || !constantTimeEqual(u.Password, r.PostForm.Get("password")) {
		l.logger.Info("demo idp: wrong username or password", "client", req.clientID)
		page := l.page(req, "Wrong username or password.")
		page.Username = username
		l.render(w, http.StatusUnauthorized, page)
		return
	}
	now := l.now()
	if err := l.store.completeLogin(id, u, now); err != nil {
		l.render(w, http.StatusBadRequest, loginPage{Error: "This sign-in request has expired. Go back to the app and try again."})
		return
	}
	l.writeSession(w, session{Subject: u.subject(), AuthTime: now.Unix()})
	l.logger.Info("demo idp: signed in", "user", u.Username, "client", req.clientID)
	http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
}

func (l *login) page(req authRequest, errMsg string) loginPage {
	p := loginPage{ID: req.id, Client: req.clientID, Error: errMsg}
	for _, u := range l.store.cfg.users {
		p.Users = append(p.Users, loginUser{
			Username: u.Username, Password: u.Password, Name: u.displayName(),
			Email: u.Email, About: u.About, Groups: u.Groups,
		})
	}
	return p
}

func (l *login) render(w http.ResponseWriter, status int, p loginPage) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No form-action: browsers apply it to the redirect back to the app.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := l.tmpl.ExecuteTemplate(w, "login.html", p); err != nil {
		l.logger.Error("demo idp: render login page", "error", err)
	}
}

func (l *login) readSession(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	var s session
	if err := l.cookies.Decode(sessionCookie, c.Value, &s); err != nil {
		return session{}, false
	}
	age := l.now().Sub(time.Unix(s.AuthTime, 0))
	if s.Subject == "" || age < -time.Minute || age > DefaultSessionLifetime {
		return session{}, false
	}
	return s, true
}

func (l *login) writeSession(w http.ResponseWriter, s session) {
	v, err := l.cookies.Encode(sessionCookie, s)
	if err != nil {
		l.logger.Error("demo idp: encode session cookie", "error", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: v, Path: "/", HttpOnly: true, Secure: l.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(DefaultSessionLifetime / time.Second),
	})
}

func (l *login) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: l.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: -1,
	})
}

// forgetSession wraps the end_session endpoint so that signing out at the
// provider also forgets the browser's sign-in.
func (l *login) forgetSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.clearSession(w)
		next.ServeHTTP(w, r)
	})
}

// loggedOut is the default page after end_session; visiting it also signs out.
func (l *login) loggedOut(w http.ResponseWriter, r *http.Request) {
	l.clearSession(w)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	if err := l.tmpl.ExecuteTemplate(w, "loggedout.html", nil); err != nil {
		l.logger.Error("demo idp: render logged-out page", "error", err)
	}
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
