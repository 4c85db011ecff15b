package policy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestEvalPrintsReasonsAndTrace(t *testing.T) {
	e := newTestEngine(t, Options{})
	if err := e.SetCatalog(smallCatalog("r")); err != nil {
		t.Fatal(err)
	}
	in := req("bob", "component:default/petstore", "staging")
	var plain, explained bytes.Buffer
	d, err := Eval(context.Background(), e, in, false, &plain)
	if err != nil || !d.Allow {
		t.Fatalf("Eval: %+v %v", d, err)
	}
	for _, want := range []string{"ALLOW", "[staging_parent_group] bob is a member of dept-b", "user:default/bob"} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, plain.String())
		}
	}
	if strings.Contains(plain.String(), "trace") {
		t.Error("trace printed without explain")
	}
	if _, err := Eval(context.Background(), e, in, true, &explained); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(explained.String(), "Enter data.backgate.authz.decision") || !strings.Contains(explained.String(), "authz.rego:") {
		t.Errorf("explain output lacks a located trace:\n%.2000s", explained.String())
	}
}
