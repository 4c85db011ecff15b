package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/backgate/backgate/cmd/internal/app"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// childOptions are the hidden flags of a child process (--role=...).
type childOptions struct {
	role       string // upstream, bare, backgate
	upstream   string
	external   string
	issuer     string
	dataDir    string
	routeHost  string
	bodySize   int
	catalog    catalogSize
	unique     bool
	noCache    bool
	decisionLg bool
	cpuProfile string
	memProfile string
	gcPercent  int // bare only; 0 leaves the runtime's setting
}

// runChild serves the role on the listener inherited as file descriptor 3,
// prints "ready" on stdout once it accepts requests, and exits when stdin
// closes (the parent is done, or died).
func runChild(o childOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return fmt.Errorf("%s: inherited listener: %w", o.role, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var srv *http.Server
	var bg *app.App
	switch o.role {
	case "upstream":
		srv = &http.Server{Handler: upstreamHandler(o.bodySize), ReadHeaderTimeout: 10 * time.Second}
	case "bare":
		up, err := url.Parse(o.upstream)
		if err != nil {
			return fmt.Errorf("--upstream: %w", err)
		}
		if o.gcPercent != 0 {
			debug.SetGCPercent(o.gcPercent)
		}
		s := benchConfig(o.external, o.issuer, o.dataDir).Server
		srv = &http.Server{Handler: bareProxy(up, benchConfig(o.external, o.issuer, o.dataDir)),
			ReadHeaderTimeout: s.ReadHeaderTimeout, IdleTimeout: s.IdleTimeout, MaxHeaderBytes: s.MaxHeaderBytes}
	case "backgate":
		up, err := url.Parse(o.upstream)
		if err != nil {
			return fmt.Errorf("--upstream: %w", err)
		}
		bg, err = buildBackgate(ctx, backgateOptions{Upstream: up, External: o.external, Issuer: o.issuer,
			DataDir: o.dataDir, RouteHost: o.routeHost, Catalog: o.catalog, UniqueTokens: o.unique, NoDecisionCache: o.noCache, DecisionLog: o.decisionLg})
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("--role %q: want upstream, bare or backgate", o.role)
	}
	if o.cpuProfile != "" {
		// Started once the server is built: the profile holds request
		// handling, not catalog building.
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	errc := make(chan error, 1)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	if bg != nil {
		go func() { errc <- bg.Run(runCtx, ln) }() // serve's own server settings and shutdown
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	fmt.Fprintln(stdout, "ready")
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(stop)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: serve: %w", o.role, err)
	case <-stop:
	}
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
	}
	if bg != nil {
		stopRun()
		<-errc
		return nil
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// writeHeapProfile writes the live heap (after a collection) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// child is a server process started by the parent.
type child struct {
	role  string
	addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// startChild re-executes this binary with --role and args, hands it ln as
// fd 3 (closing the parent's copy) and waits until it says "ready" (or
// timeout).
func startChild(ctx context.Context, exe, role string, ln *net.TCPListener, args []string, timeout time.Duration) (*child, error) {
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, exe, append([]string{"--role=" + role}, args...)...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	c := &child{role: role, addr: ln.Addr().String(), cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() && sc.Text() == "ready" {
			ready <- nil
		} else {
			ready <- fmt.Errorf("%s exited before it was ready", role)
		}
		_, _ = io.Copy(io.Discard, stdout)
		c.done <- cmd.Wait()
	}()
	select {
	case err := <-ready:
		if err != nil {
			c.stop()
			return nil, err
		}
	case <-time.After(timeout):
		c.stop()
		return nil, fmt.Errorf("%s not ready after %s", role, timeout)
	}
	return c, nil
}

// stop asks the child to exit (closes its stdin) and kills it if it has not
// after 5s.
func (c *child) stop() {
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// procStatus reads a "Name:   N kB" line of /proc/PID/status, in bytes.
func procStatus(pid int, name string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s line", pid, name)
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU is the process's user+system CPU time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after ")" are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}
