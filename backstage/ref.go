package backstage

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DefaultNamespace is Backstage's default entity namespace.
const DefaultNamespace = "default"

// ErrBadRef is wrapped by every error ParseRef returns.
var ErrBadRef = errors.New("bad entity ref")

// Ref identifies an entity by the (kind, namespace, name) triplet. Refs
// produced by ParseRef and Entity.Ref are lower-cased, so they compare with ==.
type Ref struct {
	Kind      string
	Namespace string
	Name      string
}

// String returns the canonical form kind:namespace/name.
func (r Ref) String() string {
	return r.Kind + ":" + r.Namespace + "/" + r.Name
}

// IsZero reports whether r is the zero Ref.
func (r Ref) IsZero() bool { return r == Ref{} }

// ParseRef parses a string entity ref of the form [<kind>:][<namespace>/]<name>
// exactly like @backstage/catalog-model's parseEntityRef, then lower-cases all
// parts (Backstage compares refs case-insensitively).
//
// Rules (as in Backstage): a '/' before the first ':' means there is no kind
// part; the name is everything after the first ':' / '/' separators, so it may
// itself contain ':' or '/'. A missing kind takes defaultKind (an error if that
// is empty); a missing namespace takes defaultNamespace, or "default" when that
// is empty. Explicitly empty parts ("group:/x", ":x", "a/") are errors.
func ParseRef(s, defaultKind, defaultNamespace string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("%w: entity reference must not be empty", ErrBadRef)
	}
	colon := strings.IndexByte(s, ':')
	slash := strings.IndexByte(s, '/')
	if slash != -1 && slash < colon {
		colon = -1
	}
	var kind, ns string
	hasKind, hasNS := colon != -1, slash != -1
	if hasKind {
		kind = s[:colon]
	}
	if hasNS {
		ns = s[colon+1 : slash]
	}
	name := s[max(colon+1, slash+1):]
	if (hasKind && kind == "") || (hasNS && ns == "") || name == "" {
		return Ref{}, fmt.Errorf("%w: %q is not on the form [<kind>:][<namespace>/]<name>", ErrBadRef, s)
	}
	if !hasKind {
		kind = defaultKind
	}
	if !hasNS {
		ns = defaultNamespace
		if ns == "" {
			ns = DefaultNamespace
		}
	}
	if kind == "" {
		return Ref{}, fmt.Errorf("%w: %q has no kind (e.g. did not start with \"group:\" or similar)", ErrBadRef, s)
	}
	return Ref{Kind: strings.ToLower(kind), Namespace: strings.ToLower(ns), Name: strings.ToLower(name)}, nil
}

var (
	// Backstage FieldFormatEntityPolicy / KubernetesValidatorFunctions rules.
	nameRE      = regexp.MustCompile(`^([A-Za-z0-9][-_.]?)*[A-Za-z0-9]$`)
	namespaceRE = regexp.MustCompile(`^[a-z0-9]+(-+[a-z0-9]+)*$`)
	kindRE      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)
)

// validateIdentity checks an entity's own kind, namespace and name against
// Backstage's default validators (name 1-63 chars of [A-Za-z0-9] separated by
// single [-_.], namespace a DNS label, kind alphanumeric).
func validateIdentity(kind, namespace, name string) error {
	switch {
	case kind == "" || len(kind) > 63 || !kindRE.MatchString(kind):
		return fmt.Errorf("invalid kind %q", kind)
	case len(name) == 0 || len(name) > 63 || !nameRE.MatchString(name):
		return fmt.Errorf("invalid metadata.name %q", name)
	case len(namespace) > 63 || !namespaceRE.MatchString(namespace):
		return fmt.Errorf("invalid metadata.namespace %q", namespace)
	}
	return nil
}
