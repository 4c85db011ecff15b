package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	shipped "github.com/backgate/backgate/rego"
)

// The Rego documents the engine evaluates.
const (
	// DecisionQuery decides every request.
	DecisionQuery = "data.backgate.authz.decision"
	// ApprovalQuery answers MayApprove.
	ApprovalQuery = "data.backgate.approval.result"
	// MaxDurationQuery is the per-environment maximum grant duration in
	// nanoseconds, read by MaxGrantDuration.
	MaxDurationQuery = "data.backgate.settings.max_grant_duration_ns"
)

// ErrNoPolicy means a policy source held no Rego module to serve.
var ErrNoPolicy = errors.New("policy: no Rego modules found")

// PolicyError is one problem in a policy source, located by file and line.
type PolicyError struct {
	File    string
	Line    int
	Code    string // OPA error code, e.g. rego_type_error
	Message string
}

func (e PolicyError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Code, e.Message)
}

// PolicyErrors lists every problem found in one compile; it is the error
// type New, Reload, Check and LastError report for a policy that does not
// parse or compile.
type PolicyErrors []PolicyError

func (es PolicyErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return fmt.Sprintf("policy: %d error(s):\n%s", len(es), strings.Join(lines, "\n"))
}

func toPolicyErrors(err error) error {
	var astErrs ast.Errors
	if errors.As(err, &astErrs) {
		out := make(PolicyErrors, 0, len(astErrs))
		for _, e := range astErrs {
			pe := PolicyError{Code: e.Code, Message: e.Message}
			if e.Location != nil {
				pe.File, pe.Line = e.Location.File, e.Location.Row
			}
			out = append(out, pe)
		}
		return out
	}
	var astErr *ast.Error
	if errors.As(err, &astErr) {
		pe := PolicyError{Code: astErr.Code, Message: astErr.Message}
		if astErr.Location != nil {
			pe.File, pe.Line = astErr.Location.File, astErr.Location.Row
		}
		return PolicyErrors{pe}
	}
	return err
}

// source is the raw content of a policy directory.
type source struct {
	label   string            // where it came from, for messages
	rego    map[string][]byte // file name -> content, *.rego (tests included)
	schemas map[string][]byte // schema name (file base without .json) -> content
}

// openSource returns the policy file system for dir ("" = the embedded,
// shipped policy) and a label for messages.
func openSource(dir string) (fs.FS, string) {
	if dir == "" {
		return shipped.FS(), "embedded"
	}
	return os.DirFS(dir), dir
}

// readSource reads *.rego from the root of fsys and schemas/*.json.
func readSource(fsys fs.FS, label string) (*source, error) {
	src := &source{label: label, rego: map[string][]byte{}, schemas: map[string][]byte{}}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("policy: read policy dir %q: %w", label, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".rego") {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("policy: read %s/%s: %w", label, e.Name(), err)
		}
		src.rego[e.Name()] = b
	}
	schemaEntries, err := fs.ReadDir(fsys, "schemas")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("policy: read %s/schemas: %w", label, err)
	}
	for _, e := range schemaEntries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join("schemas", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("policy: read %s/schemas/%s: %w", label, e.Name(), err)
		}
		src.schemas[strings.TrimSuffix(e.Name(), ".json")] = b
	}
	return src, nil
}

func isTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// revision hashes every serving module and schema, so it changes exactly when
// what is served changes.
func (s *source) revision() string {
	h := sha256.New()
	add := func(kind string, m map[string][]byte, skipTests bool) {
		names := make([]string, 0, len(m))
		for n := range m {
			if skipTests && isTestFile(n) {
				continue
			}
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(h, "%s\x00%s\x00%d\x00", kind, n, len(m[n]))
			h.Write(m[n])
		}
	}
	add("rego", s.rego, true)
	add("schema", s.schemas, false)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// parse parses the Rego modules (annotations processed, Rego v1); tests only
// when withTests is set.
func (s *source) parse(withTests bool) (map[string]*ast.Module, error) {
	mods := map[string]*ast.Module{}
	var errs ast.Errors
	for name, b := range s.rego {
		if !withTests && isTestFile(name) {
			continue
		}
		file := name
		if s.label != "embedded" {
			file = path.Join(s.label, name)
		}
		m, err := ast.ParseModuleWithOpts(file, string(b), ast.ParserOptions{
			ProcessAnnotation: true,
			RegoVersion:       ast.RegoV1,
		})
		if err != nil {
			var pe ast.Errors
			if errors.As(err, &pe) {
				errs = append(errs, pe...)
				continue
			}
			return nil, fmt.Errorf("policy: parse %s: %w", file, err)
		}
		mods[file] = m
	}
	if len(errs) > 0 {
		return nil, toPolicyErrors(errs)
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoPolicy, s.label)
	}
	return mods, nil
}

// schemaSet builds the schema set: schemas/input.json is the global input
// schema; every other file is schema.<name> for METADATA schemas annotations.
func (s *source) schemaSet() (*ast.SchemaSet, error) {
	ss := ast.NewSchemaSet()
	for name, b := range s.schemas {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("policy: schema %s/schemas/%s.json: %w", s.label, name, err)
		}
		if name == "input" {
			ss.Put(ast.SchemaRootRef, v)
			continue
		}
		ref, err := ast.ParseRef("schema." + name)
		if err != nil {
			return nil, fmt.Errorf("policy: schema file name %q is not a valid ref: %w", name, err)
		}
		ss.Put(ref, v)
	}
	return ss, nil
}

// Capabilities returns what policies may use: this OPA version's built-ins
// minus everything that reaches the network or the process environment, and
// minus time.now_ns (decisions use input.time, so they are reproducible).
func Capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	kept := caps.Builtins[:0]
	for _, b := range caps.Builtins {
		if forbiddenBuiltin(b.Name) {
			continue
		}
		kept = append(kept, b)
	}
	caps.Builtins = kept
	caps.AllowNet = []string{}
	return caps
}

func forbiddenBuiltin(name string) bool {
	switch {
	case name == "http.send", name == "opa.runtime", name == "time.now_ns",
		strings.HasPrefix(name, "net."),
		strings.HasPrefix(name, "providers.aws."),
		name == "io.jwt.decode_verify": // may fetch keys in some configurations
		return true
	}
	return false
}

// compile parses and strictly compiles a source; withTests adds *_test.rego.
func compile(src *source, withTests bool) (*ast.Compiler, map[string]*ast.Module, error) {
	mods, err := src.parse(withTests)
	if err != nil {
		return nil, nil, err
	}
	ss, err := src.schemaSet()
	if err != nil {
		return nil, nil, err
	}
	c := newCompiler(ss)
	c.Compile(mods)
	if c.Failed() {
		return nil, nil, toPolicyErrors(c.Errors)
	}
	return c, mods, nil
}

func newCompiler(ss *ast.SchemaSet) *ast.Compiler {
	return ast.NewCompiler().
		WithStrict(true).
		WithCapabilities(Capabilities()).
		WithSchemas(ss).
		WithUseTypeCheckAnnotations(true).
		WithDefaultRegoVersion(ast.RegoV1)
}
