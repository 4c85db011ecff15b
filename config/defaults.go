package config

import (
	"strings"
	"time"
)

// DefaultGCPercent is server.gc_percent when unset.
const DefaultGCPercent = 400

// Defaults fills every unset optional field. It is the only place defaults
// are written; the README's reference is generated from the same values.
func (c *Config) Defaults() {
	s := &c.Server
	if s.Listen == "" {
		s.Listen = ":8080"
		if s.TLS != nil {
			s.Listen = ":8443"
		}
	}
	setDur(&s.ReadHeaderTimeout, 10*time.Second)
	setDur(&s.IdleTimeout, 120*time.Second)
	setDur(&s.ShutdownTimeout, 20*time.Second)
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = 32 << 10
	}
	if s.GCPercent == 0 {
		s.GCPercent = DefaultGCPercent
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/backgate"
	}

	o := &c.OIDC
	if len(o.Scopes) == 0 {
		o.Scopes = []string{"openid", "email", "profile"}
	}
	if o.GroupsClaim == "" {
		o.GroupsClaim = "groups"
	}
	if len(o.AllowedAlgs) == 0 {
		o.AllowedAlgs = []string{"RS256", "ES256"}
	}
	setDur(&o.ClockSkew, 30*time.Second)
	if o.LogoutURL == "" && c.Server.ExternalURL != "" {
		o.LogoutURL = strings.TrimRight(c.Server.ExternalURL, "/") + "/_backgate/logged-out"
	}

	ss := &c.Session
	if ss.CookieName == "" {
		ss.CookieName = "_backgate"
	}
	setDur(&ss.Lifetime, 12*time.Hour)
	setDur(&ss.IdleTimeout, time.Hour)
	setDur(&ss.RefreshInterval, 5*time.Minute)

	sg := &c.Signing
	if sg.Algorithm == "" {
		sg.Algorithm = "ES256"
	}
	setDur(&sg.AssertionTTL, 5*time.Minute)
	setDur(&sg.EdgeTTL, 2*time.Minute)

	u := &c.Upstream
	if u.MaxIdleConnsPerHost == 0 {
		u.MaxIdleConnsPerHost = 256
	}
	setDur(&u.DialTimeout, 5*time.Second)
	setDur(&u.ResponseHeaderTimeout, 60*time.Second)

	for i := range c.Routes {
		r := &c.Routes[i]
		r.Host = strings.ToLower(strings.TrimSpace(r.Host))
		if r.PathPrefix == "" {
			r.PathPrefix = "/"
		}
		if r.Name == "" {
			r.Name = r.Host + strings.TrimSuffix(r.PathPrefix, "/")
		}
	}

	cat := &c.Catalog
	if len(cat.IdentityMapping) == 0 {
		cat.IdentityMapping = []string{"email", "name"}
	}
	setDur(&cat.MaxStaleness, time.Hour)
	if cat.Routes == nil {
		t := true
		cat.Routes = &t
	}
	if b := cat.Backstage; b != nil {
		setDur(&b.RefreshInterval, 2*time.Minute)
		setDur(&b.Timeout, 15*time.Second)
		if b.PageSize == 0 {
			b.PageSize = 500
		}
	}

	if c.Policy.Watch == nil {
		w := c.Policy.Dir != ""
		c.Policy.Watch = &w
	}
	setDur(&c.Policy.DecisionCacheTTL, time.Second)
	if c.BigIP.Partition == "" {
		c.BigIP.Partition = "Common"
	}
	setDur(&c.Access.WebhookTimeout, 5*time.Second)
	setDur(&c.Access.SyncInterval, time.Second)
	if c.Policy.Evaluator == "" {
		c.Policy.Evaluator = "planned"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}
