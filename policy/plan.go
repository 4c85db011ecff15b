package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	opacompile "github.com/open-policy-agent/opa/v1/compile"

	"github.com/backgate/backgate/policy/ireval"
)

// plannedDecisions plans the decision query; the string is how decisions
// are then evaluated: "planned", or "topdown (reason)" with a nil program
// when the planned evaluator cannot run the policy.
func plannedDecisions(src *source) (*ireval.Program, string) {
	prog, err := planQuery(context.Background(), src, DecisionQuery)
	if err != nil {
		return nil, "topdown (" + err.Error() + ")"
	}
	return prog, "planned"
}

// planQuery plans query (a data ref such as data.backgate.authz.decision)
// with OPA's planner and compiles the plan for ireval. ireval.ErrUnsupported
// means the policy uses something only topdown evaluates; any error leaves
// the query to topdown, which remains the reference evaluator.
func planQuery(ctx context.Context, src *source, query string) (prog *ireval.Program, err error) {
	defer func() {
		if r := recover(); r != nil { // the planner is not the reference evaluator: never let it take a reload down
			prog, err = nil, fmt.Errorf("policy: plan %s: planner panic: %v", query, r)
		}
	}()
	entry := strings.ReplaceAll(strings.TrimPrefix(query, "data."), ".", "/")
	b := &bundle.Bundle{Data: map[string]any{}}
	names := make([]string, 0, len(src.rego))
	for name := range src.rego {
		if !isTestFile(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		m, err := ast.ParseModuleWithOpts(name, string(src.rego[name]), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("policy: plan %s: parse %s: %w", query, name, err)
		}
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: name, Path: name, Raw: src.rego[name], Parsed: m})
	}
	caps := Capabilities()
	c := opacompile.New().
		WithTarget(opacompile.TargetPlan).
		WithEntrypoints(entry).
		WithBundle(b).
		WithRegoVersion(ast.RegoV1).
		WithCapabilities(caps)
	if err := c.Build(ctx); err != nil {
		return nil, fmt.Errorf("policy: plan %s: %w", query, err)
	}
	out := c.Bundle()
	if out == nil || len(out.PlanModules) != 1 {
		return nil, fmt.Errorf("policy: plan %s: planner produced no plan", query)
	}
	if prog, err = ireval.Compile(out.PlanModules[0].Raw, entry, caps); err != nil {
		return nil, fmt.Errorf("policy: plan %s: %w", query, err)
	}
	return prog, nil
}
