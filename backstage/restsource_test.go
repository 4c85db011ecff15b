package backstage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBackstage follows the documented catalog REST API: GET
// /api/catalog/entities/by-query (fields, limit, filter, cursor, pageInfo.nextCursor)
// and POST /api/catalog/entities/by-refs ({"entityRefs"} -> {"items"} with nulls).
type fakeBackstage struct {
	t         *testing.T
	token     string
	mu        sync.Mutex
	entities  []map[string]any // full bodies, in uid order
	failNext  int              // answer this many requests with 500
	refsAsked []string
	queries   []string
}

func (f *fakeBackstage) add(kind, ns, name string, spec map[string]any) {
	f.entities = append(f.entities, map[string]any{
		"apiVersion": "backstage.io/v1alpha1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": fmt.Sprintf("uid-%03d", len(f.entities)), "etag": "e1"},
		"spec":     spec,
	})
}

func (f *fakeBackstage) setEtag(name, etag string, spec map[string]any) {
	for _, e := range f.entities {
		m := e["metadata"].(map[string]any)
		if m["name"] == name {
			m["etag"] = etag
			e["spec"] = spec
		}
	}
}

func refOf(e map[string]any) string {
	m := e["metadata"].(map[string]any)
	return strings.ToLower(fmt.Sprintf("%s:%s/%s", e["kind"], m["namespace"], m["name"]))
}

// prune keeps only the given simplified JSON paths, as Backstage's fields does.
func prune(e map[string]any, fields []string) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		parts := strings.Split(f, ".")
		src, dst := e, out
		for i, p := range parts {
			v, ok := src[p]
			if !ok {
				break
			}
			if i == len(parts)-1 {
				dst[p] = v
				break
			}
			sub, ok := v.(map[string]any)
			if !ok {
				break
			}
			if _, ok := dst[p]; !ok {
				dst[p] = map[string]any{}
			}
			src, dst = sub, dst[p].(map[string]any)
		}
	}
	return out
}

func (f *fakeBackstage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"name":"AuthenticationError","message":"Missing credentials"},"response":{"statusCode":401}}`))
		return
	}
	if f.failNext > 0 {
		f.failNext--
		http.Error(w, `{"error":{"name":"Error","message":"boom"}}`, http.StatusInternalServerError)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/catalog/entities/by-query":
		q := r.URL.Query()
		f.queries = append(f.queries, r.URL.RawQuery)
		limit, _ := strconv.Atoi(q.Get("limit"))
		if limit <= 0 {
			limit = 20
		}
		off := 0
		if c := q.Get("cursor"); c != "" {
			if q.Has("filter") {
				f.t.Errorf("filter sent together with cursor: %s", r.URL.RawQuery)
			}
			b, err := base64.StdEncoding.DecodeString(c)
			if err != nil {
				http.Error(w, "bad cursor", 400)
				return
			}
			off, _ = strconv.Atoi(string(b))
		}
		fields := strings.Split(q.Get("fields"), ",")
		items := []any{}
		for _, e := range f.entities[min(off, len(f.entities)):min(off+limit, len(f.entities))] {
			items = append(items, prune(e, fields))
		}
		resp := map[string]any{"items": items, "totalItems": len(f.entities), "pageInfo": map[string]any{}}
		if off+limit < len(f.entities) {
			resp["pageInfo"] = map[string]any{"nextCursor": base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(off + limit)))}
		}
		_ = json.NewEncoder(w).Encode(resp)
	case r.Method == http.MethodPost && r.URL.Path == "/api/catalog/entities/by-refs":
		var req struct {
			EntityRefs []string `json:"entityRefs"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad body", 400)
			return
		}
		items := make([]any, len(req.EntityRefs))
		for i, ref := range req.EntityRefs {
			f.refsAsked = append(f.refsAsked, ref)
			for _, e := range f.entities {
				if refOf(e) == ref {
					items[i] = e
				}
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
	default:
		http.NotFound(w, r)
	}
}

func newFake(t *testing.T) (*fakeBackstage, *httptest.Server) {
	f := &fakeBackstage{t: t, token: "s3cret"}
	f.add("Group", "default", "team-a", map[string]any{"type": "team", "children": []string{}})
	f.add("User", "default", "alice", map[string]any{"memberOf": []string{"team-a"}, "profile": map[string]any{"email": "alice@example.com"}})
	f.add("User", "development", "guest", map[string]any{"memberOf": []string{"group:default/team-a"}})
	f.add("Component", "default", "svc", map[string]any{"type": "service", "lifecycle": "production", "owner": "team-a"})
	f.add("Component", "default", "broken", map[string]any{"type": "service", "lifecycle": "production", "owner": 42})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func TestRESTSourceFetchAndEtagChanges(t *testing.T) {
	f, srv := newFake(t)
	var slept []time.Duration
	src := &RESTSource{BaseURL: srv.URL + "/api/catalog/", Token: "s3cret", PageSize: 2, BatchSize: 2, Now: fixedNow,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	snap, st, err := src.FetchWithStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pages != 3 || st.Listed != 5 || st.Fetched != 4 {
		t.Errorf("stats = %+v, want 3 pages, 5 listed, 4 fetched (1 undecodable)", st)
	}
	if len(snap.Entities) != 4 || len(snap.Problems) != 1 || snap.Problems[0].Ref != "component:default/broken" {
		t.Fatalf("entities = %d, problems = %v", len(snap.Entities), snap.Problems)
	}
	if !strings.Contains(f.queries[0], "filter=kind%3Duser") || !strings.Contains(f.queries[0], "limit=2") {
		t.Errorf("first query = %s", f.queries[0])
	}
	c := mustBuild(t, snap, BuildOptions{})
	if g, _ := c.Group("group:default/team-a"); !slices.Equal(g.AllMembers, []string{"user:default/alice", "user:development/guest"}) {
		t.Errorf("team-a members = %v", g.AllMembers)
	}

	// Unchanged etags: listing only, no bodies.
	f.refsAsked = nil
	_, st, err = src.FetchWithStats(context.Background())
	if err != nil || st.Fetched != 0 || len(f.refsAsked) != 1 { // only the undecodable one is asked again
		t.Errorf("second fetch: %+v %v refs=%v", st, err, f.refsAsked)
	}
	// One etag changes: only that body is fetched; 500 once, then success.
	f.setEtag("svc", "e2", map[string]any{"type": "service", "lifecycle": "experimental", "owner": "user:alice"})
	f.failNext = 1
	f.refsAsked = nil
	snap, st, err = src.FetchWithStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.refsAsked, "component:default/svc") || len(f.refsAsked) != 2 || len(slept) != 1 || slept[0] != 500*time.Millisecond {
		t.Errorf("refs asked %v, slept %v", f.refsAsked, slept)
	}
	c = mustBuild(t, snap, BuildOptions{})
	if o, _ := c.Component("component:default/svc"); o == nil || o.Owner != "user:default/alice" || o.Lifecycle != "experimental" {
		t.Errorf("svc after etag change = %+v", o)
	}
}

func TestRESTSourceUnauthorized(t *testing.T) {
	_, srv := newFake(t)
	src := &RESTSource{BaseURL: srv.URL + "/api/catalog", Token: "wrong",
		Sleep: func(context.Context, time.Duration) error { t.Error("401 must not be retried"); return nil }}
	_, err := src.Fetch(context.Background())
	var se *StatusError
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &se) || se.Status != 401 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), srv.URL+"/api/catalog/entities/by-query") || !strings.Contains(err.Error(), "401") {
		t.Errorf("error does not name URL and status: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestRESTSourceRetriesBounded(t *testing.T) {
	f, srv := newFake(t)
	f.failNext = 100
	var slept []time.Duration
	src := &RESTSource{BaseURL: srv.URL + "/api/catalog", Token: "s3cret", MaxAttempts: 5, Backoff: time.Second, MaxBackoff: 3 * time.Second,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	_, err := src.Fetch(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 500 || !strings.Contains(err.Error(), "5 attempts") {
		t.Fatalf("err = %v", err)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}; !slices.Equal(slept, want) {
		t.Errorf("back-off = %v, want %v", slept, want)
	}
}

func TestRESTSourceBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "localhost:7007", "ftp://x/api/catalog"} {
		if _, err := (&RESTSource{BaseURL: u}).Fetch(context.Background()); err == nil {
			t.Errorf("BaseURL %q: want error", u)
		}
	}
}
