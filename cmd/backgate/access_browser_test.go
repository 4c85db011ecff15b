package main

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backgate/backgate/config"
	"github.com/chromedp/chromedp"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// testClock is the demo's injected clock: the story moves it past a
// grant's expiry instead of sleeping.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// postgresSchema gives the test a fresh schema in the CI PostgreSQL and
// returns a DSN that uses it, or skips loudly (fails with
// BACKGATE_REQUIRE_POSTGRES=1) when there is none.
func postgresSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("BACKGATE_TEST_POSTGRES_DSN")
	fail := func(msg string) string {
		msg = "NO POSTGRESQL: the PostgreSQL browser story did NOT run (" + msg + "); set BACKGATE_TEST_POSTGRES_DSN (access/testdata/pg-setup.sh); BACKGATE_REQUIRE_POSTGRES=1 makes this a failure"
		if os.Getenv("BACKGATE_REQUIRE_POSTGRES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
		return ""
	}
	if dsn == "" {
		return fail("BACKGATE_TEST_POSTGRES_DSN unset")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return fail(err.Error())
	}
	defer db.Close()
	schema := fmt.Sprintf("story_%d", time.Now().UnixNano())
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		return fail(err.Error())
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", dsn)
		if err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestBrowserTemporaryAccess is issue 5's story in a real browser, on
// SQLite and on PostgreSQL: bob is refused on a staging service, asks for one
// hour, alice (an owner) approves, bob gets through with signed headers,
// the clock passes the expiry and bob is refused again; carol, who does not
// own the service, cannot approve.
func TestBrowserTemporaryAccess(t *testing.T) {
	exe := chromium(t)
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			clk := &testClock{}
			var dsn string
			if db == "postgres" {
				dsn = postgresSchema(t)
				t.Setenv("BACKGATE_STORY_PG_DSN", dsn)
			}
			info := startDemoWith(t, demoOptions{now: clk.Now, idTokenTTL: 6 * time.Hour, configure: func(c *config.Config) {
				// The story jumps the clock past a 1 h grant: keep the
				// session and the (file) catalog fresh across the jump.
				c.Session.IdleTimeout = 6 * time.Hour
				c.Catalog.MaxStaleness = 6 * time.Hour
				if dsn != "" {
					c.Access.PostgresDSN = config.Secret{Env: "BACKGATE_STORY_PG_DSN"}
				}
			}})
			storyTemporaryAccess(t, exe, info, clk)
		})
	}
}

func storyTemporaryAccess(t *testing.T, exe string, info demoInfo, clk *testClock) {
	_, port, _ := strings.Cut(info.Proxy, ":")
	staging := fmt.Sprintf("http://petstore-staging.demo.localhost:%s/orders", port)
	accessHome := fmt.Sprintf("http://petstore-staging.demo.localhost:%s/_backgate/access/", port)

	// 1. bob is refused and asks for one hour from the 403 page.
	bob := browser(t, exe)
	steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(staging)}, signIn("bob", "bob-demo")...)
	if _, body, err := do(bob, append(steps, chromedp.WaitVisible(chromedp.CSS("#request-access")))...); err != nil {
		t.Fatalf("bob's 403 page with a request link: %v\n%s", err, body)
	}
	_, body, err := do(bob,
		chromedp.Click(chromedp.CSS("#request-access")),
		chromedp.WaitVisible(chromedp.CSS("#request-form")),
		chromedp.SetValue(chromedp.CSS("#duration"), "1h"),
		chromedp.SendKeys(chromedp.CSS("#reason"), "debugging order sync for INC-1234"),
		chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS(".state")),
	)
	if err != nil || !strings.Contains(strings.ToLower(body), "pending") {
		t.Fatalf("bob's request: %v\n%s", err, body)
	}

	// 2. carol (on call, not an owner of petstore-staging) cannot approve.
	carol := browser(t, exe)
	steps = append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(accessHome)}, signIn("carol", "carol-demo")...)
	_, body, err = do(carol, append(steps, chromedp.WaitVisible(chromedp.CSS("#to-decide")))...)
	if err != nil || strings.Contains(body, "debugging order sync") {
		t.Fatalf("carol sees bob's request to decide: %v\n%s", err, body)
	}

	// 3. alice (team-c owns petstore-staging) approves with one click.
	alice := browser(t, exe)
	steps = append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(accessHome)}, signIn("alice", "alice-demo")...)
	_, body, err = do(alice, append(steps,
		chromedp.WaitVisible(chromedp.CSS("#to-decide button.approve")),
		chromedp.Click(chromedp.CSS("#to-decide button.approve")),
		chromedp.WaitVisible(chromedp.CSS("#notice")),
	)...)
	if err != nil {
		t.Fatalf("alice approving: %v\n%s", err, body)
	}

	// 4. bob reloads and gets through with signed headers (the grant reaches
	// the policy within a second).
	var through bool
	for i := 0; i < 20 && !through; i++ {
		_, body, err = do(bob, chromedp.Navigate(staging), chromedp.WaitVisible(chromedp.CSS("body")))
		through = err == nil && strings.Contains(body, "✔ verified") && strings.Contains(body, "bob@example.com")
		if !through {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !through {
		t.Fatalf("bob not let through after approval:\n%s", body)
	}

	// 5. The clock passes the grant's expiry: bob is refused again.
	clk.Advance(61 * time.Minute)
	_, body, err = do(bob, chromedp.Navigate(staging), chromedp.WaitVisible(chromedp.CSS("body")))
	if err != nil || !strings.Contains(body, "Access denied") || !strings.Contains(body, "Request temporary access") {
		t.Fatalf("bob after the grant expired: %v\n%s", err, body)
	}
}
