package backstage

import (
	"encoding/json"
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Entity kinds this package understands (lower-case, as in refs).
const (
	KindUser      = "user"
	KindGroup     = "group"
	KindComponent = "component"
	KindSystem    = "system"
	KindDomain    = "domain"
	KindResource  = "resource"
	KindAPI       = "api"
	KindLocation  = "location"
)

// Entity is one catalog entity, reduced to the fields backgate uses. Unknown
// fields (links, definition, ...) are dropped when decoding.
type Entity struct {
	APIVersion string     `json:"apiVersion" yaml:"apiVersion"`
	Kind       string     `json:"kind" yaml:"kind"`
	Metadata   Metadata   `json:"metadata" yaml:"metadata"`
	Spec       Spec       `json:"spec" yaml:"spec"`
	Relations  []Relation `json:"relations,omitempty" yaml:"relations,omitempty"`
}

// Metadata is the entity envelope's metadata.
type Metadata struct {
	Name        string            `json:"name" yaml:"name"`
	Namespace   string            `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Title       string            `json:"title,omitempty" yaml:"title,omitempty"`
	UID         string            `json:"uid,omitempty" yaml:"uid,omitempty"`
	Etag        string            `json:"etag,omitempty" yaml:"etag,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Tags        StringList        `json:"tags,omitempty" yaml:"tags,omitempty"`
}

// Spec holds the spec fields of all supported kinds.
type Spec struct {
	Type      string     `json:"type,omitempty" yaml:"type,omitempty"`
	Lifecycle string     `json:"lifecycle,omitempty" yaml:"lifecycle,omitempty"`
	Owner     string     `json:"owner,omitempty" yaml:"owner,omitempty"`
	System    string     `json:"system,omitempty" yaml:"system,omitempty"`
	Domain    string     `json:"domain,omitempty" yaml:"domain,omitempty"`
	Profile   Profile    `json:"profile,omitzero" yaml:"profile,omitempty"`
	MemberOf  StringList `json:"memberOf,omitempty" yaml:"memberOf,omitempty"`
	Parent    string     `json:"parent,omitempty" yaml:"parent,omitempty"`
	Children  StringList `json:"children,omitempty" yaml:"children,omitempty"`
	Members   StringList `json:"members,omitempty" yaml:"members,omitempty"`
	// Location kind.
	Target  string     `json:"target,omitempty" yaml:"target,omitempty"`
	Targets StringList `json:"targets,omitempty" yaml:"targets,omitempty"`
}

// Profile is the User/Group profile.
type Profile struct {
	Email       string `json:"email,omitempty" yaml:"email,omitempty"`
	DisplayName string `json:"displayName,omitempty" yaml:"displayName,omitempty"`
}

// Relation is a computed relation as served by the Backstage REST API.
type Relation struct {
	Type      string `json:"type" yaml:"type"`
	TargetRef string `json:"targetRef" yaml:"targetRef"`
}

// Ref returns the entity's own canonical ref (namespace defaults to "default").
func (e *Entity) Ref() Ref {
	ns := e.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return Ref{Kind: strings.ToLower(e.Kind), Namespace: strings.ToLower(ns), Name: strings.ToLower(e.Metadata.Name)}
}

// refString is a best-effort ref for problem reports, valid or not.
func (e *Entity) refString() string {
	if e.Kind == "" && e.Metadata.Name == "" {
		return ""
	}
	return e.Ref().String()
}

// validate checks the envelope.
func (e *Entity) validate() error {
	if e.APIVersion == "" {
		return fmt.Errorf("missing apiVersion")
	}
	ns := e.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return validateIdentity(e.Kind, ns, e.Metadata.Name)
}

// StringList is a list of strings that also accepts a single scalar.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				return fmt.Errorf("line %d: list item must be a string", c.Line)
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: expected a string or a list of strings", n.Line)
}

// UnmarshalJSON accepts a string or an array of strings.
func (l *StringList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = StringList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return fmt.Errorf("expected a string or a list of strings: %w", err)
	}
	*l = ss
	return nil
}
