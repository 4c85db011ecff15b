package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/backgate/backgate/demo"
	"github.com/backgate/backgate/proxy/edgetoken"
	"github.com/backgate/backgate/proxy/signer"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// benchOptions are the parent's flags.
type benchOptions struct {
	Duration    time.Duration
	Warmup      time.Duration
	Concurrency []int
	Rounds      int // at each concurrency but targetConns
	// TargetRounds and TargetDuration are the rounds at targetConns, where
	// the targets are judged: fewer, longer rounds there make the verdict
	// steadier (a round's p99 varies less the longer it runs; see README).
	TargetRounds   int
	TargetDuration time.Duration
	MaxRequests    int64 // per run
	BodySize       int
	Catalog        catalogSize
	Unique         bool
	NoCache        bool // no decision cache: evaluate the policy per request
	DecisionLog    bool
	CPUProfile     string
	MemProfile     string // heap profile of backgate (and of the bare proxy, plus .bare) after the load
	// BareGCPercent is the bare proxy's GOGC: 100 (Go's default, what a
	// plain Go proxy runs with) unless --bare-gc-percent says otherwise.
	// backgate runs with its configuration default, server.gc_percent.
	BareGCPercent int
	// AA replaces backgate with a second bare proxy (same settings): the
	// comparison then measures nothing but the machine's noise.
	AA       bool
	Progress io.Writer // one line per run; nil for none
}

// Names of the two targets.
const (
	nameBare     = "bare"
	nameBackgate = "backgate"
)

// routeHost is the host name the benchmark route answers on.
const routeHost = "app." + benchDomain

// runBench starts the provider (in this process), the upstream, the bare
// proxy and backgate (each a child process of exe), logs in once, checks
// that backgate's requests arrive signed, then runs the load rounds.
func runBench(ctx context.Context, exe string, o benchOptions) (*report, error) {
	startWall := time.Now()
	rep := &report{Options: o, GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), LoadStart: loadAvg()}
	dataDir, err := os.MkdirTemp("", "backgate-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)

	lns := make([]*net.TCPListener, 4)
	for i := range lns {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		lns[i] = ln
	}
	upLn, bareLn, bgLn, idpLn := lns[0], lns[1], lns[2], lns[3]
	defer idpLn.Close()
	bgPort := fmt.Sprint(bgLn.Addr().(*net.TCPAddr).Port)
	external := "http://auth." + benchDomain + ":" + bgPort
	issuer := "http://" + idpLn.Addr().String()
	upstreamURL := "http://" + upLn.Addr().String()

	idp, err := demo.NewProvider(demo.ProviderOptions{
		Issuer: issuer,
		Users: []demo.DemoUser{{Username: benchUsername, Password: benchPassword, Email: benchEmail,
			Name: "Bench User", Groups: []string{"bench"}}},
		Clients: []demo.DemoClient{{ID: clientID, Secret: clientSecret, RedirectURIs: []string{external + "/_backgate/callback"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	idpSrv := &http.Server{Handler: idp, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn)}
	go func() { _ = idpSrv.Serve(idpLn) }()
	defer idpSrv.Close()

	var children []*child
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	start := func(role string, ln *net.TCPListener, timeout time.Duration, args ...string) (*child, error) {
		c, err := startChild(ctx, exe, role, ln, args, timeout)
		if err != nil {
			return nil, err
		}
		children = append(children, c)
		return c, nil
	}
	up, err := start("upstream", upLn, 30*time.Second, fmt.Sprintf("--body-size=%d", o.BodySize))
	if err != nil {
		return nil, err
	}
	bareArgs := []string{"--upstream=" + upstreamURL, fmt.Sprintf("--gc-percent=%d", o.BareGCPercent)}
	if o.CPUProfile != "" {
		bareArgs = append(bareArgs, "--cpuprofile="+o.CPUProfile+".bare")
	}
	if o.MemProfile != "" {
		bareArgs = append(bareArgs, "--memprofile="+o.MemProfile+".bare")
	}
	bare, err := start("bare", bareLn, 30*time.Second, bareArgs...)
	if err != nil {
		return nil, err
	}
	bgArgs := []string{"--upstream=" + upstreamURL, "--external=" + external, "--issuer=" + issuer,
		"--data-dir=" + dataDir, "--route-host=" + routeHost,
		fmt.Sprintf("--catalog=%d,%d,%d", o.Catalog.Components, o.Catalog.Groups, o.Catalog.Users)}
	if o.Unique {
		bgArgs = append(bgArgs, "--unique-tokens")
	}
	if o.NoCache {
		bgArgs = append(bgArgs, "--no-decision-cache")
	}
	if o.DecisionLog {
		bgArgs = append(bgArgs, "--decision-log")
	}
	if o.CPUProfile != "" {
		bgArgs = append(bgArgs, "--cpuprofile="+o.CPUProfile)
	}
	if o.MemProfile != "" {
		bgArgs = append(bgArgs, "--memprofile="+o.MemProfile)
	}
	var bg *child
	if o.AA {
		bg, err = start("bare", bgLn, 30*time.Second, "--upstream="+upstreamURL, fmt.Sprintf("--gc-percent=%d", o.BareGCPercent))
		if bg != nil {
			bg.role = "bare B"
		}
	} else {
		bg, err = start("backgate", bgLn, 90*time.Second, bgArgs...)
	}
	if err != nil {
		return nil, err
	}
	rep.StartupSeconds = time.Since(startWall).Seconds()

	const cookieName = "_backgate"
	cookie := "_backgate=" + strings.Repeat("a", 600) // A/A: what a session cookie weighs
	if !o.AA {
		// One real login; the cookie is then shared by every load client.
		appURL := "http://" + routeHost + ":" + bgPort + "/"
		if cookie, err = login(ctx, loopbackClient(), appURL, issuer, cookieName); err != nil {
			return nil, err
		}
		if err := checkSigned(ctx, "http://"+bg.addr+headersPath, cookie, external, dataDir); err != nil {
			return nil, err
		}
	}

	maxConns := 1
	for _, c := range o.Concurrency {
		maxConns = max(maxConns, c)
	}
	// Both targets get the same request: same Host, same cookie.
	tBare := newTarget(nameBare, "http://"+bare.addr+"/", routeHost, cookie, cookieName, false, maxConns)
	tBG := newTarget(nameBackgate, "http://"+bg.addr+"/", routeHost, cookie, cookieName, !o.AA, maxConns)
	tBare.pid, tBG.pid = bare.cmd.Process.Pid, bg.cmd.Process.Pid
	tBare.upPid, tBG.upPid = up.cmd.Process.Pid, up.cmd.Process.Pid

	progress := func(r runResult) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "  %-8s c=%-3d %8.0f req/s  p50 %-9s p99 %-9s cpu/req %-8s errors %d\n", r.Target, r.Conns, r.RPS,
				fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.CPUPerReq), r.Errors)
		}
	}
	if o.Warmup > 0 {
		for _, t := range []*target{tBare, tBG} {
			r := runLoad(ctx, t, maxConns, o.Warmup, o.MaxRequests)
			if r.Errors > 0 {
				return nil, fmt.Errorf("warm-up of %s: %d of %d requests failed, first: %s", t.Name, r.Errors, r.Requests, r.FirstError)
			}
		}
	}
	for _, c := range o.Concurrency {
		rounds, dur := o.plan(c)
		for round := range rounds {
			order := []*target{tBare, tBG}
			if round%2 == 1 { // A B, B A, ...: drift cancels out
				order = []*target{tBG, tBare}
			}
			for _, t := range order {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				r := runLoad(ctx, t, c, dur, o.MaxRequests)
				progress(r)
				rep.Runs = append(rep.Runs, r)
			}
		}
	}
	for _, c := range []*child{up, bare, bg} {
		hwm, _ := procStatus(c.cmd.Process.Pid, "VmHWM")
		rss, _ := procStatus(c.cmd.Process.Pid, "VmRSS")
		rep.Memory = append(rep.Memory, memory{Process: c.role, PeakRSS: hwm, RSS: rss})
	}
	rep.LoadEnd = loadAvg()
	rep.summarise()
	rep.TotalSeconds = time.Since(startWall).Seconds()
	return rep, nil
}

// plan is the number and length of the rounds at c connections.
func (o benchOptions) plan(c int) (rounds int, d time.Duration) {
	rounds, d = o.Rounds, o.Duration
	if c == targetConns {
		if o.TargetRounds > 0 {
			rounds = o.TargetRounds
		}
		if o.TargetDuration > 0 {
			d = o.TargetDuration
		}
	}
	return rounds, d
}

// checkSigned fetches the upstream's view of one request through backgate
// and verifies the edge token (HMAC, host, times) and the assertion JWT
// (signature with the published keys, issuer, audience) with backgate's own
// keyring, and that backgate's cookie did not reach the upstream.
func checkSigned(ctx context.Context, u, cookie, external, dataDir string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Host = routeHost
	req.Header.Set("Cookie", cookie)
	req.Header.Set(signer.HeaderEdge, "forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	defer resp.Body.Close()
	var seen struct{ Edge, Assertion, Cookie string }
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("check: backgate answered %s, want 200 (authenticated and allowed)", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
		return fmt.Errorf("check: upstream report: %w", err)
	}
	kr, err := signer.OpenKeyring(signer.KeyringOptions{Dir: dataDir})
	if err != nil {
		return fmt.Errorf("check: keyring: %w", err)
	}
	if _, err := (edgetoken.Verifier{Keys: kr.EdgeSecret}).Verify(seen.Edge, routeHost); err != nil {
		return fmt.Errorf("check: edge token: %w", err)
	}
	sg, err := signer.New(signer.Options{Keyring: kr, Issuer: external})
	if err != nil {
		return err
	}
	set, err := jwk.Parse(sg.JWKS())
	if err != nil {
		return fmt.Errorf("check: JWKS: %w", err)
	}
	if _, err := jwt.ParseString(seen.Assertion, jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithIssuer(external), jwt.WithAudience(routeHost)); err != nil {
		return fmt.Errorf("check: assertion JWT: %w", err)
	}
	if strings.Contains(seen.Cookie, "_backgate") {
		return errors.New("check: backgate's session cookie reached the upstream")
	}
	return nil
}

// loadAvg is the first field of /proc/loadavg ("" when unreadable).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
