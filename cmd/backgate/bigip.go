package main

import (
	"context"
	"fmt"
	"github.com/backgate/backgate/cmd/internal/app"
	"os"
	"sort"
	"time"

	"github.com/backgate/backgate/bigip"
	"github.com/backgate/backgate/bigip/icontrol"
	"github.com/backgate/backgate/config"
	"github.com/backgate/backgate/proxy/signer"
)

func runBigIP(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "bigip", args, map[string]func(context.Context, *env, []string) error{
		"render": bigipRender,
		"plan":   func(ctx context.Context, e *env, a []string) error { return bigipSync(ctx, e, a, false) },
		"apply":  func(ctx context.Context, e *env, a []string) error { return bigipSync(ctx, e, a, true) },
	})
}

// desired computes what BIG-IP should have: the iRule for the configured
// options, the edge keys the proxy may sign with, and a pool per service
// and environment from the config routes and the catalog.
func desired(ctx context.Context, cfg *config.Config, e *env) (bigip.Desired, error) {
	kr, err := signer.OpenKeyring(signer.KeyringOptions{Dir: cfg.DataDir, Algorithm: cfg.Signing.Algorithm,
		EdgeKeyFiles: app.KeyFiles(cfg.Signing.EdgeKeys), JWTKeyFiles: app.KeyFiles(cfg.Signing.JWTKeys)})
	if err != nil {
		return bigip.Desired{}, fmt.Errorf("signing keys: %w", err)
	}
	cat, err := loadCatalog(ctx, cfg, e)
	if err != nil {
		return bigip.Desired{}, err
	}
	targets := map[string]bigip.RouteTarget{}
	add := func(service, env, pool string) {
		if pool != "" {
			targets[bigip.RouteKey(service, env)] = bigip.RouteTarget{Service: service, Environment: env, Pool: pool}
		}
	}
	for _, r := range cat.Routes() {
		add(r.Service, r.Environment, r.Pool)
	}
	for _, r := range cfg.Routes { // config wins
		add(qualify(r.Service, "component"), r.Environment, r.Pool)
	}
	var routes []bigip.RouteTarget
	for _, t := range targets {
		routes = append(routes, t)
	}
	sort.Slice(routes, func(i, j int) bool {
		return bigip.RouteKey(routes[i].Service, routes[i].Environment) < bigip.RouteKey(routes[j].Service, routes[j].Environment)
	})
	b := cfg.BigIP
	return bigip.BuildDesired(bigip.RuleOptions{Partition: b.Partition, DefaultPool: b.DefaultPool,
		ReplayProtection: b.ReplayProtection}, kr.EdgeVerifyKeys(), routes, b.Virtuals)
}

func bigipRender(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bigip render", "bigip render --config FILE --out DIR")
	cfgPath := fs.String("config", "", "configuration file (required)")
	out := fs.String("out", "", "directory for the iRule, data groups, tmsh merge file and AS3 fragment (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errUsage
	}
	cfg, err := requiredConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	d, err := desired(ctx, cfg, e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	if err := bigip.WriteFiles(*out, d); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "wrote the iRule, data groups (%d keys), tmsh merge file and AS3 fragment to %s (mode 0600: they hold keys)\n",
		len(d.DataGroups[0].Records), *out)
	return nil
}

func dialBigIP(ctx context.Context, cfg *config.Config, e *env) (*icontrol.Client, error) {
	b := cfg.BigIP
	if b.URL == "" {
		return nil, fmt.Errorf("bigip.url: required for this command")
	}
	pw, err := b.Password.Read(e.Getenv)
	if err != nil {
		return nil, fmt.Errorf("bigip.password: %w", err)
	}
	return icontrol.Dial(ctx, icontrol.Options{URL: b.URL, Username: b.Username, Password: pw, CAFile: b.CAFile,
		InsecureSkipVerify: b.InsecureSkipVerify, Partition: b.Partition})
}

func bigipSync(ctx context.Context, e *env, args []string, apply bool) error {
	verb := "plan"
	if apply {
		verb = "apply"
	}
	fs := newFlags(e, "bigip "+verb, "bigip "+verb+" --config FILE")
	cfgPath := fs.String("config", "", "configuration file (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := requiredConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	d, err := desired(ctx, cfg, e)
	if err != nil {
		return err
	}
	c, err := dialBigIP(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var p icontrol.Plan
	if apply {
		p, err = c.Apply(ctx, d)
	} else {
		p, err = c.Plan(ctx, d)
	}
	if err != nil {
		return err
	}
	if err := p.Write(e.Stdout); err != nil {
		return err
	}
	if p.Empty() {
		fmt.Fprintln(e.Stdout, "BIG-IP is in sync: nothing to change.")
	} else if apply {
		fmt.Fprintln(e.Stdout, "applied.")
	}
	return nil
}

func runKeys(ctx context.Context, e *env, args []string) error {
	return subcommand(ctx, e, "keys", args, map[string]func(context.Context, *env, []string) error{
		"rotate": keysRotate,
	})
}

func keysRotate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "keys rotate", "keys rotate --config FILE [--finish] [--propagation 2m]")
	cfgPath := fs.String("config", "", "configuration file (required)")
	finish := fs.Bool("finish", false, "only remove keys whose retirement time has passed from BIG-IP")
	prop := fs.Duration("propagation", 2*time.Minute, "wait before the new key signs, so every replica has loaded it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := requiredConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	if len(cfg.Signing.EdgeKeys) > 0 {
		return fmt.Errorf("signing.edge_keys: keys from files are rotated by replacing the files; keys rotate manages generated keys in data_dir")
	}
	kr, err := signer.OpenKeyring(signer.KeyringOptions{Dir: cfg.DataDir, Algorithm: cfg.Signing.Algorithm})
	if err != nil {
		return err
	}
	c, err := dialBigIP(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	o := icontrol.RotateOptions{PropagationDelay: *prop, MaxTokenLifetime: max(cfg.Signing.EdgeTTL, cfg.Signing.AssertionTTL),
		Skew: 30 * time.Second}
	store := edgeStore{kr.EdgeStore()}
	var res icontrol.RotateResult
	if *finish {
		res, err = icontrol.FinishRotation(ctx, c, store, o)
	} else {
		res, err = icontrol.Rotate(ctx, c, store, o)
	}
	if err != nil {
		return err
	}
	if res.NewKeyID != "" {
		fmt.Fprintf(e.Stdout, "new edge key %s is on BIG-IP; backgate signs with it from %s\n", res.NewKeyID, res.ActivateAt.Format(time.RFC3339))
	}
	for _, r := range res.Retiring {
		fmt.Fprintf(e.Stdout, "key %s retires at %s; run `backgate keys rotate --finish` after that\n", r.ID, r.At.Format(time.RFC3339))
	}
	fmt.Fprintf(e.Stdout, "keys on BIG-IP: %v\n", res.Published)
	return nil
}

// edgeStore adapts the signer's key store to the rotation code's interface.
type edgeStore struct{ s *signer.FileKeyStore }

func (a edgeStore) List() ([]icontrol.KeyState, error) {
	l, err := a.s.List()
	out := make([]icontrol.KeyState, len(l))
	for i, k := range l {
		out[i] = icontrol.KeyState(k)
	}
	return out, err
}

func (a edgeStore) Add(at time.Time) (icontrol.KeyState, error) {
	k, err := a.s.Add(at)
	return icontrol.KeyState(k), err
}

func (a edgeStore) Retire(id string, at time.Time) error { return a.s.Retire(id, at) }
