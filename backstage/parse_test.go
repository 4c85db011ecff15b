package backstage

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseDocuments(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantNames []string
		wantProbs []string // substrings, in order
	}{
		{name: "multi", in: "apiVersion: v1\nkind: User\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Group\nmetadata: {name: g}\nspec: {children: [x]}\n---\n",
			wantNames: []string{"a", "g"}},
		{name: "scalar memberOf accepted", in: "apiVersion: v1\nkind: User\nmetadata: {name: a}\nspec: {memberOf: team-a}\n", wantNames: []string{"a"}},
		{name: "bad doc skipped, next kept", in: "apiVersion: v1\nkind: User\nmetadata: {name: [x]}\n---\napiVersion: v1\nkind: User\nmetadata: {name: b}\n",
			wantNames: []string{"b"}, wantProbs: []string{"document 1"}},
		{name: "invalid name", in: "apiVersion: v1\nkind: User\nmetadata: {name: 'a b'}\n", wantProbs: []string{`invalid metadata.name "a b"`}},
		{name: "missing apiVersion", in: "kind: User\nmetadata: {name: a}\n", wantProbs: []string{"missing apiVersion"}},
		{name: "syntax error ends stream", in: "apiVersion: v1\nkind: User\nmetadata: {name: a}\n---\nkey: [unclosed\n---\napiVersion: v1\nkind: User\nmetadata: {name: c}\n",
			wantNames: []string{"a"}, wantProbs: []string{"document 2: invalid YAML"}},
		{name: "scalar document", in: "just a string\n", wantProbs: []string{"document 1"}},
		{name: "list of lists in members", in: "apiVersion: v1\nkind: Group\nmetadata: {name: g}\nspec: {members: [[a]]}\n", wantProbs: []string{"list item must be a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ents, probs := ParseDocuments([]byte(tt.in), "f.yaml")
			var names []string
			for _, e := range ents {
				names = append(names, e.Metadata.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.wantNames, ",") {
				t.Errorf("names = %v, want %v", names, tt.wantNames)
			}
			if len(probs) != len(tt.wantProbs) {
				t.Fatalf("problems = %v, want %d", probs, len(tt.wantProbs))
			}
			for i, p := range probs {
				if !strings.Contains(p.Message, tt.wantProbs[i]) || p.Source != "f.yaml" {
					t.Errorf("problem %d = %+v, want message containing %q", i, p, tt.wantProbs[i])
				}
			}
		})
	}
}

func FuzzParseDocuments(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: User\nmetadata: {name: a, annotations: {x: 1}}\nspec: {memberOf: [g], profile: {email: A@B}}\n---\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("apiVersion: v1\nkind: Location\nmetadata: {name: l}\nspec: {targets: ../x.yaml, target: {a: 1}}\n"))
	f.Add([]byte("--- !!binary AAAA\n--- ~\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ents, probs := ParseDocuments(data, "fuzz.yaml")
		for _, e := range ents {
			if e.validate() != nil {
				t.Fatalf("invalid entity returned: %+v", e)
			}
		}
		for _, p := range probs {
			if strings.HasPrefix(p.Message, "YAML decoder failure") {
				t.Fatalf("decoder panicked: %s", p.Message)
			}
		}
		// Whatever parsed must build without panicking.
		_, _ = Build(&Snapshot{Entities: ents}, BuildOptions{})
	})
}

func TestFileSourceLocations(t *testing.T) {
	loc := func(name string, targets ...string) string {
		return "apiVersion: v1\nkind: Location\nmetadata: {name: " + name + "}\nspec:\n  targets: [" + strings.Join(targets, ", ") + "]\n"
	}
	user := func(name string) string { return "apiVersion: v1\nkind: User\nmetadata: {name: " + name + "}\n" }
	fsys := fstest.MapFS{
		"root.yaml":         {Data: []byte(loc("root", "./sub/a.yaml", "sub/b.yaml", "../escape.yaml", "https://example.com/x.yaml", "/etc/passwd", "./missing.yaml", "./glob/*.yaml"))},
		"sub/a.yaml":        {Data: []byte(user("ua") + "---\n" + loc("a", "../root.yaml", "b.yaml"))}, // cycle back to root, diamond to b
		"sub/b.yaml":        {Data: []byte(user("ub"))},
		"glob/g1.yaml":      {Data: []byte(user("g1"))},
		"glob/g2.yaml":      {Data: []byte(user("g2"))},
		"unreferenced.yaml": {Data: []byte(user("nope"))},
	}
	snap, err := (&FileSource{FS: fsys, Roots: []string{"root.yaml"}, Name: "t", Now: fixedNow}).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, e := range snap.Entities {
		if e.Kind == "User" {
			users = append(users, e.Metadata.Name)
		}
	}
	if strings.Join(users, ",") != "ua,ub,g1,g2" {
		t.Errorf("users = %v (each file once, in walk order)", users)
	}
	wants := []string{`"../escape.yaml" escapes the catalog root`, `"https://example.com/x.yaml": absolute paths and remote URLs`,
		`"/etc/passwd": absolute paths`, `target "missing.yaml"`, `location cycle: "root.yaml" includes itself`}
	for _, w := range wants {
		found := false
		for _, p := range snap.Problems {
			found = found || strings.Contains(p.Message, w)
		}
		if !found {
			t.Errorf("no problem containing %q in %v", w, snap.Problems)
		}
	}
	if len(snap.Problems) != len(wants) {
		t.Errorf("problems = %d, want %d: %v", len(snap.Problems), len(wants), snap.Problems)
	}
	if !snap.FetchedAt.Equal(t0) {
		t.Errorf("FetchedAt = %v", snap.FetchedAt)
	}
	if _, err := (&FileSource{FS: fsys, Roots: []string{"nothing-*.yaml"}}).Fetch(context.Background()); err == nil {
		t.Error("root matching nothing: want error")
	}
	if _, err := (&FileSource{FS: fsys, Roots: []string{"../x.yaml"}}).Fetch(context.Background()); err == nil {
		t.Error("escaping root: want error")
	}
}
