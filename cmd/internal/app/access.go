package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/backgate/backgate/access"
	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/policy"
	"github.com/backgate/backgate/proxy"
	proxyaccess "github.com/backgate/backgate/proxy/access"
)

// accessParts is temporary access as the app runs it.
type accessParts struct {
	store   *access.SQLStore
	service *access.Service
	handler http.Handler
	webhook *access.Webhook
}

func OpenAccessStore(ctx context.Context, cfg *config.Config, e *Env) (*access.SQLStore, error) {
	if !cfg.Access.PostgresDSN.IsZero() {
		dsn, err := cfg.Access.PostgresDSN.Read(e.Getenv)
		if err != nil {
			return nil, fmt.Errorf("access.postgres_dsn: %w", err)
		}
		st, err := access.OpenPostgres(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("access.postgres_dsn: %w", err)
		}
		return st, nil
	}
	st, err := access.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "access.db"))
	if err != nil {
		return nil, fmt.Errorf("access database %s: %w", filepath.Join(cfg.DataDir, "access.db"), err)
	}
	return st, nil
}

// buildAccess wires the store, the service (approvals decided by the
// policy engine) and the pages/API. The grant sync that feeds the engine is
// started by app.run.
func buildAccess(ctx context.Context, a *App, e *Env, auditLog io.Writer) (*accessParts, error) {
	cfg := a.cfg
	st, err := OpenAccessStore(ctx, cfg, e)
	if err != nil {
		return nil, err
	}
	p := &accessParts{store: st}
	var notifier access.Notifier
	if !cfg.Access.WebhookURL.IsZero() {
		u, err := cfg.Access.WebhookURL.Read(e.Getenv)
		if err != nil {
			return nil, fmt.Errorf("access.webhook_url: %w", err)
		}
		wh, err := access.NewWebhook(u, cfg.Access.WebhookTimeout, nil, a.log)
		if err != nil {
			return nil, fmt.Errorf("access.webhook_url: %w", err)
		}
		p.webhook, notifier = wh, wh
	}
	svc, err := access.NewService(access.Options{
		Store:    st,
		Approver: approver{a.engine},
		Services: func(s string) bool {
			c := a.syncer.Current()
			if c == nil {
				return false
			}
			_, ok := c.Entity(s)
			return ok
		},
		Logger:   a.log,
		Audit:    auditLog,
		Now:      a.now,
		Notifier: notifier,
	})
	if err != nil {
		return nil, err
	}
	p.service = svc

	csrf, err := secretOrGenerated(cfg.Access.CSRFKey, filepath.Join(cfg.DataDir, "csrf-key"), e)
	if err != nil {
		return nil, fmt.Errorf("access.csrf_key: %w", err)
	}
	tokens := map[string]string{}
	var delegating []string
	for i, t := range cfg.Access.ServiceTokens {
		v, err := t.Token.Read(e.Getenv)
		if err != nil {
			return nil, fmt.Errorf("access.service_tokens[%d].token: %w", i, err)
		}
		tokens[t.Name] = v
		if t.Delegate {
			delegating = append(delegating, t.Name)
		}
	}
	sessions := proxy.AuthSessions(a.auth)
	h, err := proxyaccess.NewHandler(proxyaccess.Options{
		Service: svc,
		Identify: func(w http.ResponseWriter, r *http.Request) (proxy.Identity, error) {
			return sessions.Identify(w, r, time.Time{})
		},
		ResolveUser: func(id proxy.Identity) (string, bool) {
			c := a.syncer.Current()
			if c == nil {
				return "", false
			}
			return c.ResolveUser(id.Subject, id.Email, id.Username)
		},
		Login:           sessions.Login,
		ServiceTokens:   tokens,
		Delegating:      delegating,
		CSRFKey:         []byte(csrf),
		Owners:          a.owners,
		AllowReturnHost: a.allowHost,
		ClientAddr:      a.handler.ClientIP,
		Logger:          a.log,
		Now:             a.now,
	})
	if err != nil {
		return nil, err
	}
	p.handler = h
	return p, nil
}

// pushGrants hands the active grants to the policy engine.
func pushGrants(log *slog.Logger, eng *policy.Engine) func([]access.Grant) {
	return func(gs []access.Grant) {
		pg := make([]policy.Grant, 0, len(gs))
		for _, g := range gs {
			pg = append(pg, policy.Grant{ID: g.ID, User: g.User, Service: g.Service, Environment: g.Environment,
				ExpiresAt: g.ExpiresAt, ApprovedBy: g.ApprovedBy})
		}
		if err := eng.SetGrants(pg); err != nil {
			log.Error("grants not loaded into the policy engine", "err", err)
		}
	}
}

// secretOrGenerated reads s, or a random key generated once into path.
func secretOrGenerated(s config.Secret, path string, e *Env) (string, error) {
	if !s.IsZero() {
		v, err := s.Read(e.Getenv)
		if err == nil && len(v) < 32 {
			err = errors.New("needs at least 32 characters")
		}
		return v, err
	}
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	v := hex.EncodeToString(k)
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", err
	}
	return v, nil
}

// approver lets the access service ask the policy engine (rego/approval.rego
// and the durations in rego/settings.rego) who may approve what.
type approver struct{ e *policy.Engine }

func (a approver) MayApprove(ctx context.Context, in access.ApprovalInput) (access.ApprovalResult, error) {
	var by []string
	for _, ap := range in.Request.Approvals {
		by = append(by, ap.By)
	}
	r, err := a.e.MayApprove(ctx, policy.ApprovalInput{
		Approver:    policy.User{Email: in.Approver.Email, Groups: in.Approver.Groups},
		ApproverRef: in.Approver.UserRef,
		Request: policy.ApprovalRequest{ID: in.Request.ID, Requester: in.Request.Requester, Service: in.Request.Service,
			Environment: in.Request.Environment, Duration: in.Request.Duration, ApprovedBy: by},
		Time: in.Time,
	})
	return access.ApprovalResult{MayApprove: r.MayApprove, Reasons: r.Reasons, Complete: r.Complete}, err
}

func (a approver) MaxDuration(ctx context.Context, service, environment string) (time.Duration, error) {
	return a.e.MaxGrantDuration(ctx, service, environment)
}
