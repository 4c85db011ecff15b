package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the browser, or skips loudly; with
// BACKGATE_REQUIRE_CHROMIUM=1 (set by .ci/run) a missing browser fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "NO CHROMIUM: the browser tests did NOT run (apt-get install chromium); BACKGATE_REQUIRE_CHROMIUM=1 makes this a failure"
	if os.Getenv("BACKGATE_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startDemo runs `backgate demo` in-process on free loopback ports.
func startDemo(t *testing.T) demoInfo { return startDemoWith(t, demoOptions{}) }

func startDemoWith(t *testing.T, o demoOptions) demoInfo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan demoInfo, 1)
	done := make(chan error, 1)
	e := &env{Stdout: io.Discard, Stderr: testWriter{t}, Getenv: os.Getenv}
	o.listen, o.idpListen, o.appListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	o.dataDir, o.ready = t.TempDir(), ready
	if o.logLevel == "" {
		o.logLevel = "warn"
	}
	go func() { done <- demoRun(ctx, e, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})
	select {
	case info := <-ready:
		return info
	case err := <-done:
		t.Fatalf("demo did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not start within 60s")
	}
	return demoInfo{}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func browser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	return ctx
}

func signIn(user, password string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Submit(chromedp.CSS("#password")),
	}
}

// do runs steps, then returns the page's location and body text.
func do(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) (loc, body string, err error) {
	if err = chromedp.Do(ctx, steps...); err != nil {
		body, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		return "", body, err
	}
	if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
		return "", "", err
	}
	body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	return loc, body, err
}

// TestBrowserDemoLogin is the "done": a person logs in through the
// demo provider's form in a real browser and sees their verified identity
// at a demo app; a non-owner gets the 403 page; logout ends the session.
func TestBrowserDemoLogin(t *testing.T) {
	exe := chromium(t)
	info := startDemo(t)
	_, port, _ := strings.Cut(info.Proxy, ":")
	staging := fmt.Sprintf("http://petstore-staging.demo.localhost:%s/hello?x=1", port)

	t.Run("owner reaches the app with verified headers", func(t *testing.T) {
		ctx := browser(t, exe)
		_, loginPage, err := do(ctx, chromedp.Navigate(staging), chromedp.WaitVisible(chromedp.CSS("#username")))
		if err != nil {
			t.Fatalf("no login form: %v\n%s", err, loginPage)
		}
		if !strings.Contains(loginPage, "alice-demo") {
			t.Errorf("login page does not show the demo passwords: %s", loginPage)
		}
		url, body, err := do(ctx, append(signIn("alice", "alice-demo"), chromedp.WaitVisible(chromedp.CSS(".banner")))...)
		if err != nil {
			t.Fatalf("after sign-in: %v\n%s", err, body)
		}
		if url != staging {
			t.Errorf("after login the browser is at %q, want %q", url, staging)
		}
		for _, want := range []string{"✔ verified", "alice@example.com", "component:default/petstore-staging", "staging"} {
			if !strings.Contains(body, want) {
				t.Errorf("app page lacks %q:\n%s", want, body)
			}
		}
		if strings.Contains(body, "NOT verified") {
			t.Errorf("a signed header did not verify:\n%s", body)
		}

		// One login covers every demo host (one cookie domain).
		_, prod, err := do(ctx, chromedp.Navigate(fmt.Sprintf("http://petstore.demo.localhost:%s/", port)), chromedp.WaitVisible(chromedp.CSS(".banner")))
		if err != nil || !strings.Contains(prod, "✔ verified") || !strings.Contains(prod, "component:default/petstore-prod") {
			t.Errorf("second host without a new login: %v\n%s", err, prod)
		}

		// Logout ends the session: the next visit asks to sign in again.
		_, after, err := do(ctx, chromedp.Navigate(info.External+"/_backgate/logout"),
			chromedp.Navigate(staging), chromedp.WaitVisible(chromedp.CSS("#username")))
		if err != nil {
			t.Errorf("after logout the login form did not come back: %v\n%s", err, after)
		}
	})

	t.Run("non-owner gets the access denied page", func(t *testing.T) {
		ctx := browser(t, exe)
		steps := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(staging)}, signIn("bob", "bob-demo")...)
		_, body, err := do(ctx, append(steps, chromedp.WaitVisible(chromedp.CSS("#access-request")))...)
		if err != nil {
			t.Fatalf("browser: %v\n%s", err, body)
		}
		for _, want := range []string{"Access denied", "bob@example.com", "component:default/petstore-staging", "group:default/team-c"} {
			if !strings.Contains(body, want) {
				t.Errorf("403 page lacks %q:\n%s", want, body)
			}
		}
	})
}
