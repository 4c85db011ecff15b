package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// FieldError is one invalid field. Path is written as in the YAML file,
// e.g. routes[1].upstream.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

type errs []error

func (e *errs) add(path, format string, a ...any) {
	*e = append(*e, &FieldError{Path: path, Msg: fmt.Sprintf(format, a...)})
}

var (
	hostRE   = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	envRE    = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)
	keyIDRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	entityRE = regexp.MustCompile(`^[A-Za-z0-9]+:(?:[A-Za-z0-9._-]+/)?[A-Za-z0-9._-]+$`)
	envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	partRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	levels   = []string{"debug", "info", "warn", "error"}
	mappings = []string{"email", "name", "annotation"}
	jwtAlgs  = []string{"ES256", "ES384", "RS256", "EdDSA"}
	oidcAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}
)

// Validate checks the configuration after Defaults. It does no I/O. The
// error joins one FieldError per problem, each naming the field and value.
func (c *Config) Validate() error {
	var e errs
	s := c.Server
	if s.ExternalURL == "" {
		e.add("server.external_url", "required (backgate's own URL, e.g. https://backgate.corp.example)")
	} else if u, err := url.Parse(s.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		e.add("server.external_url", "%q must be an http(s) URL with a host and no path, query or user info", s.ExternalURL)
	}
	if s.TLS != nil {
		if s.TLS.CertFile == "" {
			e.add("server.tls.cert_file", "required when server.tls is set")
		}
		if s.TLS.KeyFile == "" {
			e.add("server.tls.key_file", "required when server.tls is set")
		}
	}
	for i, p := range s.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			e.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is not an IP address or CIDR prefix", p)
		}
	}
	if s.MaxHeaderBytes < 4096 || s.MaxHeaderBytes > 1<<20 {
		e.add("server.max_header_bytes", "%d must be between 4096 and 1048576", s.MaxHeaderBytes)
	}
	if ev := c.Policy.Evaluator; ev != "planned" && ev != "topdown" {
		e.add("policy.evaluator", "%q must be planned or topdown", ev)
	}
	if s.GCPercent != -1 && (s.GCPercent < 50 || s.GCPercent > 10000) {
		e.add("server.gc_percent", "%d must be -1 (off) or between 50 and 10000", s.GCPercent)
	}
	if s.MemoryLimitMB != 0 && s.MemoryLimitMB < 64 {
		e.add("server.memory_limit_mb", "%d must be 0 (no limit) or at least 64", s.MemoryLimitMB)
	}
	if s.GCPercent == -1 && s.MemoryLimitMB == 0 {
		e.add("server.gc_percent", "-1 (off) needs server.memory_limit_mb, or the heap grows without bound")
	}
	positive(&e, "server.read_header_timeout", s.ReadHeaderTimeout)
	positive(&e, "server.idle_timeout", s.IdleTimeout)
	positive(&e, "server.shutdown_timeout", s.ShutdownTimeout)
	if c.DataDir == "" || !strings.HasPrefix(c.DataDir, "/") && !strings.HasPrefix(c.DataDir, ".") {
		e.add("data_dir", "%q must be an absolute or ./relative directory path", c.DataDir)
	}

	o := c.OIDC
	if u, err := url.Parse(o.Issuer); o.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		e.add("oidc.issuer", "%q must be the provider's http(s) issuer URL", o.Issuer)
	} else if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		e.add("oidc.issuer", "%q: plain http is only allowed for loopback providers", o.Issuer)
	}
	if o.ClientID == "" {
		e.add("oidc.client_id", "required")
	}
	secret(&e, "oidc.client_secret", o.ClientSecret, false)
	if !slices.Contains(o.Scopes, "openid") {
		e.add("oidc.scopes", "%q must include openid", o.Scopes)
	}
	for i, a := range o.AllowedAlgs {
		if !slices.Contains(oidcAlgs, a) {
			e.add(fmt.Sprintf("oidc.allowed_algs[%d]", i), "%q is not an allowed signing algorithm (one of %s; never none or HS*)", a, strings.Join(oidcAlgs, ", "))
		}
	}
	if o.ClockSkew < 0 || o.ClockSkew > 5*time.Minute {
		e.add("oidc.clock_skew", "%s must be between 0 and 5m", o.ClockSkew)
	}

	ss := c.Session
	if ss.CookieDomain != "" && !hostRE.MatchString(strings.TrimPrefix(ss.CookieDomain, ".")) {
		e.add("session.cookie_domain", "%q is not a domain name", ss.CookieDomain)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`).MatchString(ss.CookieName) {
		e.add("session.cookie_name", "%q must be 1-64 characters of [A-Za-z0-9_-]", ss.CookieName)
	}
	secret(&e, "session.keys", ss.Keys, true)
	positive(&e, "session.lifetime", ss.Lifetime)
	positive(&e, "session.idle_timeout", ss.IdleTimeout)
	positive(&e, "session.refresh_interval", ss.RefreshInterval)
	if ss.IdleTimeout > ss.Lifetime {
		e.add("session.idle_timeout", "%s must not exceed session.lifetime (%s)", ss.IdleTimeout, ss.Lifetime)
	}

	sg := c.Signing
	if !slices.Contains(jwtAlgs, sg.Algorithm) {
		e.add("signing.algorithm", "%q must be one of %s", sg.Algorithm, strings.Join(jwtAlgs, ", "))
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{{"signing.assertion_ttl", sg.AssertionTTL}, {"signing.edge_ttl", sg.EdgeTTL}} {
		if d.v < 10*time.Second || d.v > time.Hour {
			e.add(d.path, "%s must be between 10s and 1h", d.v)
		}
	}
	for i, h := range sg.StripHeaders {
		if len(h) > 128 || !httpguts.ValidHeaderFieldName(h) { // an RFC 9110 token, as the stripper checks
			e.add(fmt.Sprintf("signing.strip_headers[%d]", i), "%q is not an HTTP header name", h)
		}
	}
	keyFiles(&e, "signing.edge_keys", sg.EdgeKeys)
	keyFiles(&e, "signing.jwt_keys", sg.JWTKeys)

	u := c.Upstream
	if u.MaxIdleConnsPerHost < 1 || u.MaxIdleConnsPerHost > 100000 {
		e.add("upstream.max_idle_conns_per_host", "%d must be between 1 and 100000", u.MaxIdleConnsPerHost)
	}
	positive(&e, "upstream.dial_timeout", u.DialTimeout)
	positive(&e, "upstream.response_header_timeout", u.ResponseHeaderTimeout)
	upstreamTLS(&e, "upstream.tls", u.TLS)

	seen := map[string]int{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if err := ValidateRoute(r); err != nil {
			for _, fe := range unjoin(err) {
				var f *FieldError
				if errors.As(fe, &f) {
					e.add(p+"."+f.Path, "%s", f.Msg)
				}
			}
		}
		key := r.Host + " " + strings.TrimSuffix(r.PathPrefix, "/")
		if j, dup := seen[key]; dup {
			e.add(p+".host", "%q with path_prefix %q is already routed by routes[%d]", r.Host, r.PathPrefix, j)
		} else {
			seen[key] = i
		}
		if r.TLS != nil {
			upstreamTLS(&e, p+".tls", *r.TLS)
		}
	}

	cat := c.Catalog
	for i, m := range cat.IdentityMapping {
		if !slices.Contains(mappings, m) {
			e.add(fmt.Sprintf("catalog.identity_mapping[%d]", i), "%q must be one of %s", m, strings.Join(mappings, ", "))
		}
	}
	positive(&e, "catalog.max_staleness", cat.MaxStaleness)
	for lc, env := range cat.Environments {
		if !envRE.MatchString(env) {
			e.add("catalog.lifecycle_environments."+lc, "%q must be 1-32 characters of [a-z0-9-]", env)
		}
	}
	if b := cat.Backstage; b != nil {
		if u, err := url.Parse(b.URL); b.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			e.add("catalog.backstage.url", "%q must be Backstage's http(s) base URL", b.URL)
		}
		secret(&e, "catalog.backstage.token", b.Token, false)
		if b.RefreshInterval < 10*time.Second {
			e.add("catalog.backstage.refresh_interval", "%s must be at least 10s", b.RefreshInterval)
		}
		if b.PageSize < 1 || b.PageSize > 10000 {
			e.add("catalog.backstage.page_size", "%d must be between 1 and 10000", b.PageSize)
		}
		positive(&e, "catalog.backstage.timeout", b.Timeout)
	}

	if d := c.Policy.DecisionLog; d != "" && d != "stdout" && !strings.HasPrefix(d, "/") && !strings.HasPrefix(d, ".") {
		e.add("policy.decision_log", "%q must be \"stdout\", an absolute or ./relative file path, or empty", d)
	}

	if t := c.Policy.DecisionCacheTTL; t < 0 || t > time.Minute {
		e.add("policy.decision_cache_ttl", "%s must be between 0 and 1m", t)
	}

	bi := c.BigIP
	if bi.URL != "" {
		if u, err := url.Parse(bi.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			e.add("bigip.url", "%q must be the management https URL", bi.URL)
		}
		if bi.Username == "" {
			e.add("bigip.username", "required when bigip.url is set")
		}
		secret(&e, "bigip.password", bi.Password, false)
	}
	if bi.ReplayProtection && !c.Signing.UniqueTokens {
		e.add("bigip.replay_protection", "needs signing.unique_tokens: true (cached tokens reuse their id)")
	}
	if !partRE.MatchString(bi.Partition) {
		e.add("bigip.partition", "%q is not a partition name", bi.Partition)
	}

	ac := c.Access
	secret(&e, "access.postgres_dsn", ac.PostgresDSN, true)
	secret(&e, "access.webhook_url", ac.WebhookURL, true)
	secret(&e, "access.csrf_key", ac.CSRFKey, true)
	if ac.WebhookTimeout <= 0 || ac.WebhookTimeout > time.Minute {
		e.add("access.webhook_timeout", "%s must be between 0 and 1m", ac.WebhookTimeout)
	}
	if ac.SyncInterval <= 0 || ac.SyncInterval > time.Second {
		e.add("access.sync_interval", "%s must be positive and at most 1s (grants must take effect within a second)", ac.SyncInterval)
	}
	names := map[string]bool{}
	for i, t := range ac.ServiceTokens {
		p := fmt.Sprintf("access.service_tokens[%d]", i)
		if !keyIDRE.MatchString(t.Name) {
			e.add(p+".name", "%q must be 1-32 characters of [A-Za-z0-9_-]", t.Name)
		} else if names[t.Name] {
			e.add(p+".name", "%q is used twice", t.Name)
		}
		names[t.Name] = true
		secret(&e, p+".token", t.Token, false)
	}

	if !slices.Contains(levels, c.Log.Level) {
		e.add("log.level", "%q must be one of %s", c.Log.Level, strings.Join(levels, ", "))
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		e.add("log.format", "%q must be json or text", c.Log.Format)
	}
	return errors.Join(e...)
}

// ValidateRoute checks one route; field paths in its errors are relative to
// the route (host, upstream, ...). Catalog routes go through it too.
func ValidateRoute(r Route) error {
	var e errs
	if !hostRE.MatchString(r.Host) {
		e.add("host", "%q is not a lower-case host name (no port, scheme or path)", r.Host)
	}
	if !strings.HasPrefix(r.PathPrefix, "/") || strings.Contains(r.PathPrefix, "..") || strings.Contains(r.PathPrefix, "//") || strings.ContainsAny(r.PathPrefix, "?#%\\ \t") {
		e.add("path_prefix", "%q must be a clean absolute path", r.PathPrefix)
	}
	if u, err := url.Parse(r.Upstream); r.Upstream == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		e.add("upstream", "%q is not an http(s) URL", r.Upstream)
	}
	if !entityRE.MatchString(r.Service) {
		e.add("service", "%q is not a Backstage entity ref like component:default/payments", r.Service)
	}
	if !envRE.MatchString(r.Environment) {
		e.add("environment", "%q must be 1-32 characters of [a-z0-9-], e.g. dev, staging, prod", r.Environment)
	}
	return errors.Join(e...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func positive(e *errs, path string, d time.Duration) {
	if d <= 0 {
		e.add(path, "%s must be positive", d)
	}
}

func secret(e *errs, path string, s Secret, optional bool) {
	switch {
	case s.IsZero() && !optional:
		e.add(path, "required: {file: PATH} or {env: VARIABLE}")
	case s.File != "" && s.Env != "":
		e.add(path, "give file or env, not both")
	case s.Env != "" && !envVarRE.MatchString(s.Env):
		e.add(path+".env", "%q is not an environment variable name", s.Env)
	}
}

func keyFiles(e *errs, path string, ks []KeyFile) {
	ids := map[string]bool{}
	for i, k := range ks {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !keyIDRE.MatchString(k.ID) {
			e.add(p+".id", "%q must be 1-32 characters of [A-Za-z0-9_-]", k.ID)
		} else if ids[k.ID] {
			e.add(p+".id", "%q is used twice", k.ID)
		}
		ids[k.ID] = true
		if k.File == "" {
			e.add(p+".file", "required")
		}
	}
}

func upstreamTLS(e *errs, path string, t UpstreamTLS) {
	if t.InsecureSkipVerify && t.CAFile != "" {
		e.add(path+".insecure_skip_verify", "cannot be combined with ca_file")
	}
	if t.ServerName != "" && !hostRE.MatchString(strings.ToLower(t.ServerName)) {
		e.add(path+".server_name", "%q is not a host name", t.ServerName)
	}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// TrustedProxyPrefixes returns server.trusted_proxies parsed; call after Validate.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range c.Server.TrustedProxies {
		if pf, err := parsePrefix(p); err == nil {
			out = append(out, pf.Masked())
		}
	}
	return out
}

func isLoopbackHost(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}
