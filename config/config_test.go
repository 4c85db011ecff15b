package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
server: {external_url: "https://backgate.corp.example"}
oidc: {issuer: "https://idp.corp.example", client_id: backgate, client_secret: {env: SECRET}}
routes:
  - {host: app.corp.example, upstream: "https://10.0.0.1", service: "component:default/app", environment: staging}
`

func load(t *testing.T, doc string) (*Config, error) {
	t.Helper()
	c, err := Parse(strings.NewReader(doc))
	if err != nil {
		return nil, err
	}
	c.Defaults()
	return c, c.Validate()
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("..", "configs", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 2 || c.Routes[1].Environment != "prod" || c.Routes[0].PathPrefix != "/" {
		t.Fatalf("routes not decoded: %+v", c.Routes)
	}
	if c.Signing.EdgeTTL != 2*time.Minute || c.Session.IdleTimeout != time.Hour {
		t.Fatalf("durations not decoded: %+v %+v", c.Signing, c.Session)
	}
}

func TestDefaults(t *testing.T) {
	c, err := load(t, minimal)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Server.Listen, ":8080"},
		{"cookie", c.Session.CookieName, "_backgate"},
		{"groups claim", c.OIDC.GroupsClaim, "groups"},
		{"alg", c.Signing.Algorithm, "ES256"},
		{"route name", c.Routes[0].Name, "app.corp.example"},
		{"logout", c.OIDC.LogoutURL, "https://backgate.corp.example/_backgate/logged-out"},
		{"mapping", strings.Join(c.Catalog.IdentityMapping, ","), "email,name"},
		{"idle conns", c.Upstream.MaxIdleConnsPerHost, 256},
		{"watch", *c.Policy.Watch, false},
		{"gc percent", c.Server.GCPercent, 400},
		{"memory limit", c.Server.MemoryLimitMB, 0},
		{"evaluator", c.Policy.Evaluator, "planned"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", minimal + "bogus: 1\n", "field bogus not found"},
		{"unknown nested key", strings.Replace(minimal, "client_id:", "clientid: x, client_id:", 1), "field clientid not found"},
		{"inline secret", strings.Replace(minimal, "{env: SECRET}", `"hunter2"`, 1), "secrets are not written inline"},
		{"unknown secret key", strings.Replace(minimal, "{env: SECRET}", `{value: x}`, 1), "field value not found"},
		{"two documents", minimal + "---\nserver: {}\n", "more than one YAML document"},
		{"empty", "", "empty document"},
		{"bad duration", minimal + "session: {lifetime: forever}\n", "forever"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateNamesFieldAndValue(t *testing.T) {
	tests := []struct {
		name, edit, want string
	}{
		{"upstream scheme", `upstream: "https://10.0.0.1"=>upstream: "ftp://x"`, `routes[0].upstream: "ftp://x" is not an http(s) URL`},
		{"host with port", `host: app.corp.example=>host: "app.corp.example:443"`, `routes[0].host: "app.corp.example:443" is not a lower-case host name`},
		{"bad service", `service: "component:default/app"=>service: "nope"`, `routes[0].service: "nope" is not a Backstage entity ref`},
		{"bad env", `environment: staging=>environment: "Prod!"`, `routes[0].environment: "Prod!"`},
		{"issuer", `issuer: "https://idp.corp.example"=>issuer: "http://idp.corp.example"`, `oidc.issuer: "http://idp.corp.example": plain http is only allowed for loopback`},
		{"no external url", `external_url: "https://backgate.corp.example"=>external_url: ""`, `server.external_url: required`},
		{"external url with path", `external_url: "https://backgate.corp.example"=>external_url: "https://x.example/a"`, `server.external_url: "https://x.example/a" must be an http(s) URL`},
		{"secret both", `{env: SECRET}=>{env: SECRET, file: /x}`, `oidc.client_secret: give file or env, not both`},
		{"secret env name", `{env: SECRET}=>{env: "A-B"}`, `oidc.client_secret.env: "A-B" is not an environment variable name`},
		{"alg none", `client_id: backgate=>client_id: backgate, allowed_algs: [none]`, `oidc.allowed_algs[0]: "none" is not an allowed signing algorithm`},
		{"no client id", `client_id: backgate=>client_id: ""`, `oidc.client_id: required`},
		{"gc percent", `external_url: "https://backgate.corp.example"=>external_url: "https://backgate.corp.example", gc_percent: 10`, `server.gc_percent: 10 must be -1 (off) or between 50 and 10000`},
		{"gc off without limit", `external_url: "https://backgate.corp.example"=>external_url: "https://backgate.corp.example", gc_percent: -1`, `server.gc_percent: -1 (off) needs server.memory_limit_mb`},
		{"memory limit", `external_url: "https://backgate.corp.example"=>external_url: "https://backgate.corp.example", memory_limit_mb: 8`, `server.memory_limit_mb: 8 must be 0 (no limit) or at least 64`},
		{"evaluator", "routes:=>policy: {evaluator: wasm}\nroutes:", `policy.evaluator: "wasm" must be planned or topdown`},
		{"strip header name", "routes:=>signing: {strip_headers: [\"X Remote User\"]}\nroutes:", `signing.strip_headers[0]: "X Remote User" is not an HTTP header name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to, _ := strings.Cut(tt.edit, "=>")
			if !strings.Contains(minimal, from) {
				t.Fatalf("edit %q does not apply", from)
			}
			_, err := load(t, strings.Replace(minimal, from, to, 1))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a FieldError", err)
			}
		})
	}
}

func TestValidateCollectsEveryError(t *testing.T) {
	doc := minimal + "log: {level: loud, format: xml}\nsigning: {assertion_ttl: 2h}\n"
	_, err := load(t, doc)
	for _, want := range []string{"log.level", "log.format", "signing.assertion_ttl"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want mention of %s", err, want)
		}
	}
}

func TestDuplicateRoute(t *testing.T) {
	doc := minimal + `  - {host: app.corp.example, upstream: "https://10.0.0.2", service: "component:default/b", environment: prod}` + "\n"
	_, err := load(t, doc)
	if err == nil || !strings.Contains(err.Error(), `routes[1].host: "app.corp.example" with path_prefix "/" is already routed by routes[0]`) {
		t.Fatalf("err = %v", err)
	}
}

func TestSecretRead(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "s")
	if err := os.WriteFile(f, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SET": "v", "EMPTY": " "}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name    string
		s       Secret
		want    string
		wantErr string
	}{
		{"file", Secret{File: f}, "s3cret", ""},
		{"env", Secret{Env: "SET"}, "v", ""},
		{"empty env", Secret{Env: "EMPTY"}, "", "EMPTY is empty or unset"},
		{"missing file", Secret{File: filepath.Join(dir, "nope")}, "", "no such file"},
		{"none", Secret{}, "", "no secret source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Read(getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(minimal)
	f.Add("routes: [{host: 1}]")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Parse(strings.NewReader(doc))
		if err != nil {
			return
		}
		c.Defaults()
		_ = c.Validate() // must not panic
	})
}
