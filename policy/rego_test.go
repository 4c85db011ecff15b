package policy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedRegoTests runs rego/*_test.rego with coverage and fails below 90%.
func TestShippedRegoTests(t *testing.T) {
	var out bytes.Buffer
	sum, err := Test(context.Background(), "", &out, 90)
	t.Logf("rego tests: %d passed, %.1f%% coverage", sum.Passed, sum.Coverage)
	if err != nil {
		t.Fatalf("Test: %v\n%s", err, out.String())
	}
	if sum.Passed < 20 || sum.Failed != 0 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestRegoTestFailuresAndCoverageGate(t *testing.T) {
	dir := writeDir(t)
	// A failing test is reported.
	p := filepath.Join(dir, "authz_test.rego")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, append(b, []byte("\ntest_wrong if decide(\"gina\", pet, \"prod\").allow\n")...), 0o644)
	var out bytes.Buffer
	_, err := Test(context.Background(), dir, &out, 0)
	if !errors.Is(err, ErrTestsFailed) || !strings.Contains(out.String(), "FAIL data.backgate.authz_test.test_wrong") {
		t.Fatalf("err %v, output:\n%s", err, out.String())
	}
	// Dropping the approval tests leaves approval.rego uncovered.
	os.WriteFile(p, b, 0o644)
	os.Remove(filepath.Join(dir, "approval_test.rego"))
	out.Reset()
	sum, err := Test(context.Background(), dir, &out, 90)
	if !errors.Is(err, ErrCoverageTooLow) || sum.Coverage >= 90 {
		t.Fatalf("err %v coverage %.1f, want ErrCoverageTooLow", err, sum.Coverage)
	}
}

func TestCheckShipped(t *testing.T) {
	if err := Check(""); err != nil {
		t.Fatal(err)
	}
}
