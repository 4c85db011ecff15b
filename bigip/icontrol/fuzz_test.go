package icontrol

import (
	"strings"
	"testing"
)

// The login and virtual list answers come from the network: their parsers
// must never panic, and what they accept must be safe to use.

func FuzzParseLoginResponse(f *testing.F) {
	f.Add([]byte(`{"token":{"token":"ABCDEF123","timeout":1200}}`))
	f.Add([]byte(`{"token":{"token":""}}`))
	f.Add([]byte(`{"token":null}`))
	f.Add([]byte(`{"token":{"token":"a b\r\nX-Evil: 1"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := parseLoginResponse(b)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q with error %v", tok, err)
			}
			return
		}
		if tok == "" || len(tok) > maxTokenLen || strings.ContainsAny(tok, " \r\n\t/?#%\x00") {
			t.Fatalf("accepted unsafe token %q", tok)
		}
	})
}

func FuzzParseVirtualList(f *testing.F) {
	f.Add([]byte(`{"items":[{"name":"vs","partition":"Common","fullPath":"/Common/vs","rules":["/Common/r"]}]}`))
	f.Add([]byte(`{"items":[{"name":"vs","partition":"Common"}]}`))
	f.Add([]byte(`{"items":[{"partition":"Common"}]}`))
	f.Add([]byte(`{"items":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := parseVirtualList(b)
		if err != nil {
			return
		}
		for _, v := range items {
			if v.Name == "" || v.FullPath == "" {
				t.Fatalf("accepted item without name or full path: %+v", v)
			}
		}
	})
}

func TestParseLoginResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"ok", `{"token":{"token":"ABC123","timeout":1200}}`, "ABC123"},
		{"top-level timeout ignored", `{"token":{"token":"T"},"timeout":{"timeout":5}}`, "T"},
		{"no token", `{"username":"admin"}`, ""},
		{"header injection", `{"token":{"token":"A\r\nB"}}`, ""},
		{"path traversal", `{"token":{"token":"../x"}}`, ""},
		{"not json", `<html>`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLoginResponse([]byte(tc.in))
			if got != tc.want || (tc.want == "") != (err != nil) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
