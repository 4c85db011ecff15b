package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/backgate/backgate/policy/ireval"
)

// Errors callers may branch on.
var (
	// ErrNoCatalog: no catalog has been loaded yet (Ready reports it; Decide denies).
	ErrNoCatalog = errors.New("policy: no catalog loaded")
	// ErrUndefined: the policy produced no decision document.
	ErrUndefined = errors.New("policy: decision is undefined")
	// ErrBadDecision: the decision document does not have the expected shape.
	ErrBadDecision = errors.New("policy: malformed decision document")
	// ErrEnginePanic: evaluation panicked; the request must be denied.
	ErrEnginePanic = errors.New("policy: engine panic")
)

// CatalogData is the Backstage catalog as the engine needs it. Package
// backstage satisfies it; Document must have the data.catalog shape described
// in docs and rego/schemas/catalog.json, with lower-cased refs, and must not be
// mutated after it is handed to SetCatalog.
type CatalogData interface {
	Revision() string
	Document() map[string]any
	ResolveUser(subject, email, username string) (string, bool)
}

// Grant is an approved temporary access grant. It counts only while the
// decision time is before ExpiresAt (checked in Rego).
type Grant struct {
	ID          string
	User        string // Backstage user ref, e.g. user:default/alice
	Service     string // Backstage entity ref
	Environment string
	ExpiresAt   time.Time
	ApprovedBy  []string // Backstage user refs
}

// Options configures an Engine.
type Options struct {
	// PolicyDir is a directory with *.rego and schemas/*.json. Empty means
	// PolicyFS, and if that is nil too, the shipped policy embedded from rego/.
	PolicyDir string
	PolicyFS  fs.FS
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock for decision-log timestamps and for inputs without a
	// Time; nil means time.Now.
	Now func() time.Time
	// DecisionLog receives one JSON line per decision; nil disables it.
	DecisionLog io.Writer
	// TopdownOnly evaluates every decision with OPA's topdown evaluator
	// instead of the planned program (package ireval). Tools that trace use
	// topdown anyway; this is for comparing the two.
	TopdownOnly bool
}

// compiledPolicy is one immutable, ready-to-serve policy version.
type compiledPolicy struct {
	compiler *ast.Compiler
	modules  map[string]*ast.Module
	decision preparedQuery
	approval preparedQuery
	maxDur   preparedQuery
	input    *inputBuilder
	revision string
	// fast evaluates DecisionQuery from OPA's plan of the same policy
	// (package ireval); nil means topdown evaluates every decision.
	fast      *ireval.Program
	evaluator string // "planned", or "topdown" with the reason
}

// preparedQuery is a query compiled once per policy version: "result =
// <ref>", and the (rewritten) variable the result is bound to.
type preparedQuery struct {
	ref    string
	body   ast.Body
	result ast.Var
}

func prepareQuery(c *ast.Compiler, ref string) (preparedQuery, error) {
	r, err := ast.ParseRef(ref)
	if err != nil {
		return preparedQuery{}, fmt.Errorf("policy: query %s: %w", ref, err)
	}
	const v = ast.Var("result")
	qc := c.QueryCompiler()
	body, err := qc.Compile(ast.NewBody(ast.Equality.Expr(ast.NewTerm(v), ast.NewTerm(r))))
	if err != nil {
		return preparedQuery{}, fmt.Errorf("policy: prepare %s: %w", ref, toPolicyErrors(err))
	}
	pq := preparedQuery{ref: ref, body: body, result: v}
	for rewritten, orig := range qc.RewrittenVars() {
		if orig == v {
			pq.result = rewritten
		}
	}
	return pq, nil
}

// Engine evaluates the policy for each request. Safe for concurrent use.
type Engine struct {
	fsys  fs.FS
	label string
	dir   string

	log  *slog.Logger
	now  func() time.Time
	dlog *decisionLogger

	policy  atomic.Pointer[compiledPolicy]
	data    atomic.Pointer[snapshot]
	lastErr atomic.Pointer[errBox]
	seen    atomic.Value // [32]byte fingerprint of the source last (attempted to be) loaded

	writeMu sync.Mutex // serialises data swaps (SetCatalog/SetGrants/SetData)
	vcaches sync.Pool  // *vcache, reused across evaluations
	reload  sync.Mutex // serialises Reload

	topdownOnly bool

	idPrefix string
	idSeq    atomic.Uint64
	cancel   topdown.Cancel // never cancelled; see Decide
	noop     metrics.Metrics
}

type errBox struct{ err error }

var _ Authorizer = (*Engine)(nil)

// New compiles the policy and returns an engine that denies everything until
// SetCatalog is called. A policy that does not compile is an error
// (PolicyErrors, with file and line).
func New(opts Options) (*Engine, error) {
	e := &Engine{
		log:         opts.Logger,
		now:         opts.Now,
		topdownOnly: opts.TopdownOnly,
		cancel:      topdown.NewCancel(),
		noop:        metrics.NoOp(),
	}
	e.vcaches.New = func() any { return newVCache() }
	e.data.Store(newSnapshot(0, nil, nil, nil))
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if opts.DecisionLog != nil {
		e.dlog = &decisionLogger{w: opts.DecisionLog}
	}
	switch {
	case opts.PolicyDir != "":
		e.fsys, e.label = openSource(opts.PolicyDir)
		e.dir = opts.PolicyDir
	case opts.PolicyFS != nil:
		e.fsys, e.label = opts.PolicyFS, "policy-fs"
	default:
		e.fsys, e.label = openSource("")
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("policy: decision id prefix: %w", err)
	}
	e.idPrefix = hex.EncodeToString(rnd[:]) + "-"
	if err := e.Reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload re-reads and recompiles the policy source. On failure the previous
// policy keeps serving and the error (PolicyErrors with file:line for
// compile problems) is logged and kept for LastError.
func (e *Engine) Reload() error {
	e.reload.Lock()
	defer e.reload.Unlock()
	e.seen.Store(fingerprint(e.fsys))
	p, err := e.build()
	if err != nil {
		e.lastErr.Store(&errBox{err})
		if old := e.policy.Load(); old != nil {
			e.log.Error("policy reload refused; previous policy keeps serving",
				"source", e.label, "serving_revision", old.revision, "error", err)
		}
		return err
	}
	old := e.policy.Swap(p)
	e.lastErr.Store(nil)
	if old == nil || old.revision != p.revision {
		e.log.Info("policy loaded", "source", e.label, "revision", p.revision)
	}
	return nil
}

func (e *Engine) build() (*compiledPolicy, error) {
	src, err := readSource(e.fsys, e.label)
	if err != nil {
		return nil, err
	}
	c, mods, err := compile(src, false)
	if err != nil {
		return nil, err
	}
	p := &compiledPolicy{compiler: c, modules: mods, revision: src.revision(), input: newInputBuilder(analyseInput(c, DecisionQuery))}
	for _, q := range []struct {
		dst *preparedQuery
		ref string
	}{{&p.decision, DecisionQuery}, {&p.approval, ApprovalQuery}, {&p.maxDur, MaxDurationQuery}} {
		if *q.dst, err = prepareQuery(c, q.ref); err != nil {
			return nil, err
		}
	}
	if e.topdownOnly {
		p.evaluator = "topdown"
		return p, nil
	}
	p.fast, p.evaluator = plannedDecisions(src)
	if p.fast == nil {
		// Not an error: topdown evaluates the same policy, only slower.
		e.log.Info("policy decisions evaluated by topdown", "revision", p.revision, "evaluator", p.evaluator)
	}
	return p, nil
}

// LastError is the error of the most recent failed reload, or nil if the
// most recent reload succeeded.
func (e *Engine) LastError() error {
	if b := e.lastErr.Load(); b != nil {
		return b.err
	}
	return nil
}

// Evaluator says how decisions are evaluated: "planned" (package ireval
// runs OPA's plan of the policy), "topdown", or "topdown (reason)" when the
// policy uses something the planned evaluator does not support.
func (e *Engine) Evaluator() string { return e.policy.Load().evaluator }

// Revision identifies the serving policy: a hash of its modules and schemas.
func (e *Engine) Revision() string { return e.policy.Load().revision }

// CatalogRevision is the revision of the loaded catalog, "" if none.
func (e *Engine) CatalogRevision() string { return e.data.Load().catRev }

// Ready reports whether the engine can allow anything: a policy is compiled
// and a catalog is loaded.
func (e *Engine) Ready() error {
	if e.policy.Load() == nil {
		return ErrNoPolicy
	}
	if e.data.Load().catalog == nil {
		return ErrNoCatalog
	}
	return nil
}

// SetCatalog replaces data.catalog. The document is converted to the
// engine's representation first; publishing it is one atomic pointer swap,
// so decisions never wait for a swap (those in flight finish on the
// snapshot they started with).
func (e *Engine) SetCatalog(c CatalogData) error {
	cv, err := convertCatalog("SetCatalog", c)
	if err != nil {
		return err
	}
	e.swap(func(id uint64, old *snapshot) *snapshot { return newSnapshot(id, c, cv, old.grants) })
	e.log.Info("catalog loaded", "revision", c.Revision())
	return nil
}

func convertCatalog(op string, c CatalogData) (ast.Object, error) {
	if c == nil {
		return nil, fmt.Errorf("policy: %s: nil catalog", op)
	}
	doc := c.Document()
	if doc == nil {
		return nil, fmt.Errorf("policy: %s: catalog revision %q has a nil document", op, c.Revision())
	}
	v, err := catalogValue(doc)
	if err != nil {
		return nil, fmt.Errorf("policy: %s: convert catalog revision %q: %w", op, c.Revision(), err)
	}
	return v, nil
}

// SetGrants replaces data.grants; the next decision sees them. Refs are
// lower-cased; grants with an empty ID, user, service or environment are
// rejected.
func (e *Engine) SetGrants(grants []Grant) error {
	v, err := grantsValue(grants)
	if err != nil {
		return err
	}
	e.swap(func(id uint64, old *snapshot) *snapshot { return old.withGrants(id, v) })
	return nil
}

// SetData replaces the catalog and the grants together (one swap).
func (e *Engine) SetData(c CatalogData, grants []Grant) error {
	cv, err := convertCatalog("SetData", c)
	if err != nil {
		return err
	}
	gv, err := grantsValue(grants)
	if err != nil {
		return err
	}
	e.swap(func(id uint64, _ *snapshot) *snapshot { return newSnapshot(id, c, cv, gv) })
	return nil
}

// swap publishes next(current) as the data snapshot; writers are
// serialised so concurrent SetCatalog and SetGrants never lose an update.
func (e *Engine) swap(next func(id uint64, old *snapshot) *snapshot) {
	e.writeMu.Lock()
	defer e.writeMu.Unlock()
	old := e.data.Load()
	e.data.Store(next(old.id+1, old))
}

func grantsValue(grants []Grant) (ast.Object, error) {
	byUser := map[string]map[string][]*ast.Term{}
	for i, g := range grants {
		if g.ID == "" || g.User == "" || g.Service == "" || g.Environment == "" {
			return nil, fmt.Errorf("policy: grant %d (id %q): id, user, service and environment are required", i, g.ID)
		}
		if g.ExpiresAt.IsZero() {
			return nil, fmt.Errorf("policy: grant %q: expires_at is required", g.ID)
		}
		user, svc := strings.ToLower(g.User), strings.ToLower(g.Service)
		approved := make([]*ast.Term, len(g.ApprovedBy))
		for j, a := range g.ApprovedBy {
			approved[j] = ast.StringTerm(strings.ToLower(a))
		}
		obj := ast.NewObject(
			ast.Item(ast.StringTerm("id"), ast.StringTerm(g.ID)),
			ast.Item(ast.StringTerm("environment"), ast.StringTerm(strings.ToLower(g.Environment))),
			ast.Item(ast.StringTerm("expires_at"), ast.NumberTerm(json.Number(strconv.FormatInt(g.ExpiresAt.UnixNano(), 10)))),
			ast.Item(ast.StringTerm("approved_by"), ast.ArrayTerm(approved...)),
		)
		if byUser[user] == nil {
			byUser[user] = map[string][]*ast.Term{}
		}
		byUser[user][svc] = append(byUser[user][svc], ast.NewTerm(obj))
	}
	root := ast.NewObject()
	for user, svcs := range byUser {
		o := ast.NewObject()
		for svc, list := range svcs {
			o.Insert(ast.StringTerm(svc), ast.ArrayTerm(list...))
		}
		root.Insert(ast.StringTerm(user), ast.NewTerm(o))
	}
	return root, nil
}

// Decide evaluates the policy for one request. Any evaluation error, an
// undefined or malformed decision, or a panic inside the engine is returned
// as an error, with a Decision whose Allow is false; the caller must deny.
func (e *Engine) Decide(ctx context.Context, in Input) (d Decision, err error) {
	return e.decide(ctx, in, nil)
}

func (e *Engine) decide(ctx context.Context, in Input, tracer topdown.QueryTracer) (d Decision, err error) {
	d.ID = e.nextID()
	defer func() {
		if r := recover(); r != nil {
			d = Decision{ID: d.ID, PolicyRevision: d.PolicyRevision, CatalogRevision: d.CatalogRevision}
			err = fmt.Errorf("%w: %v", ErrEnginePanic, r)
			e.log.Error("policy engine panic; request denied", "decision_id", d.ID, "panic", fmt.Sprint(r))
		}
		if err != nil {
			d.Allow = false
		}
		if e.dlog != nil {
			e.dlog.log(e.now(), &in, &d, err)
		}
	}()
	if err := ctx.Err(); err != nil {
		return d, fmt.Errorf("policy: decide: %w", err)
	}
	p := e.policy.Load()
	d.PolicyRevision = p.revision
	snap := e.data.Load()
	if snap.cat != nil {
		d.CatalogRevision = snap.catRev
		if ref, ok := snap.cat.ResolveUser(in.User.Subject, in.User.Email, in.User.Username); ok {
			d.UserRef = strings.ToLower(ref)
		}
	}
	if in.Time.IsZero() {
		in.Time = e.now()
	}
	var v ast.Value
	if p.fast != nil && tracer == nil {
		v, err = e.evalFast(ctx, p, snap, p.input.lazy(&in, d.UserRef), in.Time)
	} else {
		v, err = e.eval(ctx, p, &p.decision, snap, p.input.build(&in, d.UserRef), in.Time, tracer)
	}
	if err != nil {
		return d, err
	}
	if err := readDecision(v, &d); err != nil {
		return d, err
	}
	return d, nil
}

// eval runs one prepared query against one data snapshot and returns the
// value of its result. Undefined is ErrUndefined; more than one result (a
// policy that is not a single document) is ErrBadDecision.
func (e *Engine) eval(ctx context.Context, p *compiledPolicy, pq *preparedQuery, snap *snapshot, input ast.Value, at time.Time, tracer topdown.QueryTracer) (ast.Value, error) {
	vc := e.vcaches.Get().(*vcache)
	defer vc.release(&e.vcaches)
	q := topdown.NewQuery(pq.body).
		WithVirtualCache(vc).
		WithCompiler(p.compiler).
		WithStore(snapshotStore{}).
		WithTransaction(snap).
		WithBaseCache(snap).
		WithInput(ast.NewTerm(input)).
		WithTime(at).
		WithCancel(e.cancel).
		WithMetrics(e.noop)
	if tracer != nil {
		q = q.WithQueryTracer(tracer)
	}
	var result ast.Value
	n := 0
	err := q.Iter(ctx, func(qr topdown.QueryResult) error {
		n++
		if t := qr[pq.result]; t != nil {
			result = t.Value
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("policy: evaluate %s: %w", pq.ref, err)
	case n == 0 || result == nil:
		return nil, fmt.Errorf("%w: %s", ErrUndefined, pq.ref)
	case n > 1:
		return nil, fmt.Errorf("%w: %s has %d results", ErrBadDecision, pq.ref, n)
	}
	return result, nil
}

// evalFast evaluates the decision with the planned program; same contract
// as eval.
func (e *Engine) evalFast(ctx context.Context, p *compiledPolicy, snap *snapshot, input *ast.Term, at time.Time) (ast.Value, error) {
	t, err := p.fast.Eval(ctx, ireval.EvalInput{Input: input, Data: snap.rootTerm, Time: at, Index: snap.index})
	switch {
	case errors.Is(err, ireval.ErrMultipleResults):
		return nil, fmt.Errorf("%w: %s has more than one result", ErrBadDecision, DecisionQuery)
	case err != nil:
		return nil, fmt.Errorf("policy: evaluate %s: %w", DecisionQuery, err)
	case t == nil:
		return nil, fmt.Errorf("%w: %s", ErrUndefined, DecisionQuery)
	}
	return t.Value, nil
}

func (e *Engine) nextID() string {
	n := e.idSeq.Add(1)
	b := make([]byte, 0, len(e.idPrefix)+12)
	b = append(b, e.idPrefix...)
	b = strconv.AppendUint(b, n, 10)
	return string(b)
}

var (
	keyAllow     = ast.StringTerm("allow")
	keyMatched   = ast.StringTerm("matched")
	keyReasons   = ast.StringTerm("reasons")
	keyReason    = ast.StringTerm("reason")
	keyRules     = ast.StringTerm("rules")
	keyRule      = ast.StringTerm("rule")
	keyGrant     = ast.StringTerm("grant")
	keyID        = ast.StringTerm("id")
	keyExpiresAt = ast.StringTerm("expires_at")
)

// readDecision copies the decision object into d; any unexpected shape is
// an error. The decision is {"allow": bool, "matched": collection of
// {"rule", "reason", optional "grant": {"id", "expires_at"}}}; the earlier
// shape {"allow", "reasons": [...], "rules": [...], "grant": {...}} is still
// read, so a policy directory written for it keeps working.
func readDecision(v ast.Value, d *Decision) error {
	obj, ok := v.(ast.Object)
	if !ok {
		return fmt.Errorf("%w: decision is %s, not an object", ErrBadDecision, ast.ValueName(v))
	}
	var allow ast.Boolean
	if t := obj.Get(keyAllow); t != nil {
		allow, ok = t.Value.(ast.Boolean)
	}
	if !ok {
		return fmt.Errorf("%w: decision.allow is missing or not a boolean", ErrBadDecision)
	}
	if m := obj.Get(keyMatched); m != nil {
		if err := readMatched(m.Value, d); err != nil {
			return err
		}
		d.Allow = bool(allow)
		return nil
	}
	reasons, err := stringArray(obj.Get(keyReasons), "reasons")
	if err != nil {
		return err
	}
	rules, err := stringArray(obj.Get(keyRules), "rules")
	if err != nil {
		return err
	}
	d.Reasons, d.Rules = reasons, rules
	if g := obj.Get(keyGrant); g != nil {
		if err := readGrant(g.Value, d, "decision.grant"); err != nil {
			return err
		}
	}
	d.Allow = bool(allow)
	return nil
}

// readMatched reads decision.matched (a set or an array of objects).
func readMatched(v ast.Value, d *Decision) error {
	var n int
	var elem func(int) *ast.Term
	switch c := v.(type) {
	case ast.Set:
		terms := c.Slice()
		n, elem = len(terms), func(i int) *ast.Term { return terms[i] }
	case *ast.Array:
		n, elem = c.Len(), c.Elem
	default:
		return fmt.Errorf("%w: decision.matched is %s, not a set or an array", ErrBadDecision, ast.ValueName(v))
	}
	d.Reasons, d.Rules = make([]string, n), make([]string, n)
	for i := range n {
		m, ok := elem(i).Value.(ast.Object)
		if !ok {
			return fmt.Errorf("%w: decision.matched[%d] is not an object", ErrBadDecision, i)
		}
		rule, ok1 := getString(m, keyRule)
		reason, ok2 := getString(m, keyReason)
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: decision.matched[%d] needs string rule and reason", ErrBadDecision, i)
		}
		d.Rules[i], d.Reasons[i] = rule, reason
		if g := m.Get(keyGrant); g != nil {
			var gd Decision
			if err := readGrant(g.Value, &gd, fmt.Sprintf("decision.matched[%d].grant", i)); err != nil {
				return err
			}
			// The grant reported is the one running longest (ties: the larger id).
			if gd.GrantID != "" && (d.GrantID == "" || gd.GrantExpiry.After(d.GrantExpiry) ||
				(gd.GrantExpiry.Equal(d.GrantExpiry) && gd.GrantID > d.GrantID)) {
				d.GrantID, d.GrantExpiry = gd.GrantID, gd.GrantExpiry
			}
		}
	}
	return nil
}

func getString(o ast.Object, k *ast.Term) (string, bool) {
	t := o.Get(k)
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

// readGrant reads {"id": string, "expires_at": integer ns}; {} means none.
func readGrant(v ast.Value, d *Decision, field string) error {
	gobj, ok := v.(ast.Object)
	if !ok {
		return fmt.Errorf("%w: %s is not an object", ErrBadDecision, field)
	}
	if gobj.Len() == 0 {
		return nil
	}
	id, _ := getString(gobj, keyID)
	var ns int64
	isInt := false
	if t := gobj.Get(keyExpiresAt); t != nil {
		if n, ok := t.Value.(ast.Number); ok {
			ns, isInt = n.Int64()
		}
	}
	if id == "" || !isInt {
		return fmt.Errorf("%w: %s needs id and integer expires_at", ErrBadDecision, field)
	}
	d.GrantID, d.GrantExpiry = id, time.Unix(0, ns).UTC()
	return nil
}

func stringArray(t *ast.Term, field string) ([]string, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: decision.%s is missing", ErrBadDecision, field)
	}
	arr, ok := t.Value.(*ast.Array)
	if !ok {
		return nil, fmt.Errorf("%w: decision.%s is not an array", ErrBadDecision, field)
	}
	out := make([]string, arr.Len())
	for i := range out {
		s, ok := arr.Elem(i).Value.(ast.String)
		if !ok {
			return nil, fmt.Errorf("%w: decision.%s[%d] is not a string", ErrBadDecision, field, i)
		}
		out[i] = string(s)
	}
	return out, nil
}
