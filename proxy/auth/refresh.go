package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// refreshGroup makes concurrent requests of one session share a single
// refresh_token grant, and lets requests that still carry the old cookie
// (sent before the browser stored the rewritten one) reuse its result for a
// short while. Without it, providers that rotate refresh tokens and detect
// reuse would see the parallel requests of one page as token theft.
type refreshGroup struct {
	mu    sync.Mutex
	calls map[[32]byte]*refreshCall
}

type refreshCall struct {
	done    chan struct{}
	started time.Time
	res     *refreshResult
	err     error
}

const (
	// refreshReuse is how long a finished refresh's result is reused by
	// requests presenting the same (session, refresh token).
	refreshReuse = 2 * time.Minute
	// refreshTimeout bounds one shared refresh call.
	refreshTimeout = 15 * time.Second
)

// do runs fn once per (session id, refresh token) within refreshReuse and
// returns its result to every caller. fn runs detached from the first
// caller's cancellation so one aborted request does not fail the others.
func (g *refreshGroup) do(ctx context.Context, id, token string, now time.Time, fn func(context.Context) (*refreshResult, error)) (*refreshResult, error) {
	key := sha256.Sum256([]byte(id + "\x00" + token))
	g.mu.Lock()
	for k, c := range g.calls {
		if now.Sub(c.started) > refreshReuse || c.started.After(now) {
			select {
			case <-c.done:
				delete(g.calls, k)
			default: // still running
			}
		}
	}
	c, ok := g.calls[key]
	if !ok {
		c = &refreshCall{done: make(chan struct{}), started: now}
		g.calls[key] = c
		g.mu.Unlock()
		go func() {
			defer close(c.done)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			defer cancel()
			c.res, c.err = fn(cctx)
		}()
	} else {
		g.mu.Unlock()
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		// The request went away; not the provider's verdict on the token.
		return nil, fmt.Errorf("%w: waiting for refresh: %w", ErrProviderUnavailable, ctx.Err())
	}
}
