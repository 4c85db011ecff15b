package pages

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	r, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		tmpl     string
		page     Page
		status   int
		contains []string
		absent   []string
	}{
		{"denied with owners", "denied", Page{Status: 403, Title: "Access denied", User: "bob@example.com", Service: "component:default/petstore", Env: "staging", Owners: []string{"group:default/team-c"}, RequestID: "r1"},
			403, []string{"bob@example.com", "component:default/petstore", "group:default/team-c", "staging", "r1", "Ask the service"}, nil},
		{"escapes", "error", Page{Status: 502, Title: "Bad gateway", Message: `<script>alert(1)</script>`},
			502, []string{"&lt;script&gt;"}, []string{"<script>alert"}},
		{"action link", "denied", Page{Status: 403, ActionURL: "/_backgate/access/request?x=1", ActionText: "Request access"},
			403, []string{`id="request-access"`, "Request access"}, nil},
		{"logged out", "loggedout", Page{Title: "Signed out"}, 200, []string{"signed out of backgate"}, nil},
		{"no external assets", "denied", Page{Status: 403}, 403, nil, []string{"http://", "https://", "<script", "<link"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r.Render(w, tt.tmpl, tt.page)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			body := w.Body.String()
			for _, s := range tt.contains {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q", s)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(body, s) {
					t.Errorf("body contains %q", s)
				}
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Frame-Options") != "DENY" {
				t.Errorf("missing security headers: %v", w.Header())
			}
		})
	}
}
