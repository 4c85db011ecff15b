package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole backgate configuration. The zero value of every
// optional field means "use the default" documented beside it; Defaults
// fills them in one place.
type Config struct {
	Server   Server   `yaml:"server"`
	DataDir  string   `yaml:"data_dir"` // keys, catalog snapshot, database; default /var/lib/backgate
	OIDC     OIDC     `yaml:"oidc"`
	Session  Session  `yaml:"session"`
	Signing  Signing  `yaml:"signing"`
	Upstream Upstream `yaml:"upstream"`
	Routes   []Route  `yaml:"routes"`
	Catalog  Catalog  `yaml:"catalog"`
	Policy   Policy   `yaml:"policy"`
	BigIP    BigIP    `yaml:"bigip"`
	Access   Access   `yaml:"access"`
	Log      Log      `yaml:"log"`
}

// Access is temporary access: requests, approvals, grants and their audit.
type Access struct {
	Disabled bool `yaml:"disabled"` // no request link, pages or API
	// PostgresDSN selects PostgreSQL (for several replicas); empty means
	// SQLite at data_dir/access.db.
	PostgresDSN    Secret         `yaml:"postgres_dsn"`
	WebhookURL     Secret         `yaml:"webhook_url"`     // Slack-compatible webhook, optional
	WebhookTimeout time.Duration  `yaml:"webhook_timeout"` // default 5s
	ServiceTokens  []ServiceToken `yaml:"service_tokens"`
	CSRFKey        Secret         `yaml:"csrf_key"`      // default generated in data_dir/csrf-key (share it between replicas)
	SyncInterval   time.Duration  `yaml:"sync_interval"` // how often grants are re-read from the database; default 1s
}

// ServiceToken lets a Backstage plugin or chat bot use the access API.
type ServiceToken struct {
	Name     string `yaml:"name"`
	Token    Secret `yaml:"token"`
	Delegate bool   `yaml:"delegate"` // may act on behalf of the user it names (on_behalf_of)
}

// Server is the listening side of the proxy.
type Server struct {
	Listen            string        `yaml:"listen"`       // default ":8443" with TLS, ":8080" without
	ExternalURL       string        `yaml:"external_url"` // required; backgate's own URL, hosts /_backgate/callback
	TLS               *ServerTLS    `yaml:"tls"`          // nil: plain HTTP (behind a TLS-terminating load balancer)
	TrustedProxies    []string      `yaml:"trusted_proxies"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // default 10s
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // default 120s
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`    // default 32 KiB
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`    // default 20s
	// GCPercent is the Go garbage collector's GOGC for the serving process,
	// default 400: most of backgate's heap is the catalog, which lives until
	// the next sync, and with Go's default of 100 every request pays for
	// marking it again each time the heap grows by its size. -1 turns the
	// proportional collector off (memory_limit_mb then decides). The GOGC
	// environment variable, when set, wins.
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimitMB is a soft limit on the Go heap (GOMEMLIMIT) in MiB; 0 is
	// none. Near it the collector runs as often as needed to stay below.
	// The GOMEMLIMIT environment variable, when set, wins.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
}

// ServerTLS is the certificate backgate serves.
type ServerTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// OIDC is the OpenID Provider backgate logs users in with.
type OIDC struct {
	Issuer       string        `yaml:"issuer"`
	ClientID     string        `yaml:"client_id"`
	ClientSecret Secret        `yaml:"client_secret"`
	Scopes       []string      `yaml:"scopes"`        // default [openid, email, profile]
	GroupsClaim  string        `yaml:"groups_claim"`  // default "groups"
	AllowedAlgs  []string      `yaml:"allowed_algs"`  // default [RS256, ES256]
	ClockSkew    time.Duration `yaml:"clock_skew"`    // default 30s, at most 5m
	LogoutURL    string        `yaml:"logout_return"` // where RP-initiated logout returns; default external_url + /_backgate/logged-out
}

// Session is the encrypted cookie session.
type Session struct {
	CookieName      string        `yaml:"cookie_name"`      // default "_backgate"
	CookieDomain    string        `yaml:"cookie_domain"`    // e.g. ".corp.example": one login for every route below it
	Insecure        bool          `yaml:"insecure"`         // drop the Secure attribute; only for plain-HTTP demos
	Keys            Secret        `yaml:"keys"`             // one secret per line, >= 32 bytes each; first encrypts, all decrypt
	Lifetime        time.Duration `yaml:"lifetime"`         // default 12h
	IdleTimeout     time.Duration `yaml:"idle_timeout"`     // default 1h
	RefreshInterval time.Duration `yaml:"refresh_interval"` // default 5m
}

// Signing is the identity headers backgate adds.
type Signing struct {
	Algorithm    string        `yaml:"algorithm"`     // assertion JWT algorithm, default ES256
	AssertionTTL time.Duration `yaml:"assertion_ttl"` // default 5m, at most 1h
	EdgeTTL      time.Duration `yaml:"edge_ttl"`      // default 2m, at most 1h
	EdgeKeys     []KeyFile     `yaml:"edge_keys"`     // empty: generated in data_dir/keys
	JWTKeys      []KeyFile     `yaml:"jwt_keys"`      // empty: generated in data_dir/keys
	UniqueTokens bool          `yaml:"unique_tokens"` // mint per request (needed for BIG-IP replay protection)
	// StripHeaders are other identity headers upstreams trust (e.g.
	// X-Remote-User): every client copy is removed, like backgate's own.
	StripHeaders []string `yaml:"strip_headers"`
}

// KeyFile is a key loaded from a file.
type KeyFile struct {
	ID   string `yaml:"id"`
	File string `yaml:"file"`
}

// Upstream holds transport settings shared by every route unless a route overrides them.
type Upstream struct {
	TLS                   UpstreamTLS   `yaml:"tls"`
	MaxIdleConnsPerHost   int           `yaml:"max_idle_conns_per_host"` // default 256
	DialTimeout           time.Duration `yaml:"dial_timeout"`            // default 5s
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"` // default 60s
}

// UpstreamTLS is how backgate trusts BIG-IP's virtual server certificate.
type UpstreamTLS struct {
	CAFile             string `yaml:"ca_file"`     // default: system roots
	ServerName         string `yaml:"server_name"` // default: the upstream URL's host
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Route maps an external host (and optional path prefix) to an upstream.
type Route struct {
	Name        string       `yaml:"name"` // default host+prefix
	Host        string       `yaml:"host"`
	PathPrefix  string       `yaml:"path_prefix"` // default "/"
	Upstream    string       `yaml:"upstream"`
	Service     string       `yaml:"service"`     // Backstage entity ref
	Environment string       `yaml:"environment"` // dev, staging, prod, ...
	TLS         *UpstreamTLS `yaml:"tls"`         // overrides upstream.tls
	Pool        string       `yaml:"pool"`        // BIG-IP pool for this service+environment (bigip render)
}

// Catalog is where Backstage data comes from.
type Catalog struct {
	Files           []string          `yaml:"files"`                  // catalog-info.yaml files; empty and no backstage: the embedded demo catalog
	Backstage       *BackstageAPI     `yaml:"backstage"`              // a live Backstage
	IdentityMapping []string          `yaml:"identity_mapping"`       // order of: email, name, annotation; default [email, name]
	MaxStaleness    time.Duration     `yaml:"max_staleness"`          // fail closed past this; default 1h
	Routes          *bool             `yaml:"routes"`                 // take routes from backgate.io/ annotations; default true
	Environments    map[string]string `yaml:"lifecycle_environments"` // spec.lifecycle -> environment
}

// BackstageAPI is a live Backstage catalog.
type BackstageAPI struct {
	URL             string        `yaml:"url"`
	Token           Secret        `yaml:"token"`
	RefreshInterval time.Duration `yaml:"refresh_interval"` // default 2m
	PageSize        int           `yaml:"page_size"`        // default 500
	Timeout         time.Duration `yaml:"timeout"`          // default 15s
}

// Policy is the OPA engine.
type Policy struct {
	Dir         string `yaml:"dir"`          // empty: the embedded rego/
	Watch       *bool  `yaml:"watch"`        // hot-reload dir; default true when dir is set
	DecisionLog string `yaml:"decision_log"` // "stdout", a file path, or "" (off)
	// DecisionCacheTTL bounds how long a decision is reused for the same
	// person and route (any new policy, catalog or grant empties the cache at
	// once); default 1s. NoDecisionCache evaluates every request.
	DecisionCacheTTL time.Duration `yaml:"decision_cache_ttl"`
	NoDecisionCache  bool          `yaml:"no_decision_cache"`
	// Evaluator decides requests with "planned" (default: OPA's plan of
	// the policy, run by package policy/ireval, falling back to topdown for
	// a policy it cannot run) or "topdown" (OPA's reference evaluator only).
	Evaluator string `yaml:"evaluator"`
}

// BigIP is the device `backgate bigip` talks to.
type BigIP struct {
	URL                string   `yaml:"url"`
	Username           string   `yaml:"username"`
	Password           Secret   `yaml:"password"`
	Partition          string   `yaml:"partition"` // default Common
	CAFile             string   `yaml:"ca_file"`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`
	Virtuals           []string `yaml:"virtual_servers"`
	DefaultPool        string   `yaml:"default_pool"` // "" = deny when no route matches
	ReplayProtection   bool     `yaml:"replay_protection"`
}

// Log is the process log.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // json (default) or text
}

// Secret is a value read from a file or an environment variable, never inline.
type Secret struct {
	File string `yaml:"file"`
	Env  string `yaml:"env"`
}

// IsZero reports whether no source was given.
func (s Secret) IsZero() bool { return s.File == "" && s.Env == "" }

// UnmarshalYAML refuses inline scalars with a message saying what to write instead.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return fmt.Errorf("line %d: secrets are not written inline; use {file: PATH} or {env: VARIABLE}", n.Line)
	}
	type plain Secret
	var p plain
	if err := decodeStrict(n, &p); err != nil {
		return err
	}
	*s = Secret(p)
	return nil
}

// Read returns the secret's value, trimmed of surrounding white space.
func (s Secret) Read(getenv func(string) string) (string, error) {
	switch {
	case s.File != "" && s.Env != "":
		return "", errors.New("give file or env, not both")
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.File)
		}
		return v, nil
	case s.Env != "":
		v := strings.TrimSpace(getenv(s.Env))
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty or unset", s.Env)
		}
		return v, nil
	}
	return "", errors.New("no secret source")
}

func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// Parse decodes YAML strictly: unknown keys, duplicate keys and a second
// document are errors. It does not apply defaults or validate.
func Parse(r io.Reader) (*Config, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config: empty document")
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config: more than one YAML document")
	}
	return &c, nil
}

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: invalid configuration:\n%w", path, err)
	}
	return c, nil
}
