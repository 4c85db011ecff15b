package access

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	acc "github.com/backgate/backgate/access"
)

var optionRE = regexp.MustCompile(`<option value="([^"]+)"( selected)?>`)

func formURL(service, env string) string {
	return "/_backgate/access/request?" + url.Values{"service": {service}, "env": {env}}.Encode()
}

func TestRequestFormDurations(t *testing.T) {
	hs := newHarness(t)
	tests := []struct {
		service, env string
		want         []string
		selected     string
	}{
		{petstore, "prod", []string{"15m", "1h", "4h"}, "1h"},
		{petstore, "staging", []string{"15m", "1h", "4h", "8h", "24h"}, "1h"},
		{petstore, "dev", []string{"15m", "1h", "2h"}, "1h"}, // the maximum itself is offered when not a standard choice
		{"component:default/<b>billing</b>", "prod", []string{"15m", "1h", "4h", "8h", "24h", "3d", "7d"}, "1h"},
	}
	for _, tt := range tests {
		t.Run(tt.env+"/"+tt.service, func(t *testing.T) {
			status, h, body := hs.get("alice", formURL(tt.service, tt.env))
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var got []string
			selected := ""
			for _, m := range optionRE.FindAllStringSubmatch(body, -1) {
				got = append(got, m[1])
				if m[2] != "" {
					selected = m[1]
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("durations %v, want %v", got, tt.want)
			}
			if selected != tt.selected {
				t.Errorf("selected %q, want %q", selected, tt.selected)
			}
			for _, s := range []string{`name="reason"`, `name="csrf_token"`, `id="owners"`, "team-"} {
				if !strings.Contains(body, s) {
					t.Errorf("form lacks %q", s)
				}
			}
			if strings.Contains(body, "<b>billing") {
				t.Error("service name not escaped")
			}
			if h.Get("X-Frame-Options") != "DENY" || !strings.Contains(h.Get("Content-Security-Policy"), "form-action 'self'") {
				t.Errorf("security headers missing: %v", h)
			}
			for _, s := range []string{"<script", "<link", "https://"} {
				if strings.Contains(body, s) {
					t.Errorf("page loads or links %q", s)
				}
			}
		})
	}
}

func TestRequestFormBadInput(t *testing.T) {
	hs := newHarness(t)
	tests := []struct {
		name, path string
		status     int
		msg        string
	}{
		{"unknown service", formURL("component:default/nope", "prod"), 400, `unknown service &#34;component:default/nope&#34;`},
		{"not offered", formURL(petstore, "lab"), 400, "is not offered in environment"},
		{"unknown environment", formURL(petstore, "moon"), 400, "is not offered in environment"},
		{"no service", "/_backgate/access/request?env=prod", 400, "service is required"},
		{"no environment", "/_backgate/access/request?service=x", 400, "environment is required"},
		{"spaces", formURL("a b", "prod"), 400, "contains spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := hs.get("alice", tt.path)
			if status != tt.status || !strings.Contains(body, tt.msg) {
				t.Fatalf("status %d, want %d with %q: %s", status, tt.status, tt.msg, body)
			}
			if strings.Contains(body, "<select") {
				t.Error("form shown for bad input")
			}
		})
	}
}

func TestCreateCSRF(t *testing.T) {
	hs := newHarness(t)
	good := hs.pageCSRF("alice")
	bobs := hs.pageCSRF("bob")
	mallorys := hs.pageCSRF("mallory")
	stale := hs.h.csrf.mint("https://idp.example", "alice-sub", hs.clock.now().Add(-13*time.Hour))
	future := hs.h.csrf.mint("https://idp.example", "alice-sub", hs.clock.now().Add(time.Hour))
	tests := []struct {
		name   string
		field  string
		hdr    map[string]string
		status int
	}{
		{"no token", "", nil, 403},
		{"garbage token", "abc", nil, 403},
		{"flipped token", good[:len(good)-2] + flip(good[len(good)-2:]), nil, 403},
		{"another user's token", bobs, nil, 403},
		{"same subject, other issuer", mallorys, nil, 403},
		{"expired", stale, nil, 403},
		{"issued in the future", future, nil, 403},
		{"cross-site origin", good, map[string]string{"Origin": "https://evil.example"}, 403},
		{"null origin", good, map[string]string{"Origin": "null"}, 403},
		{"cross-site fetch", good, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site sibling", good, map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"token in header", "", map[string]string{"X-CSRF-Token": good}, 303},
		{"token with same origin", good, map[string]string{"Origin": hs.srv.URL, "Sec-Fetch-Site": "same-origin"}, 303},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, before := hs.svc.lastCall()
			env := []string{"prod", "staging", "dev"}[i%3]
			status, h, body := hs.postForm("alice", "/_backgate/access/request", url.Values{"csrf_token": {tt.field},
				"service": {petstore}, "env": {env}, "duration": {"1h"}, "reason": {"incident 42"}}, tt.hdr)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			_, after := hs.svc.lastCall()
			if tt.status == 403 {
				if after != before {
					t.Error("the service was called despite the CSRF failure")
				}
				if !strings.Contains(body, "reload the page") {
					t.Errorf("no clear message: %s", body)
				}
				return
			}
			if loc := h.Get("Location"); !regexp.MustCompile(`^/_backgate/access/requests/r\d+\?sent=1$`).MatchString(loc) {
				t.Errorf("Location %q", loc)
			}
		})
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestCreateBadInputRerendersForm(t *testing.T) {
	hs := newHarness(t)
	tok := hs.pageCSRF("alice")
	tests := []struct {
		name                      string
		service, env, dur, reason string
		status                    int
		msg                       string
		form                      bool
	}{
		{"empty reason", petstore, "prod", "1h", "   ", 400, "reason is required", true},
		{"above max", petstore, "prod", "8h", "x", 400, "duration 8h is above the maximum of 4h", true},
		{"not a duration", petstore, "prod", "soon", "x", 400, "is not a duration like 1h or 7d", true},
		{"too short", petstore, "prod", "30s", "x", 400, "shorter than", true},
		{"reason too long", petstore, "prod", "1h", strings.Repeat("é", acc.MaxReasonLen+1), 400, fmt.Sprintf("longer than %d characters", acc.MaxReasonLen), true},
		{"unknown service", "component:default/nope", "prod", "1h", "x", 400, "unknown service", false},
		{"not offered", petstore, "lab", "1h", "x", 400, "is not offered", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := hs.postForm("alice", "/_backgate/access/request", url.Values{"csrf_token": {tok},
				"service": {tt.service}, "env": {tt.env}, "duration": {tt.dur}, "reason": {tt.reason}}, nil)
			if status != tt.status || !strings.Contains(body, tt.msg) {
				t.Fatalf("status %d, want %d with %q: %s", status, tt.status, tt.msg, body)
			}
			if got := strings.Contains(body, `<select id="duration"`); got != tt.form {
				t.Errorf("form shown = %v, want %v", got, tt.form)
			}
			if tt.form && !strings.Contains(body, `id="error"`) {
				t.Error("no error banner on the form")
			}
		})
	}
	if _, n := hs.svc.lastCall(); n != 0 {
		t.Errorf("service asked to create %d times for bad input", n)
	}
}

func TestPendingShownOnSecondVisit(t *testing.T) {
	hs := newHarness(t)
	id := hs.create("alice", "prod", "1h", "deploy hotfix")
	status, _, body := hs.get("alice", formURL(petstore, "prod")+"&return=/orders")
	if status != 200 || !strings.Contains(body, "Your request is pending") || strings.Contains(body, "<select") {
		t.Fatalf("second visit: %d %s", status, body)
	}
	if !strings.Contains(body, `id="req-`+id+`"`) || !strings.Contains(body, "deploy hotfix") || !strings.Contains(body, `href="/orders"`) {
		t.Errorf("pending request not shown: %s", body)
	}
	if !strings.Contains(body, "/requests/"+id+"/cancel") {
		t.Error("no cancel button on the pending request")
	}
	// Another environment still gets the form.
	if _, _, body := hs.get("alice", formURL(petstore, "staging")); !strings.Contains(body, "<select") {
		t.Error("form not shown for another environment")
	}
	// Asking again through the form returns the pending one.
	status, h, _ := hs.postForm("alice", "/_backgate/access/request", url.Values{"csrf_token": {hs.pageCSRF("alice")},
		"service": {petstore}, "env": {"prod"}, "duration": {"15m"}, "reason": {"again"}}, nil)
	if want := "/_backgate/access/requests/" + id + "?existing=1"; status != 303 || h.Get("Location") != want {
		t.Fatalf("ask again: %d Location %q, want %q", status, h.Get("Location"), want)
	}
	_, _, body = hs.get("alice", "/_backgate/access/requests/"+id+"?existing=1")
	if !strings.Contains(body, "You already had a pending request") {
		t.Errorf("no notice: %s", body)
	}
}

func TestPageActions(t *testing.T) {
	hs := newHarness(t)
	pendingA := hs.create("alice", "prod", "1h", "a")
	pendingB := hs.create("alice", "staging", "4h", "b")
	pendingC := hs.create("alice", "dev", "15m", "c")
	tests := []struct {
		name, user, id, action, reason string
		status                         int
		op                             string
		state                          acc.State
		msg                            string
	}{
		{"owner approves", "bob", pendingA, "approve", "", 303, "approve", acc.StateApproved, ""},
		{"approve twice", "bob", pendingA, "approve", "", 409, "approve", acc.StateApproved, "no longer pending"},
		{"requester revokes own grant", "alice", pendingA, "revoke", "done early", 303, "revoke", acc.StateRevoked, ""},
		{"deny without reason", "bob", pendingB, "deny", " ", 400, "", acc.StatePending, "reason is required"},
		{"self approval", "alice", pendingB, "approve", "", 403, "approve", acc.StatePending, "nobody may approve their own request"},
		{"non-owner approves", "dave", pendingB, "approve", "", 403, "approve", acc.StatePending, "you may not do this"},
		{"owner denies", "bob", pendingB, "deny", "use staging-ro", 303, "deny", acc.StateDenied, ""},
		{"owner cannot cancel", "bob", pendingC, "cancel", "", 403, "cancel", acc.StatePending, "you may not do this"},
		{"requester cancels", "alice", pendingC, "cancel", "", 303, "cancel", acc.StateCanceled, ""},
		{"unknown id", "bob", "r999", "approve", "", 404, "approve", "", "no such request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, before := hs.svc.lastCall()
			status, h, body := hs.postForm(tt.user, "/_backgate/access/requests/"+tt.id+"/"+tt.action,
				url.Values{"csrf_token": {hs.pageCSRF(tt.user)}, "reason": {tt.reason}}, nil)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			c, after := hs.svc.lastCall()
			if tt.op == "" {
				if after != before {
					t.Errorf("service called: %+v", c)
				}
			} else {
				if after != before+1 || c.op != tt.op || c.id != tt.id || c.actor.UserRef != userRefs[identities[tt.user].Email] || c.actor.Via != "page" {
					t.Errorf("call %+v, want %s of %s by %s via page", c, tt.op, tt.id, tt.user)
				}
				if c.actor.Email != identities[tt.user].Email || !slices.Equal(c.actor.Groups, identities[tt.user].Groups) || c.actor.Address != "127.0.0.1" {
					t.Errorf("actor %+v lacks the session's email, groups or address", c.actor)
				}
				if strings.TrimSpace(tt.reason) != c.reason {
					t.Errorf("reason %q, want %q", c.reason, tt.reason)
				}
			}
			if got := hs.svc.state(tt.id); got != tt.state {
				t.Errorf("state %q, want %q", got, tt.state)
			}
			if tt.status == 303 {
				if want := "/_backgate/access/?done=" + tt.action + "&id=" + tt.id; h.Get("Location") != want {
					t.Errorf("Location %q, want %q", h.Get("Location"), want)
				}
				return
			}
			if !strings.Contains(body, tt.msg) || !strings.Contains(body, `id="error"`) {
				t.Errorf("message %q not shown: %s", tt.msg, body)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	hs := newHarness(t)
	id := hs.create("alice", "prod", "1h", "<script>alert(1)</script>")
	_, _, alice := hs.get("alice", "/_backgate/access/?done=approve&id="+id)
	_, _, bob := hs.get("bob", "/_backgate/access/")
	_, _, dave := hs.get("dave", "/_backgate/access/")
	mine := func(body string) string { _, s, _ := strings.Cut(body, `id="mine"`); return s }
	todo := func(body string) string { s, _, _ := strings.Cut(body, `id="mine"`); return s }
	checks := []struct {
		name string
		ok   bool
	}{
		{"alice sees her request with a cancel button", strings.Contains(mine(alice), `action="/_backgate/access/requests/`+id+`/cancel"`)},
		{"alice is not offered to approve her own", !strings.Contains(alice, "/approve")},
		{"alice sees the notice", strings.Contains(alice, "Request "+id+" approved.")},
		{"bob may approve", strings.Contains(todo(bob), `action="/_backgate/access/requests/`+id+`/approve"`)},
		{"bob may deny with a reason in the same form", regexp.MustCompile(`action="/_backgate/access/requests/` + id + `/deny"><input type="hidden" name="csrf_token" value="[^"]+"><input type="hidden" name="from" value="index"><input type="text" name="reason"`).MatchString(bob)},
		{"bob has no request of his own", strings.Contains(mine(bob), "You have not asked")},
		{"dave sees nothing to decide", strings.Contains(dave, "Nothing waits for you") && !strings.Contains(dave, id)},
		{"reason escaped", strings.Contains(bob, "&lt;script&gt;") && !strings.Contains(bob, "<script>")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s\nalice: %s\nbob: %s", c.name, alice, bob)
		}
	}
	// After approval the request leaves "To decide"; the approver revokes
	// from the request's page, the requester may end it from the index.
	st, h, body := hs.postForm("bob", "/_backgate/access/requests/"+id+"/approve", url.Values{"csrf_token": {hs.pageCSRF("bob")}}, nil)
	if st != 303 {
		t.Fatalf("approve: %d %s", st, body)
	}
	_, _, bob = hs.get("bob", h.Get("Location"))
	if strings.Contains(todo(bob), "req-"+id) || !strings.Contains(bob, `<a href="/_backgate/access/requests/`+id+`">View it</a>`) {
		t.Errorf("after approval: %s", bob)
	}
	_, _, alice = hs.get("alice", "/_backgate/access/")
	_, _, bobStatus := hs.get("bob", "/_backgate/access/requests/"+id)
	if !strings.Contains(alice, "End my access now") || !strings.Contains(alice, "1 hour left") {
		t.Errorf("requester not offered to end access: %s", alice)
	}
	if !strings.Contains(bobStatus, "/requests/"+id+"/revoke") || strings.Contains(bobStatus, "/approve") ||
		!strings.Contains(bobStatus, "user:default/bob at 2026-03-04 10:00 UTC") {
		t.Errorf("approver's status page: %s", bobStatus)
	}
	// Revoke from the status page returns there, showing who revoked.
	hs.clock.add(5 * time.Minute)
	st, h, body = hs.postForm("bob", "/_backgate/access/requests/"+id+"/revoke", url.Values{"csrf_token": {hs.pageCSRF("bob")}, "from": {"status"}, "reason": {"incident over"}}, nil)
	if want := "/_backgate/access/requests/" + id + "?done=revoke"; st != 303 || h.Get("Location") != want {
		t.Fatalf("revoke: %d %q %s", st, h.Get("Location"), body)
	}
	_, _, bobStatus = hs.get("bob", h.Get("Location"))
	for _, s := range []string{"Request revoked.", `class="revoked">2026-03-04 10:05 UTC by user:default/bob`, "incident over", "state-revoked"} {
		if !strings.Contains(bobStatus, s) {
			t.Errorf("status after revoke lacks %q: %s", s, bobStatus)
		}
	}
	if strings.Contains(bobStatus, "/revoke\"") {
		t.Error("revoke still offered after revoking")
	}
}

func TestStatusPage(t *testing.T) {
	hs := newHarness(t)
	id := hs.create("alice", "prod", "4h", "on call")
	tests := []struct {
		user, path string
		status     int
		contains   string
	}{
		{"alice", "/_backgate/access/requests/" + id + "?sent=1&return=/orders?x=1", 200, `href="/orders?x=1"`},
		{"alice", "/_backgate/access/requests/" + id + "?sent=1", 200, "Your request was sent"},
		{"alice", "/_backgate/access/requests/" + id + "?return=https://evil.example/", 200, "on call"},
		{"bob", "/_backgate/access/requests/" + id, 200, "/requests/" + id + "/approve"},
		{"dave", "/_backgate/access/requests/" + id, 404, "no such request"},
		{"alice", "/_backgate/access/requests/r999", 404, "no such request"},
		{"alice", "/_backgate/access/requests/a%20b", 404, "Not found"},
		{"alice", "/_backgate/access/requests/" + id + "/explode", 404, "Not found"},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.path, func(t *testing.T) {
			status, _, body := hs.get(tt.user, tt.path)
			if status != tt.status || !strings.Contains(body, tt.contains) {
				t.Fatalf("status %d, want %d with %q: %s", status, tt.status, tt.contains, body)
			}
			if strings.Contains(body, "evil.example") {
				t.Error("foreign return link shown")
			}
		})
	}
}

func TestNotLoggedInPages(t *testing.T) {
	hs := newHarness(t)
	path := formURL(petstore, "prod")
	status, h, _ := hs.get("", path)
	if status != http.StatusFound || !strings.HasPrefix(h.Get("Location"), "/login?") {
		t.Fatalf("GET without session: %d %v", status, h)
	}
	hs.mu.Lock()
	logins := slices.Clone(hs.logins)
	hs.mu.Unlock()
	if len(logins) != 1 || logins[0] != path {
		t.Fatalf("Login called with %q, want [%q]", logins, path)
	}
	status, _, body := hs.postForm("", "/_backgate/access/request", url.Values{"service": {petstore}}, nil)
	if status != http.StatusUnauthorized || !strings.Contains(body, "Your session has ended") {
		t.Errorf("POST without session: %d %s", status, body)
	}
	status, _, body = hs.get("carol", "/_backgate/access/")
	if status != http.StatusForbidden || !strings.Contains(body, "does not match a user in the Backstage catalog") {
		t.Errorf("identity without a catalog user: %d %s", status, body)
	}
}

func TestInternalErrorsHidden(t *testing.T) {
	hs := newHarness(t)
	hs.svc.fail = errors.New("pq: connection refused to 10.0.0.5")
	for _, path := range []string{"/_backgate/access/", formURL(petstore, "prod"), "/_backgate/access/requests/r1"} {
		status, _, body := hs.get("alice", path)
		if status != 500 || strings.Contains(body, "10.0.0.5") || !strings.Contains(body, "Request ID") {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
	status, v := hs.api("GET", "alice", "/requests", nil, "")
	if status != 500 || v["code"] != "internal" || strings.Contains(v["error"].(string), "10.0.0.5") || v["request_id"] == "" {
		t.Errorf("API: %d %v", status, v)
	}
}

func TestRouting(t *testing.T) {
	hs := newHarness(t)
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/_backgate/access", 303},
		{"GET", "/elsewhere", 404},
		{"GET", "/_backgate/accessory", 404},
		{"PUT", "/_backgate/access/request", 405},
		{"GET", "/_backgate/access/requests/r1/approve", 405},
		{"DELETE", "/_backgate/access/api/v1/requests", 405},
		{"GET", "/_backgate/access/api/v2/requests", 404},
	}
	for _, tt := range tests {
		status, _, _ := hs.do(tt.method, "alice", tt.path, nil, nil)
		if status != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, status, tt.status)
		}
	}
}
