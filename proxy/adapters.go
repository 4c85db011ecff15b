package proxy

import (
	"errors"
	"net/http"
	"time"

	"github.com/backgate/backgate/proxy/auth"
	"github.com/backgate/backgate/proxy/signer"
)

// AuthSessions adapts an *auth.Authenticator to Sessions.
func AuthSessions(a *auth.Authenticator) Sessions { return authSessions{a} }

type authSessions struct{ a *auth.Authenticator }

func (s authSessions) Identify(w http.ResponseWriter, r *http.Request, at time.Time) (Identity, error) {
	sess, err := s.a.Current(w, r, at)
	if err != nil {
		// No session, or one that ended (timed out, signed out, refresh rejected).
		return Identity{}, errors.Join(ErrNotLoggedIn, err)
	}
	return Identity{Subject: sess.Subject, Issuer: sess.Issuer, Email: sess.Email, Name: sess.Name,
		Username: sess.Username, Groups: sess.Groups, Expiry: sess.ExpiresAt}, nil
}

func (s authSessions) Login(w http.ResponseWriter, r *http.Request, returnTo string) {
	s.a.Login(w, r, returnTo)
}
func (s authSessions) Callback(w http.ResponseWriter, r *http.Request) { s.a.Callback(w, r) }
func (s authSessions) Logout(w http.ResponseWriter, r *http.Request)   { s.a.Logout(w, r) }

// SignerHeaders adapts a *signer.Signer to HeaderSigner.
func SignerHeaders(s *signer.Signer) HeaderSigner { return signerHeaders{s} }

type signerHeaders struct{ s *signer.Signer }

func (s signerHeaders) SignHeaders(r SignRequest) (http.Header, error) {
	hs, err := s.s.Sign(signer.SignRequest{Host: r.Host, Subject: r.Identity.Subject, Email: r.Identity.Email,
		Name: r.Identity.Name, Groups: r.Identity.Groups, UserRef: r.UserRef, Service: r.Service,
		Environment: r.Environment, NotAfter: r.NotAfter, At: r.At})
	if err != nil {
		return nil, err
	}
	return hs.Header(), nil
}
