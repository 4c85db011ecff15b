package policy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Check strictly compiles the policy in dir ("" = the shipped policy), tests
// included, with the input and catalog schemas. A problem is returned as
// PolicyErrors, each with file and line.
func Check(dir string) error {
	_, err := CheckEvaluator(dir)
	return err
}

// CheckEvaluator is Check, and also says how backgate would evaluate the
// policy's decisions: "planned", or "topdown (reason)" when the policy uses
// something the planned evaluator does not run (see docs/policy.md).
func CheckEvaluator(dir string) (string, error) {
	fsys, label := openSource(dir)
	src, err := readSource(fsys, label)
	if err != nil {
		return "", err
	}
	if _, _, err = compile(src, true); err != nil {
		return "", err
	}
	_, evaluator := plannedDecisions(src)
	return evaluator, nil
}

// TestSummary is the outcome of Test.
type TestSummary struct {
	Passed, Failed, Errored, Skipped int
	Coverage                         float64 // percent of policy (non-test) lines covered
	Uncovered                        []string
}

// ErrTestsFailed: at least one Rego test failed or errored.
var ErrTestsFailed = fmt.Errorf("policy: rego tests failed")

// ErrCoverageTooLow: the tests passed but cover less than the minimum.
var ErrCoverageTooLow = fmt.Errorf("policy: rego test coverage below minimum")

// Test runs the Rego tests (test_* rules in *_test.rego) in dir ("" = the
// shipped policy) like `opa test --coverage`, writes one line per test and a
// coverage summary to w, and fails when a test fails or the coverage of the
// serving (non-test) files is below minCoverage percent.
func Test(ctx context.Context, dir string, w io.Writer, minCoverage float64) (TestSummary, error) {
	var sum TestSummary
	fsys, label := openSource(dir)
	src, err := readSource(fsys, label)
	if err != nil {
		return sum, err
	}
	mods, err := src.parse(true)
	if err != nil {
		return sum, err
	}
	ss, err := src.schemaSet()
	if err != nil {
		return sum, err
	}
	cov := cover.New()
	store := inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true))
	runner := tester.NewRunner().
		SetCompiler(newCompiler(ss)).
		SetStore(store).
		SetModules(mods).
		SetCoverageQueryTracer(cov).
		SetDefaultRegoVersion(ast.RegoV1).
		SetParallel(1)
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return sum, fmt.Errorf("policy: run rego tests: %w", toPolicyErrors(err))
	}
	for r := range ch {
		name := r.Package + "." + r.Name
		switch {
		case r.Skip:
			sum.Skipped++
			fmt.Fprintf(w, "SKIP %s\n", name)
		case r.Error != nil:
			sum.Errored++
			fmt.Fprintf(w, "ERROR %s: %v\n", name, r.Error)
		case r.Fail:
			sum.Failed++
			fmt.Fprintf(w, "FAIL %s (%s:%d)\n", name, r.Location.File, r.Location.Row)
		default:
			sum.Passed++
			fmt.Fprintf(w, "PASS %s\n", name)
		}
	}
	policyMods := map[string]*ast.Module{}
	for name, m := range mods {
		if !isTestFile(name) {
			policyMods[name] = m
		}
	}
	report := cov.Report(policyMods)
	var covered, notCovered int
	files := make([]string, 0, len(policyMods))
	for f := range policyMods {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		fr := report.Files[f]
		if fr == nil {
			continue
		}
		covered += fr.CoveredLines
		notCovered += fr.NotCoveredLines
		fmt.Fprintf(w, "coverage %s: %.1f%%\n", f, fr.Coverage)
		for _, rng := range fr.NotCovered {
			loc := fmt.Sprintf("%s:%d-%d", f, rng.Start.Row, rng.End.Row)
			sum.Uncovered = append(sum.Uncovered, loc)
			fmt.Fprintf(w, "  not covered: %s\n", loc)
		}
	}
	if covered+notCovered > 0 {
		sum.Coverage = 100 * float64(covered) / float64(covered+notCovered)
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", sum.Passed, sum.Failed+sum.Errored)
	fmt.Fprintf(w, "coverage: %.1f%% (minimum %.1f%%)\n", sum.Coverage, minCoverage)
	if sum.Failed+sum.Errored > 0 {
		return sum, fmt.Errorf("%w: %d failed, %d errored", ErrTestsFailed, sum.Failed, sum.Errored)
	}
	if sum.Passed == 0 {
		return sum, fmt.Errorf("%w: no test_ rules found in %s", ErrTestsFailed, label)
	}
	if sum.Coverage < minCoverage {
		return sum, fmt.Errorf("%w: %.1f%% < %.1f%%", ErrCoverageTooLow, sum.Coverage, minCoverage)
	}
	return sum, nil
}

// Eval decides in with e and prints the decision, its reasons and rules to w;
// with explain it also prints the evaluation trace.
func Eval(ctx context.Context, e *Engine, in Input, explain bool, w io.Writer) (Decision, error) {
	var buf *topdown.BufferTracer
	var tracer topdown.QueryTracer
	if explain {
		buf = topdown.NewBufferTracer()
		tracer = buf
	}
	d, err := e.decide(ctx, in, tracer)
	verdict := "DENY"
	if d.Allow {
		verdict = "ALLOW"
	}
	fmt.Fprintf(w, "decision %s: %s\n", d.ID, verdict)
	fmt.Fprintf(w, "user: %s (sub %q, email %q)\n", orDash(d.UserRef), in.User.Subject, in.User.Email)
	fmt.Fprintf(w, "service: %s  environment: %s\n", in.Route.Service, in.Route.Environment)
	for i, r := range d.Reasons {
		rule := ""
		if i < len(d.Rules) {
			rule = d.Rules[i]
		}
		fmt.Fprintf(w, "  [%s] %s\n", rule, r)
	}
	if d.GrantID != "" {
		fmt.Fprintf(w, "grant: %s until %s\n", d.GrantID, d.GrantExpiry.Format("2006-01-02T15:04:05Z07:00"))
	}
	fmt.Fprintf(w, "policy revision: %s  catalog revision: %s\n", d.PolicyRevision, orDash(d.CatalogRevision))
	if err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
	}
	if explain {
		fmt.Fprintln(w, strings.Repeat("-", 20)+" trace "+strings.Repeat("-", 20))
		topdown.PrettyTraceWithLocation(w, *buf)
	}
	return d, err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
