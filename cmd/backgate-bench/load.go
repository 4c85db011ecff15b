package main

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one server under load.
type target struct {
	Name       string
	URL        string // http://127.0.0.1:port/path
	Host       string // Host header
	cookie     atomic.Pointer[string]
	cookieName string
	needSigned bool // count a response without signedMark as an error
	client     *http.Client
	pid        int // the server's process, for CPU time; 0 = not measured
	upPid      int // the upstream's process
}

// newTarget returns a target with its own connection pool of up to maxConns
// keep-alive connections.
func newTarget(name, url, host, cookie, cookieName string, needSigned bool, maxConns int) *target {
	t := &target{Name: name, URL: url, Host: host, cookieName: cookieName, needSigned: needSigned}
	t.cookie.Store(&cookie)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	t.client = &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return t
}

// runResult is one timed run of one target at one concurrency.
type runResult struct {
	Target     string        `json:"target"`
	Conns      int           `json:"conns"`
	Requests   int64         `json:"requests"`
	Errors     int64         `json:"errors"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	RPS        float64       `json:"rps"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	CPUPerReq  time.Duration `json:"server_cpu_per_req_ns"`   // the proxy's CPU time per request
	UpCPUPerRq time.Duration `json:"upstream_cpu_per_req_ns"` // the upstream's
	FirstError string        `json:"first_error,omitempty"`
	// lat is every request's latency, sorted: the pooled percentiles over
	// all rounds of a target are taken from it (see pooledQuantile).
	lat []time.Duration
}

// runLoad drives conns concurrent keep-alive clients at t for dur, or until
// maxRequests have been sent, whichever comes first.
func runLoad(ctx context.Context, t *target, conns int, dur time.Duration, maxRequests int64) runResult {
	perWorker := max(maxRequests/int64(conns), 1)
	res := runResult{Target: t.Name, Conns: conns}
	cpu0, up0 := cpuOf(t.pid), cpuOf(t.upPid)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		samples  = make([][]time.Duration, conns)
		errs     atomic.Int64
		firstErr atomic.Pointer[string]
	)
	start := time.Now()
	deadline := start.Add(dur)
	var end atomic.Int64
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, min(perWorker, 1<<16))
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
			if err != nil {
				errs.Add(1)
				return
			}
			req.Host = t.Host
			cur := t.cookie.Load()
			req.Header["Cookie"] = []string{*cur}
			for n := int64(0); n < perWorker && ctx.Err() == nil; n++ {
				if c := t.cookie.Load(); c != cur {
					cur = c
					req.Header["Cookie"] = []string{*cur}
				}
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				resp, err := t.client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				lat = append(lat, time.Since(t0))
				msg := ""
				switch {
				case err != nil:
					msg = err.Error()
				case resp.StatusCode != http.StatusOK:
					msg = "status " + resp.Status
				case t.needSigned && resp.Header.Get(signedMark) != "1":
					msg = "response from an upstream that got no signed headers"
				}
				if err == nil {
					t.noteCookie(resp.Header["Set-Cookie"])
				}
				if msg != "" {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, &msg)
				}
			}
			mu.Lock()
			samples[w] = lat
			if e := time.Since(start); int64(e) > end.Load() {
				end.Store(int64(e))
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	res.Requests = int64(len(all))
	res.Errors = errs.Load()
	res.Elapsed = time.Duration(end.Load())
	if res.Elapsed > 0 {
		res.RPS = float64(res.Requests) / res.Elapsed.Seconds()
	}
	res.P50, res.P99 = percentile(all, 0.50), percentile(all, 0.99)
	res.lat = all
	if res.Requests > 0 {
		res.CPUPerReq = (cpuOf(t.pid) - cpu0) / time.Duration(res.Requests)
		res.UpCPUPerRq = (cpuOf(t.upPid) - up0) / time.Duration(res.Requests)
	}
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	return res
}

// noteCookie takes a rewritten session cookie, as a browser would.
func (t *target) noteCookie(setCookies []string) {
	for _, sc := range setCookies {
		nv, _, _ := strings.Cut(sc, ";")
		if name, v, ok := strings.Cut(nv, "="); ok && name == t.cookieName && v != "" {
			t.cookie.Store(&nv)
		}
	}
}

func cpuOf(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, _ := procCPU(pid)
	return d
}

// percentile sorts d in place and returns the nearest-rank p-quantile.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	if !slices.IsSorted(d) {
		slices.Sort(d)
	}
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// median of the values (the mean of the middle two for an even count).
func median[T ~int64 | ~float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
