package icontroltest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Collection paths under /mgmt/tm/ that the fake serves.
const (
	Rules      = "ltm/rule"
	DataGroups = "ltm/data-group/internal"
	Virtuals   = "ltm/virtual"
	Pools      = "ltm/pool"
)

// version is what the fake claims in selfLink "?ver=" suffixes.
const version = "17.1.0"

type collection struct {
	kind      string // item kind, e.g. tm:ltm:rule:rulestate
	noun      string // as in F5's "The requested <noun> (/Common/x) was not found."
	createdAs string // as in F5's "The requested <createdAs> (...) already exists"
}

var collections = map[string]collection{
	Rules:      {kind: "tm:ltm:rule:rulestate", noun: "rule", createdAs: "iRule"},
	DataGroups: {kind: "tm:ltm:data-group:internal:internalstate", noun: "value list", createdAs: "value list"},
	Virtuals:   {kind: "tm:ltm:virtual:virtualstate", noun: "Virtual Server", createdAs: "Virtual Server"},
	Pools:      {kind: "tm:ltm:pool:poolstate", noun: "Pool", createdAs: "Pool"},
}

// Request is one request the fake received, as recorded for assertions.
// Bodies are not kept (they may hold key material); only their top-level
// property names are.
type Request struct {
	Method      string
	Path        string // URL path, e.g. /mgmt/tm/ltm/virtual/~Common~vs
	Query       string
	Coordinated bool     // carried X-F5-REST-Coordination-Id
	BodyKeys    []string // sorted top-level JSON property names
	Status      int
}

// Virtual is the part of a fake virtual server tests look at.
type Virtual struct {
	Pool  string
	Rules []string
}

type token struct {
	user    string
	timeout int
}

type txnCommand struct {
	method, coll, fullPath string
	sub                    string
	body                   map[string]any
	query                  url.Values
}

type txn struct {
	id       int64
	commands []txnCommand
}

// Server is a fake BIG-IP management interface. It is safe for concurrent
// use. Create it with New and Close it when done.
type Server struct {
	srv      *httptest.Server
	username string
	password string

	mu          sync.Mutex
	objects     map[string]map[string]map[string]any // collection -> full path -> object
	tokens      map[string]*token
	txns        map[int64]*txn
	nextTxn     int64
	generation  int
	restOpID    int
	writes      int
	logins      int
	reqs        []Request
	fail        map[string][]string // full path -> methods (empty: all)
	conflict    map[string]bool     // full path -> 409 on next create
	rejectQueue map[string]bool     // full path -> 400 when queued in a transaction
	unavailable int
	after       func(Request)
}

// New starts a fake BIG-IP over TLS on 127.0.0.1 that accepts the given
// credentials, with the Common partition empty.
func New(username, password string) *Server {
	s := &Server{
		username: username,
		password: password,
		objects:  map[string]map[string]map[string]any{},
		tokens:   map[string]*token{},
		txns:     map[int64]*txn{},
		nextTxn:  1700000000000000,
		fail:     map[string][]string{},
		conflict: map[string]bool{},

		rejectQueue: map[string]bool{},
	}
	for c := range collections {
		s.objects[c] = map[string]map[string]any{}
	}
	s.srv = httptest.NewTLSServer(s)
	return s
}

// URL is the base URL of the management interface, https://127.0.0.1:port.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// Certificate is the server's self-signed certificate.
func (s *Server) Certificate() *x509.Certificate { return s.srv.Certificate() }

// CAPEM is the server certificate in PEM form, to trust it as a CA.
func (s *Server) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// WriteCAFile writes CAPEM to dir/bigip-ca.pem and returns its path.
func (s *Server) WriteCAFile(dir string) (string, error) {
	p := filepath.Join(dir, "bigip-ca.pem")
	if err := os.WriteFile(p, s.CAPEM(), 0o600); err != nil {
		return "", fmt.Errorf("icontroltest: write CA file: %w", err)
	}
	return p, nil
}

// ---- knobs and inspection ----

// AfterRequest sets fn to be called with each request once it has been
// answered (nil to stop). fn runs on the server's goroutine, without the
// server's lock held.
func (s *Server) AfterRequest(fn func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after = fn
}

// ExpireTokens invalidates every issued token, as if they had timed out:
// the next request carrying one gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// ConflictOnCreate makes the next POST that creates fullPath (e.g.
// "/Common/backgate_edge_verify") find that someone else created it just
// before: the fake stores a foreign object under that name and answers 409.
func (s *Server) ConflictOnCreate(fullPath string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conflict[fullPath] = true
}

// FailOn makes every request for the object fullPath with one of methods
// (all methods when none given) fail with 500, including commands run by a
// transaction commit.
func (s *Server) FailOn(fullPath string, methods ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range methods {
		methods[i] = strings.ToUpper(m)
	}
	s.fail[fullPath] = methods
}

// RejectInTransaction makes adding a command for fullPath (a write to the
// object, or a POST creating it) to a transaction fail at once with 400, as
// BIG-IP does for commands it can check when queued.
func (s *Server) RejectInTransaction(fullPath string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectQueue[fullPath] = true
}

// OpenTransactions is the number of transactions neither committed nor
// deleted.
func (s *Server) OpenTransactions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.txns)
}

// ClearFailures undoes FailOn and RejectInTransaction.
func (s *Server) ClearFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.fail)
	clear(s.rejectQueue)
}

// Unavailable makes the next n requests fail with 503 and F5's "active
// asynchronous task" body, the answer go-bigip sleeps 10 s on.
func (s *Server) Unavailable(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unavailable = n
}

// Writes is the number of non-GET requests under /mgmt/tm/ (object writes,
// transaction creation, queued commands and commits) since the last
// ResetCounters.
func (s *Server) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Logins is the number of successful logins since the last ResetCounters.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Requests returns the requests received since the last ResetCounters.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// ResetCounters zeroes Writes and Logins and forgets Requests.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes, s.logins, s.reqs = 0, 0, nil
}

// AddPool creates an (empty) pool.
func (s *Server) AddPool(partition, name string) error {
	return s.seed(Pools, map[string]any{"name": name, "partition": partition})
}

// AddVirtual creates a virtual server using pool (a full path, or "" for
// none) with the given iRules (full paths) attached. They must exist.
func (s *Server) AddVirtual(partition, name, pool string, rules ...string) error {
	obj := map[string]any{"name": name, "partition": partition, "destination": "/" + partition + "/192.0.2.10:443", "ipProtocol": "tcp", "persist": []any{map[string]any{"name": "cookie", "partition": "Common", "tmDefault": "yes"}}}
	if pool != "" {
		obj["pool"] = pool
	}
	if len(rules) > 0 {
		obj["rules"] = toAny(rules)
	}
	return s.seed(Virtuals, obj)
}

// SetRule creates or replaces an iRule directly (no write is counted).
func (s *Server) SetRule(partition, name, text string) error {
	s.remove(Rules, "/"+partition+"/"+name)
	return s.seed(Rules, map[string]any{"name": name, "partition": partition, "apiAnonymous": text})
}

// SetDataGroup creates or replaces an internal data group directly.
func (s *Server) SetDataGroup(partition, name, typ string, records map[string]string) error {
	s.remove(DataGroups, "/"+partition+"/"+name)
	obj := map[string]any{"name": name, "partition": partition, "type": typ}
	if len(records) > 0 {
		obj["records"] = recordsToAny(records)
	}
	return s.seed(DataGroups, obj)
}

func (s *Server) remove(coll, fullPath string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objects[coll], fullPath)
}

func (s *Server) seed(coll string, obj map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	status, resp := s.create(coll, obj)
	if status != http.StatusOK {
		return fmt.Errorf("icontroltest: seed %s: %d %v", coll, status, resp["message"])
	}
	return nil
}

// Rule returns the text of the iRule fullPath.
func (s *Server) Rule(fullPath string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[Rules][fullPath]
	if !ok {
		return "", false
	}
	t, _ := o["apiAnonymous"].(string)
	return t, true
}

// DataGroup returns the type and records (name -> data) of the internal
// data group fullPath.
func (s *Server) DataGroup(fullPath string) (typ string, records map[string]string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[DataGroups][fullPath]
	if !ok {
		return "", nil, false
	}
	typ, _ = o["type"].(string)
	records = map[string]string{}
	recs, _ := o["records"].([]any)
	for _, r := range recs {
		m, _ := r.(map[string]any)
		n, _ := m["name"].(string)
		d, _ := m["data"].(string)
		records[n] = d
	}
	return typ, records, true
}

// Virtual returns the pool and rules of the virtual server fullPath.
func (s *Server) Virtual(fullPath string) (Virtual, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[Virtuals][fullPath]
	if !ok {
		return Virtual{}, false
	}
	var v Virtual
	v.Pool, _ = o["pool"].(string)
	rules, _ := o["rules"].([]any)
	for _, r := range rules {
		if rs, ok := r.(string); ok {
			v.Rules = append(v.Rules, rs)
		}
	}
	return v, true
}

// ---- HTTP ----

const maxBody = 4 << 20

// ServeHTTP implements the fake iControl REST API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	s.mu.Lock()
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Coordinated: r.Header.Get("X-F5-REST-Coordination-Id") != ""}
	status, resp := s.handle(r, raw, err, &rec)
	rec.Status = status
	s.reqs = append(s.reqs, rec)
	after := s.after
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	if resp != nil {
		_ = json.NewEncoder(w).Encode(resp)
	}
	if after != nil {
		after(rec)
	}
}

func (s *Server) handle(r *http.Request, raw []byte, readErr error, rec *Request) (int, map[string]any) {
	if readErr != nil {
		return s.errResp(http.StatusBadRequest, "could not read body")
	}
	var body map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			return s.errResp(http.StatusBadRequest, "Found invalid JSON body in the request.")
		}
		for k := range body {
			rec.BodyKeys = append(rec.BodyKeys, k)
		}
		sort.Strings(rec.BodyKeys)
	}
	if s.unavailable > 0 {
		s.unavailable--
		return s.errResp(http.StatusServiceUnavailable, "There is an active asynchronous task executing.")
	}
	p := r.URL.Path
	if p == "/mgmt/shared/authn/login" {
		if r.Method != http.MethodPost {
			return s.errResp(http.StatusMethodNotAllowed, "Method not allowed")
		}
		return s.login(body)
	}
	if !s.authorized(r) {
		s.restOpID++
		return http.StatusUnauthorized, map[string]any{
			"code": 401, "message": "X-F5-Auth-Token does not exist.",
			"referer": "127.0.0.1", "restOperationId": s.restOpID, "kind": ":resterrorresponse",
		}
	}
	if t, ok := strings.CutPrefix(p, "/mgmt/shared/authz/tokens/"); ok {
		return s.tokenOp(r.Method, t, body)
	}
	rest, ok := strings.CutPrefix(p, "/mgmt/tm/")
	if !ok {
		return s.errResp(http.StatusNotFound, fmt.Sprintf("URI path %s not registered.  Please verify URI is supported and wait for /available suffix to be responsive.", p))
	}
	if r.Method != http.MethodGet {
		s.writes++
	}
	coord := r.Header.Get("X-F5-REST-Coordination-Id")
	if rest == "transaction" || strings.HasPrefix(rest, "transaction/") {
		if coord != "" {
			return s.errResp(http.StatusBadRequest, "Transaction requests cannot carry X-F5-REST-Coordination-Id.")
		}
		return s.transaction(r.Method, strings.TrimPrefix(strings.TrimPrefix(rest, "transaction"), "/"), body)
	}
	coll, fullPath, sub, ok := splitPath(rest)
	if !ok {
		return s.errResp(http.StatusNotFound, fmt.Sprintf("URI path %s not registered.  Please verify URI is supported and wait for /available suffix to be responsive.", p))
	}
	if coord != "" {
		if r.Method == http.MethodGet {
			return s.errResp(http.StatusBadRequest, "GET requests cannot be part of a transaction.")
		}
		id, err := strconv.ParseInt(coord, 10, 64)
		t := s.txns[id]
		if err != nil || t == nil {
			return s.errResp(http.StatusNotFound, fmt.Sprintf("Transaction %s not found.", coord))
		}
		target := fullPath
		if target == "" && r.Method == http.MethodPost {
			target = createTarget(body)
		}
		if s.rejectQueue[target] {
			return s.errResp(http.StatusBadRequest, fmt.Sprintf("01070734:3: Configuration error: command for %s refused in transaction %d", target, id))
		}
		t.commands = append(t.commands, txnCommand{method: r.Method, coll: coll, fullPath: fullPath, sub: sub, body: body, query: r.URL.Query()})
		n := len(t.commands)
		resp := cloneMap(body)
		if resp == nil {
			resp = map[string]any{}
		}
		resp["transId"] = id
		resp["commandId"] = n
		resp["evalOrder"] = n
		resp["method"] = r.Method
		resp["kind"] = "tm:transaction:commandsstate"
		resp["selfLink"] = fmt.Sprintf("https://localhost/mgmt/tm/transaction/%d/commands/%d?ver=%s", id, n, version)
		delete(resp, "apiAnonymous") // bodies are not echoed in full
		delete(resp, "records")
		return http.StatusOK, resp
	}
	return s.exec(r.Method, coll, fullPath, sub, body, r.URL.Query())
}

func (s *Server) authorized(r *http.Request) bool {
	if t := r.Header.Get("X-F5-Auth-Token"); t != "" {
		_, ok := s.tokens[t]
		return ok
	}
	u, pw, ok := r.BasicAuth()
	return ok && u == s.username && pw == s.password
}

func (s *Server) login(body map[string]any) (int, map[string]any) {
	u, _ := body["username"].(string)
	pw, _ := body["password"].(string)
	prov, _ := body["loginProviderName"].(string)
	if u != s.username || pw != s.password || (prov != "" && prov != "tmos") || u == "" {
		s.restOpID++
		return http.StatusUnauthorized, map[string]any{
			"code": 401, "message": "Authentication failed.", "referer": "127.0.0.1",
			"restOperationId": s.restOpID, "kind": ":resterrorresponse",
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	t := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
	s.tokens[t] = &token{user: u, timeout: 1200}
	s.logins++
	return http.StatusOK, map[string]any{
		"username":          u,
		"loginReference":    map[string]any{"link": "https://localhost/mgmt/cm/system/authn/providers/tmos/1f44a60e-11a7-3c51-a49f-82983026b41b/login"},
		"loginProviderName": "tmos",
		"token":             s.tokenJSON(t),
		"generation":        0,
		"lastUpdateMicros":  0,
	}
}

func (s *Server) tokenJSON(t string) map[string]any {
	tk := s.tokens[t]
	return map[string]any{
		"token": t, "name": t, "userName": tk.user, "authProviderName": "tmos",
		"user":            map[string]any{"link": "https://localhost/mgmt/shared/authz/users/" + tk.user},
		"groupReferences": []any{}, "timeout": tk.timeout, "startTime": "2026-01-01T00:00:00.000+0000",
		"address": "127.0.0.1", "partition": "[All]", "generation": 1,
		"kind":     "shared:authz:tokens:authtokenitemstate",
		"selfLink": "https://localhost/mgmt/shared/authz/tokens/" + t,
	}
}

func (s *Server) tokenOp(method, t string, body map[string]any) (int, map[string]any) {
	if _, ok := s.tokens[t]; !ok {
		return s.errResp(http.StatusNotFound, fmt.Sprintf("Object not found - https://localhost/mgmt/shared/authz/tokens/%s", t))
	}
	switch method {
	case http.MethodGet:
		return http.StatusOK, s.tokenJSON(t)
	case http.MethodPatch:
		n, ok := body["timeout"].(float64)
		if !ok || n < 1 || n > 36000 || n != float64(int(n)) {
			return s.errResp(http.StatusBadRequest, "timeout must be an integer between 1 and 36000")
		}
		s.tokens[t].timeout = int(n)
		return http.StatusOK, s.tokenJSON(t)
	case http.MethodDelete:
		resp := s.tokenJSON(t)
		delete(s.tokens, t)
		return http.StatusOK, resp
	}
	return s.errResp(http.StatusMethodNotAllowed, "Method not allowed")
}

func (s *Server) transaction(method, id string, body map[string]any) (int, map[string]any) {
	if id == "" {
		switch method {
		case http.MethodPost:
			s.nextTxn++
			t := &txn{id: s.nextTxn}
			s.txns[t.id] = t
			return http.StatusOK, s.txnJSON(t.id, "STARTED")
		case http.MethodGet:
			items := []any{}
			for tid := range s.txns {
				items = append(items, s.txnJSON(tid, "STARTED"))
			}
			return http.StatusOK, map[string]any{"kind": "tm:transactioncollectionstate", "items": items}
		}
		return s.errResp(http.StatusMethodNotAllowed, "Method not allowed")
	}
	n, err := strconv.ParseInt(id, 10, 64)
	t := s.txns[n]
	if err != nil || t == nil {
		return s.errResp(http.StatusNotFound, fmt.Sprintf("Transaction %s not found.", id))
	}
	switch method {
	case http.MethodGet:
		return http.StatusOK, s.txnJSON(n, "STARTED")
	case http.MethodDelete:
		delete(s.txns, n)
		return http.StatusOK, nil
	case http.MethodPatch:
		if st, _ := body["state"].(string); st != "VALIDATING" {
			return s.errResp(http.StatusBadRequest, fmt.Sprintf("invalid transaction state %q", st))
		}
		delete(s.txns, n)
		for _, c := range t.commands {
			if c.method == http.MethodPost && c.fullPath == "" {
				s.raceCreate(c.coll, createTarget(c.body))
			}
		}
		snapshot := deepCopy(s.objects)
		for _, c := range t.commands {
			status, resp := s.exec(c.method, c.coll, c.fullPath, c.sub, c.body, c.query)
			if status >= 300 {
				s.objects = snapshot
				msg, _ := resp["message"].(string)
				return s.errResp(status, "transaction failed:"+msg)
			}
		}
		return http.StatusOK, s.txnJSON(n, "COMPLETED")
	}
	return s.errResp(http.StatusMethodNotAllowed, "Method not allowed")
}

func (s *Server) txnJSON(id int64, state string) map[string]any {
	return map[string]any{
		"transId": id, "state": state, "timeoutSeconds": 120, "asyncExecution": false,
		"validateOnly": false, "executionTimeout": 300, "executionTime": 0, "failureReason": "",
		"kind": "tm:transactionstate", "selfLink": fmt.Sprintf("https://localhost/mgmt/tm/transaction/%d?ver=%s", id, version),
	}
}

// splitPath parses "ltm/rule" or "ltm/rule/~Common~name[/sub]".
func splitPath(rest string) (coll, fullPath, sub string, ok bool) {
	for c := range collections {
		tail, found := strings.CutPrefix(rest, c)
		if !found {
			continue
		}
		if tail == "" {
			return c, "", "", true
		}
		tail, found = strings.CutPrefix(tail, "/")
		if !found || tail == "" {
			continue
		}
		name, sub, _ := strings.Cut(tail, "/")
		if strings.HasPrefix(name, "~") {
			fullPath = strings.ReplaceAll(name, "~", "/")
		} else {
			fullPath = "/Common/" + name
		}
		if strings.Count(fullPath, "/") != 2 || strings.HasSuffix(fullPath, "/") {
			return "", "", "", false
		}
		return c, fullPath, sub, true
	}
	return "", "", "", false
}

func (s *Server) failing(fullPath, method string) bool {
	ms, ok := s.fail[fullPath]
	return ok && (len(ms) == 0 || slices.Contains(ms, method))
}

func (s *Server) exec(method, coll, fullPath, sub string, body map[string]any, q url.Values) (int, map[string]any) {
	meta := collections[coll]
	if fullPath == "" {
		switch method {
		case http.MethodGet:
			return s.list(coll, q)
		case http.MethodPost:
			return s.create(coll, body)
		}
		return s.errResp(http.StatusMethodNotAllowed, "Method not allowed")
	}
	if s.failing(fullPath, method) {
		return s.errResp(http.StatusInternalServerError, fmt.Sprintf("01070734:3: Configuration error: simulated failure on %s", fullPath))
	}
	obj, ok := s.objects[coll][fullPath]
	if !ok {
		return s.errResp(http.StatusNotFound, fmt.Sprintf("01020036:3: The requested %s (%s) was not found.", meta.noun, fullPath))
	}
	if sub != "" {
		if coll != Virtuals || (sub != "profiles" && sub != "policies") || method != http.MethodGet {
			return s.errResp(http.StatusNotFound, "Object not found")
		}
		return http.StatusOK, map[string]any{"kind": "tm:ltm:virtual:" + sub + ":" + sub + "collectionstate", "items": []any{}}
	}
	switch method {
	case http.MethodGet:
		return http.StatusOK, selectFields(obj, q.Get("$select"))
	case http.MethodPut, http.MethodPatch:
		next := cloneMap(obj)
		for k, v := range body {
			switch k {
			case "name", "partition", "fullPath", "kind", "selfLink", "generation":
				continue
			}
			if v == nil || (k == "pool" && v == "") {
				delete(next, k)
				continue
			}
			next[k] = v
		}
		if status, resp := s.validate(coll, next); status != http.StatusOK {
			return status, resp
		}
		s.generation++
		next["generation"] = s.generation
		s.objects[coll][fullPath] = next
		return http.StatusOK, cloneMap(next)
	case http.MethodDelete:
		if coll == Rules {
			for vp, v := range s.objects[Virtuals] {
				if rs, _ := v["rules"].([]any); slices.Contains(rs, any(fullPath)) {
					return s.errResp(http.StatusBadRequest, fmt.Sprintf("01070265:3: The rule (%s) cannot be deleted because it is in use by a virtual server (%s).", fullPath, vp))
				}
			}
		}
		delete(s.objects[coll], fullPath)
		return http.StatusOK, nil
	}
	return s.errResp(http.StatusMethodNotAllowed, "Method not allowed")
}

func (s *Server) list(coll string, q url.Values) (int, map[string]any) {
	part := ""
	if f := q.Get("$filter"); f != "" {
		v, ok := strings.CutPrefix(f, "partition eq ")
		if !ok || strings.ContainsAny(v, " ") {
			return s.errResp(http.StatusBadRequest, fmt.Sprintf("Query parameter $filter=%s is not supported", f))
		}
		part = v
	}
	keys := make([]string, 0, len(s.objects[coll]))
	for k := range s.objects[coll] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	items := []any{}
	for _, k := range keys {
		o := s.objects[coll][k]
		if part != "" && o["partition"] != part {
			continue
		}
		if s.failing(k, http.MethodGet) {
			return s.errResp(http.StatusInternalServerError, fmt.Sprintf("01070734:3: Configuration error: simulated failure on %s", k))
		}
		items = append(items, selectFields(o, q.Get("$select")))
	}
	kind := strings.TrimSuffix(collections[coll].kind, "state") + "collectionstate"
	return http.StatusOK, map[string]any{
		"kind": kind, "selfLink": fmt.Sprintf("https://localhost/mgmt/tm/%s?ver=%s", coll, version), "items": items,
	}
}

func (s *Server) create(coll string, body map[string]any) (int, map[string]any) {
	meta := collections[coll]
	name, _ := body["name"].(string)
	part, _ := body["partition"].(string)
	if strings.HasPrefix(name, "/") {
		segs := strings.Split(name, "/")
		if len(segs) != 3 {
			return s.errResp(http.StatusBadRequest, fmt.Sprintf("01070734:3: Configuration error: invalid name %q", name))
		}
		part, name = segs[1], segs[2]
	}
	if part == "" {
		part = "Common"
	}
	if name == "" || strings.ContainsAny(name, " /~\"") {
		return s.errResp(http.StatusBadRequest, fmt.Sprintf("01070734:3: Configuration error: invalid name %q", name))
	}
	fullPath := "/" + part + "/" + name
	if s.failing(fullPath, http.MethodPost) {
		return s.errResp(http.StatusInternalServerError, fmt.Sprintf("01070734:3: Configuration error: simulated failure on %s", fullPath))
	}
	s.raceCreate(coll, fullPath)
	if _, exists := s.objects[coll][fullPath]; exists {
		return s.errResp(http.StatusConflict, fmt.Sprintf("01020066:3: The requested %s (%s) already exists in partition %s.", meta.createdAs, fullPath, part))
	}
	obj := cloneMap(body)
	obj["name"], obj["partition"] = name, part
	if status, resp := s.validate(coll, obj); status != http.StatusOK {
		return status, resp
	}
	s.store(coll, fullPath, obj)
	return http.StatusOK, cloneMap(s.objects[coll][fullPath])
}

// raceCreate plays the concurrent creator set up by ConflictOnCreate: it
// stores a foreign object at fullPath, outside any transaction.
func (s *Server) raceCreate(coll, fullPath string) {
	if !s.conflict[fullPath] {
		return
	}
	delete(s.conflict, fullPath)
	segs := strings.Split(fullPath, "/")
	foreign := map[string]any{"name": segs[2], "partition": segs[1]}
	switch coll {
	case Rules:
		foreign["apiAnonymous"] = "when HTTP_REQUEST { # created concurrently }"
	case DataGroups:
		foreign["type"] = "string"
	}
	s.store(coll, fullPath, foreign)
}

// createTarget is the full path a POST body names.
func createTarget(body map[string]any) string {
	name, _ := body["name"].(string)
	part, _ := body["partition"].(string)
	if strings.HasPrefix(name, "/") {
		return name
	}
	if part == "" {
		part = "Common"
	}
	return "/" + part + "/" + name
}

func (s *Server) store(coll, fullPath string, obj map[string]any) {
	name, part := obj["name"].(string), obj["partition"].(string)
	s.generation++
	obj["kind"] = collections[coll].kind
	obj["fullPath"] = fullPath
	obj["generation"] = s.generation
	obj["selfLink"] = fmt.Sprintf("https://localhost/mgmt/tm/%s/~%s~%s?ver=%s", coll, part, name, version)
	s.objects[coll][fullPath] = obj
}

// validate checks what BIG-IP would refuse, and normalises like it does
// (records sorted by name, rule references as full paths).
func (s *Server) validate(coll string, obj map[string]any) (int, map[string]any) {
	part, _ := obj["partition"].(string)
	switch coll {
	case Rules:
		if t, ok := obj["apiAnonymous"].(string); !ok || strings.TrimSpace(t) == "" {
			return s.errResp(http.StatusBadRequest, "01070734:3: Configuration error: iRule definition (apiAnonymous) is required")
		}
	case DataGroups:
		switch obj["type"] {
		case "string", "integer", "ip":
		default:
			return s.errResp(http.StatusBadRequest, fmt.Sprintf("01070734:3: Configuration error: invalid data group type %v", obj["type"]))
		}
		recs, ok := obj["records"].([]any)
		if _, present := obj["records"]; present && !ok {
			return s.errResp(http.StatusBadRequest, "01070734:3: Configuration error: records must be an array")
		}
		seen := map[string]bool{}
		for _, r := range recs {
			m, _ := r.(map[string]any)
			n, _ := m["name"].(string)
			if n == "" {
				return s.errResp(http.StatusBadRequest, "01070734:3: Configuration error: data group record without a name")
			}
			if seen[n] {
				return s.errResp(http.StatusBadRequest, fmt.Sprintf("01070734:3: Configuration error: duplicate record %q", n))
			}
			seen[n] = true
		}
		sort.Slice(recs, func(i, j int) bool {
			a, _ := recs[i].(map[string]any)["name"].(string)
			b, _ := recs[j].(map[string]any)["name"].(string)
			return a < b
		})
		if len(recs) == 0 {
			delete(obj, "records")
		}
	case Virtuals:
		if p, ok := obj["pool"].(string); ok {
			if !strings.HasPrefix(p, "/") {
				p = "/" + part + "/" + p
				obj["pool"] = p
			}
			if _, ok := s.objects[Pools][p]; !ok {
				return s.errResp(http.StatusBadRequest, fmt.Sprintf("01020036:3: The requested Pool (%s) was not found.", p))
			}
		}
		if raw, present := obj["rules"]; present {
			rs, ok := raw.([]any)
			if !ok {
				return s.errResp(http.StatusBadRequest, "01070734:3: Configuration error: rules must be an array")
			}
			seen := map[string]bool{}
			for i, r := range rs {
				n, _ := r.(string)
				if !strings.HasPrefix(n, "/") {
					n = "/" + part + "/" + n
				}
				if _, ok := s.objects[Rules][n]; !ok {
					return s.errResp(http.StatusBadRequest, fmt.Sprintf("01070151:3: Rule object (%s) not found.", n))
				}
				if seen[n] {
					return s.errResp(http.StatusBadRequest, fmt.Sprintf("01070734:3: Configuration error: rule %s is listed twice", n))
				}
				seen[n] = true
				rs[i] = n
			}
			if len(rs) == 0 {
				delete(obj, "rules")
			}
		}
	}
	return http.StatusOK, nil
}

func (s *Server) errResp(code int, msg string) (int, map[string]any) {
	return code, map[string]any{"code": code, "message": msg, "errorStack": []any{}, "apiError": 3}
}

func selectFields(o map[string]any, sel string) map[string]any {
	if sel == "" {
		return cloneMap(o)
	}
	out := map[string]any{}
	for _, f := range strings.Split(sel, ",") {
		if v, ok := o[strings.TrimSpace(f)]; ok {
			out[strings.TrimSpace(f)] = deepCopy(v)
		}
	}
	return out
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func recordsToAny(records map[string]string) []any {
	out := make([]any, 0, len(records))
	for n, d := range records {
		out = append(out, map[string]any{"name": n, "data": d})
	}
	return out
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopy(m)
}

// deepCopy copies JSON-shaped values (maps, slices, scalars).
func deepCopy[T any](v T) T {
	var out T
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("icontroltest: copy: %v", err))
	}
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("icontroltest: copy: %v", err))
	}
	return out
}
