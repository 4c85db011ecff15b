package icontrol

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Action is what a Change does to an object.
type Action string

// Actions.
const (
	ActionCreate  Action = "create"
	ActionUpdate  Action = "update"
	ActionReplace Action = "replace" // delete and create, for a data group whose type changes
)

// Kind is the type of a BIG-IP object.
type Kind string

// Kinds of objects a Plan changes.
const (
	KindRule      Kind = "rule"
	KindDataGroup Kind = "data-group"
	KindVirtual   Kind = "virtual"
)

// RecordChange is one added, removed or changed data group record. Old and
// New are the record data, left empty when the group's data is secret
// (every group but bigip.RoutesDataGroup): only record names (key ids) are
// shown then.
type RecordChange struct {
	Name string
	Old  string
	New  string
}

// Change is one object to create or update. It never holds key material.
type Change struct {
	Kind   Kind
	Name   string // full path, e.g. /Common/backgate_routes
	Action Action

	// Rule: size and SHA-256 prefix of the old (empty on create) and new text.
	OldLines, NewLines int
	OldHash, NewHash   string

	// Data group.
	OldType, NewType string
	Added            []RecordChange
	Removed          []RecordChange
	Changed          []RecordChange
	Redacted         bool // record data hidden

	// Virtual server: its rules before and after.
	OldRules, NewRules []string
}

// Plan is the difference between a bigip.Desired and what the device has.
// It is empty when they are in sync.
type Plan struct {
	Partition string
	Changes   []Change
	// Notes are things seen but deliberately left alone, e.g. the iRule
	// attached to a virtual server that is not in Desired.Virtuals (it is
	// not detached: that would turn token checking off for it).
	Notes []string
}

// Empty reports whether nothing needs to change.
func (p Plan) Empty() bool { return len(p.Changes) == 0 }

// String is the human-readable plan, as written by Write.
func (p Plan) String() string {
	var b bytes.Buffer
	_ = p.Write(&b)
	return b.String()
}

// Write writes the plan for a person: one line per object, one indented
// line per record or rules change. Key material is never written.
func (p Plan) Write(w io.Writer) error {
	var b strings.Builder
	if p.Empty() {
		fmt.Fprintf(&b, "BIG-IP partition %s: in sync, nothing to change\n", p.Partition)
	} else {
		n := "changes"
		if len(p.Changes) == 1 {
			n = "change"
		}
		fmt.Fprintf(&b, "BIG-IP partition %s: %d %s\n", p.Partition, len(p.Changes), n)
	}
	for _, c := range p.Changes {
		writeChange(&b, c)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeChange(b *strings.Builder, c Change) {
	sign := "~"
	if c.Action == ActionCreate {
		sign = "+"
	} else if c.Action == ActionReplace {
		sign = "!"
	}
	switch c.Kind {
	case KindRule:
		if c.Action == ActionCreate {
			fmt.Fprintf(b, "%s rule %s: create (%d lines, sha256:%s)\n", sign, c.Name, c.NewLines, c.NewHash)
		} else {
			fmt.Fprintf(b, "%s rule %s: update text (%d -> %d lines, sha256:%s -> sha256:%s)\n", sign, c.Name, c.OldLines, c.NewLines, c.OldHash, c.NewHash)
		}
	case KindDataGroup:
		switch c.Action {
		case ActionCreate:
			fmt.Fprintf(b, "%s data-group %s: create, type %s, %s\n", sign, c.Name, c.NewType, plural(len(c.Added), "record"))
		case ActionReplace:
			fmt.Fprintf(b, "%s data-group %s: replace, type %s -> %s, +%d -%d ~%d records\n", sign, c.Name, c.OldType, c.NewType, len(c.Added), len(c.Removed), len(c.Changed))
		default:
			fmt.Fprintf(b, "%s data-group %s: update, +%d -%d ~%d records\n", sign, c.Name, len(c.Added), len(c.Removed), len(c.Changed))
		}
		for _, r := range c.Added {
			if c.Redacted {
				fmt.Fprintf(b, "    + %q (data redacted)\n", r.Name)
			} else {
				fmt.Fprintf(b, "    + %q = %q\n", r.Name, r.New)
			}
		}
		for _, r := range c.Removed {
			if c.Redacted {
				fmt.Fprintf(b, "    - %q\n", r.Name)
			} else {
				fmt.Fprintf(b, "    - %q (was %q)\n", r.Name, r.Old)
			}
		}
		for _, r := range c.Changed {
			if c.Redacted {
				fmt.Fprintf(b, "    ~ %q (data changed, redacted)\n", r.Name)
			} else {
				fmt.Fprintf(b, "    ~ %q: %q -> %q\n", r.Name, r.Old, r.New)
			}
		}
	case KindVirtual:
		fmt.Fprintf(b, "%s virtual %s: attach iRule\n", sign, c.Name)
		fmt.Fprintf(b, "    rules %s -> %s\n", list(c.OldRules), list(c.NewRules))
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func list(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, " ") + "]"
}
