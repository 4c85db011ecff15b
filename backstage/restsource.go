package backstage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrUnauthorized is wrapped when Backstage answers 401 or 403 (bad or
// missing static token).
var ErrUnauthorized = errors.New("backstage rejected the token")

// StatusError is a non-2xx answer from Backstage.
type StatusError struct {
	Method string
	URL    string
	Status int
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("backstage catalog: %s %s: HTTP %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		msg += " (check the static external-access token configured for backgate)"
	}
	return msg
}

// Unwrap lets errors.Is(err, ErrUnauthorized) match 401/403.
func (e *StatusError) Unwrap() error {
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		return ErrUnauthorized
	}
	return nil
}

func (e *StatusError) retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// listFields is what the cheap listing pass asks for.
const listFields = "metadata.uid,metadata.etag,kind,metadata.namespace,metadata.name"

// DefaultKindsFilter selects the kinds backgate uses (Backstage ORs filter params).
var defaultKinds = []string{"user", "group", "component", "system", "domain", "resource", "api"}

// RESTSource reads the catalog from a live Backstage backend:
//
//  1. GET {BaseURL}/entities/by-query?fields=metadata.uid,metadata.etag,kind,
//     metadata.namespace,metadata.name&limit=N&filter=kind=user&..., following
//     pageInfo.nextCursor (with cursor, fields and limit only, as the API wants);
//  2. POST {BaseURL}/entities/by-refs {"entityRefs":[...]} for the entities
//     whose metadata.etag changed (or that are new) since the last fetch.
//
// Backstage sends no HTTP ETag and re-stitches entities regularly, so
// metadata.etag per uid is the change detector. Requests carry
// "Authorization: Bearer <Token>" (a static external-access token), time out
// per attempt and are retried with bounded exponential back-off on network
// errors, 5xx and 429; 401/403 fail at once with an error naming the URL.
type RESTSource struct {
	// BaseURL is the catalog API root, e.g. http://localhost:7007/api/catalog.
	BaseURL string
	// Token is the static external-access token. Never logged.
	Token string
	// Client defaults to a plain http.Client (timeouts come from Timeout).
	Client *http.Client
	// Kinds to fetch (lower-case); default user, group, component, system,
	// domain, resource, api.
	Kinds []string
	// PageSize for by-query (default 500); BatchSize for by-refs (default 200).
	PageSize, BatchSize int
	// Timeout per HTTP attempt (default 30s).
	Timeout time.Duration
	// MaxAttempts per request (default 4); back-off starts at Backoff
	// (default 500ms), doubles, and is capped at MaxBackoff (default 15s).
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	// Sleep waits between attempts; nil means a real timer. Tests inject one.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now stamps snapshots; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// MaxBodyBytes bounds one response (default 128 MiB).
	MaxBodyBytes int64

	mu    sync.Mutex
	cache map[string]cachedEntity // uid -> last full body
}

type cachedEntity struct {
	etag   string
	entity Entity
}

// FetchStats describe the last Fetch (for logs and tests).
type FetchStats struct {
	Pages, Listed, Fetched, Requests int
}

type listItem struct {
	Kind     string `json:"kind"`
	Metadata struct {
		UID       string `json:"uid"`
		Etag      string `json:"etag"`
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func (s *RESTSource) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Seed primes the etag cache from a persisted snapshot, so the first fetch
// after a restart only downloads entities that changed meanwhile.
func (s *RESTSource) Seed(snap *Snapshot) {
	if snap == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = map[string]cachedEntity{}
	}
	for _, e := range snap.Entities {
		if e.Metadata.UID != "" && e.Metadata.Etag != "" {
			s.cache[e.Metadata.UID] = cachedEntity{etag: e.Metadata.Etag, entity: e}
		}
	}
}

// Fetch implements Source.
func (s *RESTSource) Fetch(ctx context.Context) (*Snapshot, error) {
	snap, _, err := s.FetchWithStats(ctx)
	return snap, err
}

// FetchWithStats is Fetch that also reports request counts.
func (s *RESTSource) FetchWithStats(ctx context.Context) (*Snapshot, FetchStats, error) {
	var st FetchStats
	base := strings.TrimRight(s.BaseURL, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, st, fmt.Errorf("backstage catalog: base URL %q must be an absolute http(s) URL", s.BaseURL)
	}
	var probs []Problem
	src := base
	// 1. List uid/etag of everything.
	var listed []listItem
	pageSize := orInt(s.PageSize, 500)
	kinds := s.Kinds
	if len(kinds) == 0 {
		kinds = defaultKinds
	}
	q := url.Values{}
	q.Set("fields", listFields)
	q.Set("limit", strconv.Itoa(pageSize))
	for _, k := range kinds {
		q.Add("filter", "kind="+k)
	}
	seenCursor := map[string]bool{}
	for {
		var page struct {
			Items    []json.RawMessage `json:"items"`
			PageInfo struct {
				NextCursor string `json:"nextCursor"`
			} `json:"pageInfo"`
		}
		if err := s.doJSON(ctx, http.MethodGet, base+"/entities/by-query?"+q.Encode(), nil, &page, &st); err != nil {
			return nil, st, err
		}
		st.Pages++
		for _, raw := range page.Items {
			var it listItem
			if err := json.Unmarshal(raw, &it); err != nil || it.Metadata.UID == "" || it.Kind == "" || it.Metadata.Name == "" {
				probs = append(probs, Problem{Source: src, Message: fmt.Sprintf("skipped a listed entity without kind/name/uid: %.200s", raw)})
				continue
			}
			listed = append(listed, it)
		}
		next := page.PageInfo.NextCursor
		if next == "" {
			break
		}
		if seenCursor[next] || st.Pages > 100000 {
			return nil, st, fmt.Errorf("backstage catalog: pagination does not terminate (cursor repeated after %d pages)", st.Pages)
		}
		seenCursor[next] = true
		q = url.Values{}
		q.Set("cursor", next)
		q.Set("fields", listFields)
		q.Set("limit", strconv.Itoa(pageSize))
	}
	st.Listed = len(listed)

	// 2. Full bodies for new or changed uids.
	s.mu.Lock()
	old := s.cache
	s.mu.Unlock()
	next := make(map[string]cachedEntity, len(listed))
	var want []listItem
	for _, it := range listed {
		if c, ok := old[it.Metadata.UID]; ok && c.etag == it.Metadata.Etag && it.Metadata.Etag != "" {
			next[it.Metadata.UID] = c
			continue
		}
		want = append(want, it)
	}
	batch := orInt(s.BatchSize, 200)
	for i := 0; i < len(want); i += batch {
		chunk := want[i:min(i+batch, len(want))]
		refs := make([]string, len(chunk))
		for j, it := range chunk {
			ns := it.Metadata.Namespace
			if ns == "" {
				ns = DefaultNamespace
			}
			refs[j] = strings.ToLower(it.Kind + ":" + ns + "/" + it.Metadata.Name)
		}
		body, _ := json.Marshal(map[string]any{"entityRefs": refs})
		var resp struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := s.doJSON(ctx, http.MethodPost, base+"/entities/by-refs", body, &resp, &st); err != nil {
			return nil, st, err
		}
		if len(resp.Items) != len(refs) {
			return nil, st, fmt.Errorf("backstage catalog: POST %s/entities/by-refs returned %d items for %d refs", base, len(resp.Items), len(refs))
		}
		for j, raw := range resp.Items {
			if string(raw) == "null" {
				continue // deleted between listing and fetching
			}
			var e Entity
			if err := json.Unmarshal(raw, &e); err != nil {
				probs = append(probs, Problem{Ref: refs[j], Source: src, Message: fmt.Sprintf("skipped: cannot decode entity: %v", err)})
				continue
			}
			uid := e.Metadata.UID
			if uid == "" {
				uid = chunk[j].Metadata.UID
			}
			next[uid] = cachedEntity{etag: e.Metadata.Etag, entity: e}
			st.Fetched++
		}
	}
	// 3. Snapshot in listing order.
	ents := make([]Entity, 0, len(listed))
	for _, it := range listed {
		if c, ok := next[it.Metadata.UID]; ok {
			ents = append(ents, c.entity)
		}
	}
	s.mu.Lock()
	s.cache = next
	s.mu.Unlock()
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.logger().Debug("backstage catalog fetched", "url", base, "pages", st.Pages, "listed", st.Listed, "fetched", st.Fetched)
	return &Snapshot{Source: src, FetchedAt: now().UTC(), Entities: ents, Problems: probs}, st, nil
}

func orInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func (s *RESTSource) sleep(ctx context.Context, d time.Duration) error {
	if s.Sleep != nil {
		return s.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// doJSON performs one request with retries and decodes a JSON answer.
func (s *RESTSource) doJSON(ctx context.Context, method, u string, body []byte, out any, st *FetchStats) error {
	attempts := orInt(s.MaxAttempts, 4)
	backoff := s.Backoff
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	maxBackoff := s.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 15 * time.Second
	}
	var lastErr error
	for a := 1; a <= attempts; a++ {
		if a > 1 {
			d := min(backoff<<(a-2), maxBackoff)
			s.logger().Warn("backstage catalog request failed, retrying", "method", method, "url", u, "attempt", a-1, "backoff", d, "err", lastErr)
			if err := s.sleep(ctx, d); err != nil {
				return fmt.Errorf("backstage catalog: %s %s: %w (last error: %w)", method, u, err, lastErr)
			}
		}
		st.Requests++
		b, err := s.once(ctx, method, u, body)
		if err == nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("backstage catalog: %s %s: decode response: %w", method, u, err)
			}
			return nil
		}
		lastErr = err
		var se *StatusError
		if errors.As(err, &se) && !se.retryable() {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("backstage catalog: %s %s: %w", method, u, ctx.Err())
		}
	}
	return fmt.Errorf("backstage catalog: giving up after %d attempts: %w", attempts, lastErr)
}

func (s *RESTSource) once(ctx context.Context, method, u string, body []byte) ([]byte, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("backstage catalog: %s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	client := s.Client
	if client == nil {
		client = &http.Client{}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("backstage catalog: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	limit := s.MaxBodyBytes
	if limit <= 0 {
		limit = 128 << 20
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &StatusError{Method: method, URL: u, Status: resp.StatusCode}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("backstage catalog: %s %s: read body: %w", method, u, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("backstage catalog: %s %s: response larger than %d bytes", method, u, limit)
	}
	return b, nil
}
