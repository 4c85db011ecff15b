package access

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	acc "github.com/backgate/backgate/access"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestAPI(t *testing.T) {
	hs := newHarness(t)
	csrf := map[string]string{"alice": hs.apiCSRF("alice"), "bob": hs.apiCSRF("bob")}
	bot, reader := "bearer:"+botSecret, "bearer:"+readSecret
	create := func(env, dur, reason string) map[string]any {
		return map[string]any{"service": petstore, "environment": env, "duration": dur, "reason": reason}
	}
	with := func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m }
	type step struct {
		name         string
		method, auth string
		path         string
		body         any
		csrf         string
		status       int
		code         string           // for errors
		msg          string           // part of the error message
		op, actor    string           // the service call expected: operation and actor's user ref
		via          string           // and its Via
		check        func(v any) bool // on the decoded body
	}
	req := func(v any) map[string]any { r, _ := v.(map[string]any)["request"].(map[string]any); return r }
	field := func(k, want string) func(v any) bool {
		return func(v any) bool { return req(v) != nil && req(v)[k] == want }
	}
	steps := []step{
		{name: "session creates", method: "POST", auth: "alice", path: "/requests", body: create("prod", "1h", "hotfix"), csrf: csrf["alice"],
			status: 201, op: "request", actor: "user:default/alice", via: "api",
			check: func(v any) bool {
				return v.(map[string]any)["created"] == true && req(v)["id"] == "r1" && req(v)["state"] == "pending" && req(v)["duration"] == "1h"
			}},
		{name: "asking again returns the pending one", method: "POST", auth: "alice", path: "/requests", body: create("prod", "4h", "again"), csrf: csrf["alice"],
			status: 200, op: "request", actor: "user:default/alice", via: "api",
			check: func(v any) bool { return v.(map[string]any)["created"] == false && req(v)["id"] == "r1" }},
		{name: "session without CSRF", method: "POST", auth: "alice", path: "/requests", body: create("staging", "1h", "x"),
			status: 403, code: "forbidden", msg: "CSRF"},
		{name: "session with bob's CSRF token", method: "POST", auth: "alice", path: "/requests", body: create("staging", "1h", "x"), csrf: csrf["bob"],
			status: 403, code: "forbidden", msg: "CSRF"},
		{name: "empty reason", method: "POST", auth: "alice", path: "/requests", body: create("staging", "1h", " "), csrf: csrf["alice"],
			status: 400, code: "invalid", msg: "reason is required"},
		{name: "duration above max", method: "POST", auth: "alice", path: "/requests", body: create("prod", "8h", "x"), csrf: csrf["alice"],
			status: 400, code: "invalid", msg: "above the maximum of 4h"},
		{name: "unknown service", method: "POST", auth: "alice", path: "/requests", csrf: csrf["alice"],
			body:   map[string]any{"service": "component:default/nope", "environment": "prod", "duration": "1h", "reason": "x"},
			status: 400, code: "invalid", msg: "unknown service"},
		{name: "duration as a number", method: "POST", auth: "alice", path: "/requests", body: with(create("prod", "", "x"), "duration", 3600), csrf: csrf["alice"],
			status: 400, code: "invalid", msg: `field "duration" must be a string`},
		{name: "unknown field", method: "POST", auth: "alice", path: "/requests", body: with(create("prod", "1h", "x"), "approver", "me"), csrf: csrf["alice"],
			status: 400, code: "invalid", msg: `unknown field "approver"`},
		{name: "session may not name someone", method: "POST", auth: "alice", path: "/requests", body: with(create("staging", "1h", "x"), "on_behalf_of", "bob@example.com"), csrf: csrf["alice"],
			status: 400, code: "invalid", msg: "only for service tokens"},
		{name: "self approval", method: "POST", auth: "alice", path: "/requests/r1/approve", csrf: csrf["alice"],
			status: 403, code: "forbidden", msg: "nobody may approve their own request", op: "approve", actor: "user:default/alice", via: "api"},
		{name: "read-only token may not create", method: "POST", auth: reader, path: "/requests", body: with(create("staging", "1h", "x"), "on_behalf_of", "alice@example.com"),
			status: 403, code: "forbidden", msg: `service token "reader" may only read`},
		{name: "wrong token", method: "POST", auth: "bearer:" + strings.Repeat("x", 40), path: "/requests", body: create("staging", "1h", "x"),
			status: 401, code: "unauthorized", msg: "invalid service token"},
		{name: "empty bearer token", method: "GET", auth: "bearer:", path: "/requests",
			status: 401, code: "unauthorized"},
		{name: "not logged in", method: "GET", auth: "", path: "/requests", status: 401, code: "unauthorized", msg: "login required"},
		{name: "not logged in POST", method: "POST", auth: "", path: "/requests", body: create("staging", "1h", "x"), status: 401, code: "unauthorized"},
		{name: "bot creates for alice", method: "POST", auth: bot, path: "/requests", body: with(create("staging", "8h", "on call"), "on_behalf_of", "alice@example.com"),
			status: 201, op: "request", actor: "user:default/alice", via: "service-token:bot", check: field("requester_email", "alice@example.com")},
		{name: "bot creates another for alice", method: "POST", auth: bot, path: "/requests", body: with(create("dev", "2h", "debug"), "on_behalf_of", "alice@example.com"),
			status: 201, op: "request", actor: "user:default/alice", via: "service-token:bot", check: field("id", "r3")},
		{name: "bot without on_behalf_of", method: "POST", auth: bot, path: "/requests", body: create("staging", "1h", "x"),
			status: 400, code: "invalid", msg: "on_behalf_of is required"},
		{name: "bot for a stranger", method: "POST", auth: bot, path: "/requests", body: with(create("staging", "1h", "x"), "on_behalf_of", "carol@example.com"),
			status: 403, code: "forbidden", msg: "does not match a Backstage user"},
		{name: "bot for a malformed address", method: "POST", auth: bot, path: "/requests", body: with(create("staging", "1h", "x"), "on_behalf_of", "bob"),
			status: 400, code: "invalid", msg: "not an e-mail address"},
		{name: "bot approves for bob", method: "POST", auth: bot, path: "/requests/r2/approve", body: map[string]any{"on_behalf_of": "bob@example.com"},
			status: 200, op: "approve", actor: "user:default/bob", via: "service-token:bot", check: field("state", "approved")},
		{name: "bot cannot self-approve for alice", method: "POST", auth: bot, path: "/requests/r3/approve", body: map[string]any{"on_behalf_of": "alice@example.com"},
			status: 403, code: "forbidden", msg: "own request", op: "approve", actor: "user:default/alice", via: "service-token:bot"},
		{name: "session approve", method: "POST", auth: "bob", path: "/requests/r1/approve", csrf: csrf["bob"],
			status: 200, op: "approve", actor: "user:default/bob", via: "api", check: field("decided_by", "user:default/bob")},
		{name: "approve again", method: "POST", auth: "bob", path: "/requests/r1/approve", csrf: csrf["bob"],
			status: 409, code: "conflict", op: "approve", actor: "user:default/bob", via: "api"},
		{name: "deny without reason", method: "POST", auth: "bob", path: "/requests/r3/deny", body: map[string]any{"reason": ""}, csrf: csrf["bob"],
			status: 400, code: "invalid", msg: "reason is required"},
		{name: "deny", method: "POST", auth: "bob", path: "/requests/r3/deny", body: map[string]any{"reason": "use dev-ro"}, csrf: csrf["bob"],
			status: 200, op: "deny", actor: "user:default/bob", via: "api", check: field("decision_reason", "use dev-ro")},
		{name: "revoke by the requester", method: "POST", auth: "alice", path: "/requests/r1/revoke", body: map[string]any{"reason": "done"}, csrf: csrf["alice"],
			status: 200, op: "revoke", actor: "user:default/alice", via: "api", check: field("revoked_by", "user:default/alice")},
		{name: "revoke by the bot for bob", method: "POST", auth: bot, path: "/requests/r2/revoke", body: map[string]any{"on_behalf_of": "bob@example.com"},
			status: 200, op: "revoke", actor: "user:default/bob", via: "service-token:bot", check: field("state", "revoked")},
		{name: "cancel unknown", method: "POST", auth: "alice", path: "/requests/r999/cancel", csrf: csrf["alice"],
			status: 404, code: "not_found", op: "cancel", actor: "user:default/alice", via: "api"},
		{name: "text body", method: "POST", auth: "alice", path: "/requests/r1/cancel", body: "cancel", csrf: csrf["alice"],
			status: 415, code: "invalid", msg: "Content-Type application/json"},
		{name: "reader reads by id", method: "GET", auth: reader, path: "/requests/r1", status: 200, check: field("state", "revoked")},
		{name: "stranger cannot read", method: "GET", auth: "dave", path: "/requests/r1", status: 404, code: "not_found"},
		{name: "reader cannot list", method: "GET", auth: reader, path: "/requests?on_behalf_of=alice@example.com", status: 403, code: "forbidden"},
		{name: "mine", method: "GET", auth: "alice", path: "/requests", status: 200,
			check: func(v any) bool { return len(v.(map[string]any)["requests"].([]any)) == 3 }},
		{name: "bot lists to-decide for bob", method: "GET", auth: bot, path: "/requests/to-decide?on_behalf_of=bob@example.com", status: 200,
			check: func(v any) bool { return len(v.(map[string]any)["requests"].([]any)) == 0 }},
		{name: "csrf endpoint is for sessions", method: "GET", auth: bot, path: "/csrf", status: 400, code: "invalid"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			_, before := hs.svc.lastCall()
			var status int
			var v map[string]any
			if str, ok := s.body.(string); ok { // a non-JSON body
				st, _, out := hs.do(s.method, s.auth, "/_backgate/access/api/v1"+s.path, strings.NewReader(str),
					map[string]string{"Content-Type": "text/plain", "X-CSRF-Token": s.csrf})
				status = st
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatal(err)
				}
			} else {
				status, v = hs.api(s.method, s.auth, s.path, s.body, s.csrf)
			}
			if status != s.status {
				t.Fatalf("status %d, want %d: %v", status, s.status, v)
			}
			if s.code != "" {
				msg, _ := v["error"].(string)
				if v["code"] != s.code || !strings.Contains(msg, s.msg) || v["request_id"] == "" {
					t.Errorf("error %v, want code %q with %q", v, s.code, s.msg)
				}
			}
			c, after := hs.svc.lastCall()
			if s.op == "" {
				if after != before && c.op != "" && s.method == "POST" {
					t.Errorf("unexpected service call %+v", c)
				}
			} else if after != before+1 || c.op != s.op || c.actor.UserRef != s.actor || c.actor.Via != s.via {
				t.Errorf("call %+v, want %s by %s via %s", c, s.op, s.actor, s.via)
			}
			if s.check != nil && !s.check(v) {
				t.Errorf("body check failed: %v", v)
			}
		})
	}
}

func TestAPICrossOrigin(t *testing.T) {
	hs := newHarness(t)
	tok := hs.apiCSRF("alice")
	body := `{"service":"` + petstore + `","environment":"prod","duration":"1h","reason":"x"}`
	tests := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"cross-site origin", map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same origin", map[string]string{"Origin": hs.srv.URL, "Sec-Fetch-Site": "same-origin"}, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json", "X-CSRF-Token": tok}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			status, _, out := hs.do("POST", "alice", "/_backgate/access/api/v1/requests", strings.NewReader(body), hdr)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, out)
			}
		})
	}
	// A service token needs no CSRF token and ignores cookies: alice's
	// cookie with a bad bearer token is still refused.
	status, _, out := hs.do("GET", "alice", "/_backgate/access/api/v1/requests", nil, map[string]string{"Authorization": "Bearer nope"})
	if status != 401 {
		t.Errorf("cookie plus bad token: %d %s", status, out)
	}
}

func TestAPIGolden(t *testing.T) {
	hs := newHarness(t)
	status, v := hs.api("POST", "bearer:"+botSecret, "/requests", map[string]any{"service": petstore, "environment": "staging",
		"duration": "8h", "reason": "incident INC-7 <on call>", "on_behalf_of": "alice@example.com"}, "")
	if status != 201 {
		t.Fatalf("create: %d %v", status, v)
	}
	hs.clock.add(10 * time.Minute)
	if status, v = hs.api("POST", "bearer:"+botSecret, "/requests/r1/approve", map[string]any{"on_behalf_of": "bob@example.com"}, ""); status != 200 {
		t.Fatalf("approve: %d %v", status, v)
	}
	hs.clock.add(time.Hour)
	_, _, body := hs.do("GET", "", "/_backgate/access/api/v1/requests/r1", nil, map[string]string{"Authorization": "Bearer " + readSecret})
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(body), "", "  "); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "request.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("GET request differs from %s:\n%s", golden, pretty.String())
	}
	// The golden file must reflect the service's state, not a constant.
	if hs.svc.state("r1") != acc.StateApproved || !strings.Contains(string(want), `"active": true`) {
		t.Error("golden file does not describe an active approved request")
	}
}

func TestAPIBodyLimit(t *testing.T) {
	hs := newHarness(t)
	big := `{"reason":"` + strings.Repeat("a", maxBodyBytes) + `"}`
	status, _, out := hs.do("POST", "", "/_backgate/access/api/v1/requests/r1/deny", strings.NewReader(big),
		map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + botSecret})
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(out, `"code":"invalid"`) {
		t.Errorf("oversized body: %d %s", status, out)
	}
}
