package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

const (
	maxJWKSBytes  = 1 << 20
	minRefetchGap = 10 * time.Second
)

// keyCache holds the JWKS fetched from url for ttl. It fetches on the
// request path, without background goroutines.
type keyCache struct {
	url    string
	client *http.Client
	now    func() time.Time
	ttl    time.Duration

	mu      sync.Mutex
	set     jwk.Set
	fetched time.Time // of the last attempt, successful or not
}

// get returns the cached set, fetching it when missing, older than ttl, or
// when force is set.
func (c *keyCache) get(ctx context.Context, force bool) (jwk.Set, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.set != nil && !force && now.Sub(c.fetched) < c.ttl {
		return c.set, nil
	}
	if c.set == nil && !force && !c.fetched.IsZero() && now.Sub(c.fetched) < time.Second {
		return nil, fmt.Errorf("JWKS %s: fetched and failed less than a second ago", c.url)
	}
	c.fetched = now
	set, err := c.fetch(ctx)
	if err != nil {
		if c.set != nil {
			return c.set, nil // keep serving the last good set
		}
		return nil, err
	}
	c.set = set
	return set, nil
}

// canRefetch reports whether a forced fetch is allowed now, so that a flood
// of bad tokens cannot make the app hammer the JWKS endpoint.
func (c *keyCache) canRefetch() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now().Sub(c.fetched) >= minRefetchGap
}

func (c *keyCache) fetch(ctx context.Context) (jwk.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", c.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS %s: status %d", c.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", c.url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS %s: more than %d bytes", c.url, maxJWKSBytes)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", c.url, err)
	}
	return set, nil
}
