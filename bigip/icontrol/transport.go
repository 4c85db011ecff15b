package icontrol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxErrBody bounds how much of an error answer is read to classify it.
const maxErrBody = 64 << 10

// roundTripper is registered on the *http.Transport go-bigip uses as the
// handler of every https request. go-bigip's APICall takes no context and
// sleeps 10 s on a 503, so this:
//   - binds the context of the current call (set by begin) to the request,
//   - retries 503 answers itself, at most retries times, waiting wait
//     between tries or until the context ends,
//   - turns a final 503 into a text/plain answer so that APICall reports it
//     at once ("HTTP 503 :: ...") instead of sleeping,
//   - records the final HTTP status of the call for the caller (go-bigip's
//     errors carry only F5's message).
//
// Calls are serialised by Client.mu, so one call is in flight at a time.
type roundTripper struct {
	next    http.RoundTripper
	retries int
	wait    time.Duration

	mu     sync.Mutex
	ctx    context.Context
	status int
	tries  int
}

func (rt *roundTripper) begin(ctx context.Context) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.ctx, rt.status, rt.tries = ctx, 0, 0
}

// end returns the final HTTP status of the call (0 if none came back).
func (rt *roundTripper) end() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.ctx = nil
	return rt.status
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	callCtx := rt.ctx
	rt.mu.Unlock()
	if callCtx == nil {
		callCtx = context.Background()
	}
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(callCtx, cancel)
	release := func() { stop(); cancel() }

	for attempt := 0; ; attempt++ {
		r := req.Clone(ctx)
		if attempt > 0 && req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				release()
				return nil, errors.New("icontrol: cannot replay request body for a retry")
			}
			b, err := req.GetBody()
			if err != nil {
				release()
				return nil, fmt.Errorf("icontrol: replay request body: %w", err)
			}
			r.Body = b
		}
		rt.mu.Lock()
		rt.tries++
		rt.mu.Unlock()
		resp, err := rt.next.RoundTrip(r)
		if err != nil {
			release()
			if cerr := callCtx.Err(); cerr != nil {
				return nil, fmt.Errorf("%w: %w", cerr, err)
			}
			return nil, err
		}
		busy := false
		if resp.StatusCode >= 400 {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrBody))
			resp.Body.Close()
			if rerr != nil {
				release()
				return nil, fmt.Errorf("icontrol: read %d answer: %w", resp.StatusCode, rerr)
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			busy = isBusy(resp.StatusCode, body)
		}
		if busy && attempt < rt.retries {
			t := time.NewTimer(rt.wait)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				release()
				return nil, fmt.Errorf("icontrol: waiting to retry a 503: %w", context.Cause(ctx))
			}
		}
		if busy {
			// Plain text makes go-bigip fail at once rather than sleep 10 s.
			resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
			resp.StatusCode = http.StatusServiceUnavailable
		}
		rt.mu.Lock()
		rt.status = resp.StatusCode
		rt.mu.Unlock()
		resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
		return resp, nil
	}
}

// isBusy reports what go-bigip's APICall would sleep and retry on: a 503,
// or a JSON error whose code is 503 or that mentions an active asynchronous
// task.
func isBusy(status int, body []byte) bool {
	if status == http.StatusServiceUnavailable {
		return true
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	return e.Code == http.StatusServiceUnavailable ||
		strings.Contains(strings.ToLower(e.Message), "there is an active asynchronous task executing")
}

// releasingBody ends the request's context once go-bigip has read and
// closed the body.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
