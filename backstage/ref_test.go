package backstage

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in, kind, ns string
		want         string
		wantErr      bool
	}{
		{in: "team-a", kind: "group", ns: "default", want: "group:default/team-a"},
		{in: "team-a", kind: "group", ns: "development", want: "group:development/team-a"},
		{in: "group:default/team-a", kind: "user", ns: "development", want: "group:default/team-a"},
		{in: "user:guest", kind: "group", ns: "development", want: "user:development/guest"},
		{in: "other/team-a", kind: "group", ns: "development", want: "group:other/team-a"},
		{in: "Group:Default/Team-A", kind: "", ns: "", want: "group:default/team-a"},
		{in: "team-a", kind: "group", ns: "", want: "group:default/team-a"},
		{in: "component:default/foo:bar", want: "component:default/foo:bar"},
		{in: "a/b:c", kind: "group", want: "group:a/b:c"},          // '/' before ':' => no kind
		{in: "k:ns/a/b", want: "k:ns/a/b"},                         // name keeps later '/'
		{in: "foo:bar", kind: "group", ns: "x", want: "foo:x/bar"}, // the trap Backstage documents
		{in: "", kind: "group", wantErr: true},
		{in: "team-a", kind: "", ns: "default", wantErr: true}, // no kind, no default kind
		{in: ":team-a", kind: "group", wantErr: true},          // empty kind
		{in: "group:/team-a", kind: "group", wantErr: true},    // empty namespace
		{in: "group:default/", kind: "group", wantErr: true},   // empty name
		{in: "group:", kind: "group", wantErr: true},
		{in: "/x", kind: "group", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRef(tt.in, tt.kind, tt.ns)
		if tt.wantErr {
			if err == nil || !errors.Is(err, ErrBadRef) {
				t.Errorf("ParseRef(%q,%q,%q) = %v, %v; want ErrBadRef", tt.in, tt.kind, tt.ns, got, err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseRef(%q,%q,%q) = %q, %v; want %q", tt.in, tt.kind, tt.ns, got, err, tt.want)
		}
	}
}

func TestValidateIdentity(t *testing.T) {
	tests := []struct {
		kind, ns, name string
		ok             bool
	}{
		{"Component", "default", "petstore", true},
		{"User", "development", "breanna.davison", true},
		{"User", "default", "a", true},
		{"User", "default", "a..b", false},
		{"User", "default", "-a", false},
		{"User", "default", strings.Repeat("a", 64), false},
		{"User", "Default", "a", false},
		{"User", "de_fault", "a", false},
		{"", "default", "a", false},
		{"1User", "default", "a", false},
		{"User", "default", "a b", false},
		{"User", "default", "a/b", false},
	}
	for _, tt := range tests {
		if err := validateIdentity(tt.kind, tt.ns, tt.name); (err == nil) != tt.ok {
			t.Errorf("validateIdentity(%q,%q,%q) = %v, want ok=%v", tt.kind, tt.ns, tt.name, err, tt.ok)
		}
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"team-a", "group:default/team-a", "a/b:c", ":", "/", "k:/n", "ü:ß/İ", "a:b:c/d/e"} {
		f.Add(s, "group", "default")
	}
	f.Fuzz(func(t *testing.T, s, kind, ns string) {
		r, err := ParseRef(s, kind, ns)
		if err != nil {
			return
		}
		if r.Kind == "" || r.Namespace == "" || r.Name == "" {
			t.Fatalf("ParseRef(%q) = %+v with an empty part", s, r)
		}
		if r.Kind != strings.ToLower(r.Kind) || r.Name != strings.ToLower(r.Name) || r.Namespace != strings.ToLower(r.Namespace) {
			t.Fatalf("ParseRef(%q) = %+v not lower-cased", s, r)
		}
		// A canonical ref re-parses to itself when kind and namespace hold no separators.
		if !strings.ContainsAny(r.Kind+r.Namespace, ":/") {
			r2, err := ParseRef(r.String(), "", "")
			if err != nil || r2 != r {
				t.Fatalf("round trip %q -> %+v -> %+v, %v", s, r, r2, err)
			}
		}
	})
}
