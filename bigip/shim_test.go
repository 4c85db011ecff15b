package bigip

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// This file drives testdata/irule_shim.tcl: a real tclsh that runs the
// rendered iRule against described requests, one batch per tclsh process.

// shimResult is one "RESULT {json}" line of the shim.
type shimResult struct {
	Name           string   `json:"name"`
	Outcome        string   `json:"outcome"` // pool, respond, error or none
	Status         int      `json:"status"`
	Pool           string   `json:"pool"`
	Headers        []string `json:"headers"` // name, value, name, value, ... after the rule ran
	Logs           []string `json:"logs"`
	EventsDisabled string   `json:"events_disabled"`
	Violations     []string `json:"violations"`
	Error          string   `json:"error"`
}

// header returns the values of name (case-insensitive) after the rule ran.
func (r shimResult) header(name string) []string {
	var out []string
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if strings.EqualFold(r.Headers[i], name) {
			out = append(out, r.Headers[i+1])
		}
	}
	return out
}

// reason returns the reason of the rule's deny log line, or "".
func (r shimResult) reason() string {
	for _, l := range r.Logs {
		if _, after, ok := strings.Cut(l, " deny reason="); ok {
			reason, _, _ := strings.Cut(after, " ")
			return reason
		}
	}
	return ""
}

// requireTclsh returns the path of tclsh, or skips loudly (fails when
// BACKGATE_REQUIRE_TCLSH=1).
func requireTclsh(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("tclsh")
	if err != nil {
		if os.Getenv("BACKGATE_REQUIRE_TCLSH") == "1" {
			t.Fatalf("tclsh not found but BACKGATE_REQUIRE_TCLSH=1: %v", err)
		}
		t.Skip("!!! SKIPPING iRule tests: tclsh not found (apt-get install tcl); set BACKGATE_REQUIRE_TCLSH=1 to make this a failure !!!")
	}
	return p
}

// tclWord quotes s as one Tcl word, byte for byte: each byte outside
// [A-Za-z0-9] is backslash-escaped (printable ASCII) or written as \u00XX,
// which the shim reads as the character standing for that byte.
func tclWord(s string) string {
	if s == "" {
		return "{}"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			b.WriteByte(c)
		case c > ' ' && c < 0x7f:
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\u%04x`, c)
		}
	}
	return b.String()
}

func tclList(items ...string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = tclWord(s)
	}
	return "[list " + strings.Join(q, " ") + "]"
}

// shimScript builds the script the shim evaluates.
type shimScript struct {
	b     strings.Builder
	names []string
}

func (s *shimScript) now(t time.Time) { fmt.Fprintf(&s.b, "now %d\n", t.Unix()) }

func (s *shimScript) dataGroup(path string, recs []Record) {
	kv := make([]string, 0, 2*len(recs))
	for _, r := range recs {
		kv = append(kv, r.Name, r.Data)
	}
	fmt.Fprintf(&s.b, "datagroup %s %s\n", tclWord(path), tclList(kv...))
}

func (s *shimScript) pools(p ...string) { fmt.Fprintf(&s.b, "pools %s\n", tclList(p...)) }

// request adds a request; headers are name, value pairs.
func (s *shimScript) request(name string, headers ...string) {
	s.names = append(s.names, name)
	fmt.Fprintf(&s.b, "request %s %s\n", tclWord(name), tclList(headers...))
}

func (s *shimScript) lint() { s.b.WriteString("lint\n") }

// runShim runs rule and script in one tclsh and returns the results by name,
// plus the LINT violations if the script asked for them.
func runShim(t testing.TB, rule string, s *shimScript) (map[string]shimResult, []string) {
	t.Helper()
	tclsh := requireTclsh(t)
	dir := t.TempDir()
	rf := filepath.Join(dir, "rule.tcl")
	sf := filepath.Join(dir, "script.tcl")
	if err := os.WriteFile(rf, []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sf, []byte(s.b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tclsh, filepath.Join("testdata", "irule_shim.tcl"), rf, sf)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tclsh shim: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	results := map[string]shimResult{}
	var lint []string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "RESULT "):
			var r shimResult
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "RESULT ")), &r); err != nil {
				t.Fatalf("shim result %q: %v", line, err)
			}
			if _, dup := results[r.Name]; dup {
				t.Fatalf("duplicate case name %q", r.Name)
			}
			results[r.Name] = r
		case strings.HasPrefix(line, "LINT "):
			var l struct {
				Violations []string `json:"violations"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "LINT ")), &l); err != nil {
				t.Fatalf("shim lint %q: %v", line, err)
			}
			lint = l.Violations
		default:
			t.Fatalf("unexpected shim output line %q", line)
		}
	}
	for _, n := range s.names {
		if _, ok := results[n]; !ok {
			t.Fatalf("no result for case %q; stderr:\n%s", n, stderr.String())
		}
	}
	return results, lint
}
