package backstage

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Route annotations on Component entities (backgate's own prefix).
const (
	AnnotationHosts       = "backgate.io/hosts"       // comma-separated host names
	AnnotationEnvironment = "backgate.io/environment" // e.g. dev, staging, prod
	AnnotationUpstream    = "backgate.io/upstream"    // http(s)://host[:port][/path]
	AnnotationBigIPPool   = "backgate.io/bigip-pool"  // e.g. /Common/payments_staging
	AnnotationPathPrefix  = "backgate.io/path-prefix" // default "/"
)

// AnnotatedRoute is a route declared by a Component's backgate.io/
// annotations, one per host. The integrator converts it to the proxy's route
// type.
type AnnotatedRoute struct {
	Name        string // "<namespace>/<name>@<host>[<path-prefix>]", unique per route
	Host        string // lower-case, no port
	PathPrefix  string // starts with "/"
	Upstream    string
	Service     string // entity ref, e.g. component:default/petstore
	Environment string
	Pool        string // BIG-IP pool, may be empty
}

// RouteOptions configure route derivation.
//
// The environment is backgate.io/environment when set; otherwise the
// component's spec.lifecycle looked up in LifecycleEnvironments (default
// {"production": "prod"}); otherwise DefaultEnvironment (default "dev").
type RouteOptions struct {
	LifecycleEnvironments map[string]string
	DefaultEnvironment    string
}

var (
	hostLabelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	poolRE      = regexp.MustCompile(`^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$`)
)

func (o RouteOptions) normalise() (RouteOptions, error) {
	if o.LifecycleEnvironments == nil {
		o.LifecycleEnvironments = map[string]string{"production": "prod"}
	}
	if o.DefaultEnvironment == "" {
		o.DefaultEnvironment = "dev"
	}
	m := make(map[string]string, len(o.LifecycleEnvironments))
	for k, v := range o.LifecycleEnvironments {
		v = strings.ToLower(v)
		if !envRE.MatchString(v) {
			return o, fmt.Errorf("backstage: route lifecycle environment %q for lifecycle %q is not a valid environment name", v, k)
		}
		m[strings.ToLower(k)] = v
	}
	o.LifecycleEnvironments = m
	o.DefaultEnvironment = strings.ToLower(o.DefaultEnvironment)
	if !envRE.MatchString(o.DefaultEnvironment) {
		return o, fmt.Errorf("backstage: default route environment %q is not a valid environment name", o.DefaultEnvironment)
	}
	return o, nil
}

func validHost(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabelRE.MatchString(l) {
			return false
		}
	}
	return true
}

func validUpstream(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("missing host")
	case u.User != nil:
		return fmt.Errorf("credentials are not allowed in the URL")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("query and fragment are not allowed")
	}
	return nil
}

func validPrefix(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t\r\n?#%\\") {
		return false
	}
	c := path.Clean(p)
	return c == p || c+"/" == p
}

// buildRoutes derives routes from components' annotations. Conflicting claims
// on one host+prefix are resolved in favour of the lexicographically smallest
// entity ref; the others are reported.
func (b *builder) buildRoutes(o RouteOptions) []AnnotatedRoute {
	claims := map[string][]AnnotatedRoute{}
	for _, ref := range b.order { // sorted, so claims lists are sorted by Service
		comp, ok := b.c.components[ref]
		if !ok {
			continue
		}
		a := comp.Annotations
		hosts := strings.TrimSpace(a[AnnotationHosts])
		if hosts == "" {
			for _, k := range []string{AnnotationUpstream, AnnotationBigIPPool, AnnotationPathPrefix, AnnotationEnvironment} {
				if _, set := a[k]; set {
					b.problem(ref, "%s is set but %s is empty: no route", k, AnnotationHosts)
					break
				}
			}
			continue
		}
		up := strings.TrimSpace(a[AnnotationUpstream])
		if up == "" {
			b.problem(ref, "skipped routes: %s is required with %s", AnnotationUpstream, AnnotationHosts)
			continue
		}
		if err := validUpstream(up); err != nil {
			b.problem(ref, "skipped routes: %s %q: %v", AnnotationUpstream, up, err)
			continue
		}
		prefix := strings.TrimSpace(a[AnnotationPathPrefix])
		if prefix == "" {
			prefix = "/"
		}
		if !validPrefix(prefix) {
			b.problem(ref, "skipped routes: %s %q must be a clean absolute path", AnnotationPathPrefix, prefix)
			continue
		}
		pool := strings.TrimSpace(a[AnnotationBigIPPool])
		if pool != "" && !poolRE.MatchString(pool) {
			b.problem(ref, "skipped routes: %s %q must look like /Partition/name", AnnotationBigIPPool, pool)
			continue
		}
		env := strings.ToLower(strings.TrimSpace(a[AnnotationEnvironment]))
		if env == "" {
			env = o.LifecycleEnvironments[strings.ToLower(comp.Lifecycle)]
		}
		if env == "" {
			env = o.DefaultEnvironment
		}
		if !envRE.MatchString(env) {
			b.problem(ref, "skipped routes: %s %q is not a valid environment name", AnnotationEnvironment, env)
			continue
		}
		seen := map[string]bool{}
		for _, h := range strings.Split(hosts, ",") {
			h = strings.ToLower(strings.TrimSpace(h))
			if h == "" || seen[h] {
				continue
			}
			seen[h] = true
			if !validHost(h) {
				b.problem(ref, "%s: %q is not a valid host name (ignored)", AnnotationHosts, h)
				continue
			}
			name := comp.Namespace + "/" + comp.Name + "@" + h
			if prefix != "/" {
				name += prefix
			}
			key := h + " " + prefix
			claims[key] = append(claims[key], AnnotatedRoute{Name: name, Host: h, PathPrefix: prefix,
				Upstream: up, Service: ref, Environment: env, Pool: pool})
		}
	}
	out := make([]AnnotatedRoute, 0, len(claims))
	for _, cs := range claims {
		out = append(out, cs[0])
		for _, lost := range cs[1:] {
			b.problem(lost.Service, "route conflict: host %q path prefix %q is also claimed by %s, which wins (smallest ref)",
				lost.Host, lost.PathPrefix, cs[0].Service)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].PathPrefix < out[j].PathPrefix
	})
	return out
}
