package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/backgate/backgate/cmd/internal/app"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/backgate/backgate/backstage"
	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/policy"
	"github.com/backgate/backgate/proxy"
)

// toolConfig loads --config when given; without it the tools work on the
// embedded demo catalog and routes, so a security engineer can try policy
// changes with no set-up.
func toolConfig(path string) (*config.Config, error) {
	if path != "" {
		return config.Load(path)
	}
	c := &config.Config{Server: config.Server{ExternalURL: "http://backgate.demo.localhost:8080"},
		OIDC: config.OIDC{Issuer: "http://127.0.0.1:9000", ClientID: "tools"}}
	c.Defaults()
	return c, nil
}

// loadCatalog fetches the catalog once from the configured source.
func loadCatalog(ctx context.Context, cfg *config.Config, e *env) (*backstage.Catalog, error) {
	src, err := app.CatalogSource(cfg, e, app.Deps{Now: time.Now}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	snap, err := src.Fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return backstage.Build(snap, backstage.BuildOptions{
		Identity: backstage.IdentityOptions{UserMatch: cfg.Catalog.IdentityMapping},
		Routes:   backstage.RouteOptions{LifecycleEnvironments: cfg.Catalog.Environments},
	})
}

// allRoutes is the config routes plus the catalog's, as serve merges them.
func allRoutes(cfg *config.Config, c *backstage.Catalog) ([]proxy.Route, error) {
	rs, err := app.ConfigRoutes(cfg)
	if err != nil {
		return nil, err
	}
	if *cfg.Catalog.Routes {
		rs = app.MergeRoutes(slog.New(slog.DiscardHandler), rs, c.Routes(), nil, nil)
	}
	return rs, nil
}

func runPolicy(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "policy", args, map[string]func(context.Context, *env, []string) error{
		"test":  policyTest,
		"check": policyCheck,
		"eval":  policyEval,
	})
}

func policyTest(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "policy test", "policy test [--min-coverage 90] [DIR]  (DIR: default the shipped policy)")
	minCov := fs.Float64("min-coverage", 90, "fail below this percentage of policy lines covered by tests")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, err := policy.Test(ctx, fs.Arg(0), e.Stdout, *minCov) // prints the summary itself
	return err
}

func policyCheck(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "policy check", "policy check [DIR]  (DIR: default the shipped policy)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	evaluator, err := policy.CheckEvaluator(fs.Arg(0))
	if err != nil {
		return err
	}
	dir := fs.Arg(0)
	if dir == "" {
		dir = "the shipped policy"
	}
	fmt.Fprintf(e.Stdout, "%s: compiles strictly and type-checks against the input and catalog schemas\n", dir)
	fmt.Fprintf(e.Stdout, "decisions are evaluated by: %s\n", evaluator)
	return nil
}

func policyEval(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "policy eval", "policy eval --user EMAIL --url URL [--groups a,b] [--explain] [--config FILE] [--policy DIR]")
	user := fs.String("user", "", "the person's e-mail address (required)")
	rawURL := fs.String("url", "", "the URL they open (required)")
	groups := fs.String("groups", "", "comma-separated IdP groups")
	explain := fs.Bool("explain", false, "print the evaluation trace")
	cfgPath := fs.String("config", "", "configuration file (default: the embedded demo catalog)")
	dir := fs.String("policy", "", "policy directory (default: policy.dir from --config, else the shipped policy)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" || *rawURL == "" {
		fmt.Fprintln(e.Stderr, "backgate policy eval: --user and --url are required")
		fs.Usage()
		return errUsage
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--url %q: not an absolute URL", *rawURL)
	}
	cfg, err := toolConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *dir == "" {
		*dir = cfg.Policy.Dir
	}
	cat, err := loadCatalog(ctx, cfg, e)
	if err != nil {
		return err
	}
	eng, err := policy.New(policy.Options{PolicyDir: *dir})
	if err != nil {
		return err
	}
	if err := eng.SetCatalog(cat); err != nil {
		return err
	}
	routes, err := allRoutes(cfg, cat)
	if err != nil {
		return err
	}
	host := strings.ToLower(u.Hostname())
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	var rt *proxy.Route
	for i := range routes {
		r := &routes[i]
		p := strings.TrimSuffix(r.PathPrefix, "/")
		if r.Host == host && (p == "" || path == p || strings.HasPrefix(path, p+"/")) && (rt == nil || len(p) > len(rt.PathPrefix)) {
			rt = r
		}
	}
	if rt == nil {
		return fmt.Errorf("no route for %s (known hosts: %s)", *rawURL, routeHosts(routes))
	}
	in := policy.Input{
		User:    policy.User{Subject: *user, Email: strings.ToLower(*user), Groups: splitList(*groups)},
		Request: policy.Request{Method: "GET", Host: host, Path: path},
		Route:   policy.Route{Name: rt.Name, Host: rt.Host, PathPrefix: rt.PathPrefix, Service: rt.Service, Environment: rt.Environment},
		Time:    time.Now(),
	}
	fmt.Fprintf(e.Stdout, "route: %s -> %s (%s)\n", rt.Name, rt.Service, rt.Environment)
	d, err := policy.Eval(ctx, eng, in, *explain, e.Stdout)
	if err != nil {
		return err
	}
	if !d.Allow {
		return errDenied
	}
	return nil
}

// errDenied makes `policy eval` exit 1 on a deny, so scripts can branch.
var errDenied = errors.New("denied")

func routeHosts(rs []proxy.Route) string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rs {
		if !seen[r.Host] {
			seen[r.Host] = true
			out = append(out, r.Host)
		}
	}
	return strings.Join(out, ", ")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runCatalog(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "catalog", args, map[string]func(context.Context, *env, []string) error{
		"show": catalogShow,
	})
}

func catalogShow(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "catalog show", "catalog show [--config FILE] user|group|component|routes|problems [NAME]")
	cfgPath := fs.String("config", "", "configuration file (default: the embedded demo catalog)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	kind, name := fs.Arg(0), fs.Arg(1)
	needName := kind == "user" || kind == "group" || kind == "component"
	if kind == "" || needName && name == "" {
		fs.Usage()
		return errUsage
	}
	cfg, err := toolConfig(*cfgPath)
	if err != nil {
		return err
	}
	cat, err := loadCatalog(ctx, cfg, e)
	if err != nil {
		return err
	}
	var v any
	var ok bool
	switch kind {
	case "user":
		ref := qualify(name, "user")
		if v, ok = cat.User(ref); !ok {
			if r, found := cat.ResolveUser("", name, name); found {
				v, ok = cat.User(r)
			}
		}
	case "group":
		v, ok = cat.Group(qualify(name, "group"))
	case "component":
		v, ok = cat.Entity(qualify(name, "component"))
		if ok {
			var rs []backstage.AnnotatedRoute
			for _, r := range cat.Routes() {
				if r.Service == qualify(name, "component") {
					rs = append(rs, r)
				}
			}
			v = map[string]any{"entity": v, "routes": rs}
		}
	case "routes":
		v, ok = cat.Routes(), true
	case "problems":
		v, ok = cat.Problems(), true
	default:
		return fmt.Errorf("unknown kind %q: want user, group, component, routes or problems", kind)
	}
	if !ok {
		return fmt.Errorf("%s %q is not in the catalog (revision %s)", kind, name, cat.Revision())
	}
	return writeJSON(e.Stdout, v)
}

// qualify turns "alice" into "user:default/alice"; full refs pass through.
func qualify(name, kind string) string {
	r, err := backstage.ParseRef(name, kind, backstage.DefaultNamespace)
	if err != nil {
		return strings.ToLower(name)
	}
	return r.String()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
