package policy

import (
	"context"
	"errors"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/backgate/backgate/policy/ireval"
)

// snapshot is one immutable version of everything the policy reads under
// data (catalog and grants). It doubles as the storage transaction an
// evaluation reads through, so a decision sees exactly one snapshot and a
// swap never waits for, nor blocks, decisions in flight: SetCatalog and
// SetGrants build a new snapshot and publish it with one atomic store.
type snapshot struct {
	id uint64

	cat         CatalogData // nil until SetCatalog
	catRev      string
	catalog     ast.Object                      // data.catalog, nil until SetCatalog
	catalogTerm *ast.Term                       // catalog as the term data's root holds (the index keys are inside it)
	collection  map[string]map[string]*ast.Term // data.catalog.<collection>[<ref>], for allocation-free reads
	grants      ast.Object                      // data.grants, never nil
	root        ast.Object                      // data, for whole-document reads
	rootTerm    *ast.Term                       // root as a term (the planned evaluator's data)
	index       ireval.Index                    // the collections again, by term, for the planned evaluator
}

// ID implements storage.Transaction.
func (s *snapshot) ID() uint64 { return s.id }

var (
	keyCatalog = ast.InternedTerm("catalog")
	keyGrants  = ast.InternedTerm("grants")
)

func newSnapshot(id uint64, cat CatalogData, catalog ast.Object, grants ast.Object) *snapshot {
	s := &snapshot{id: id, cat: cat, catalog: catalog}
	if catalog != nil {
		s.catRev = cat.Revision()
		s.catalogTerm = ast.NewTerm(catalog)
		s.collection = map[string]map[string]*ast.Term{}
		s.index = ireval.Index{}
		catalog.Foreach(func(k, v *ast.Term) {
			name, ok1 := k.Value.(ast.String)
			obj, ok2 := v.Value.(ast.Object)
			if !ok1 || !ok2 {
				return
			}
			m := make(map[string]*ast.Term, obj.Len())
			obj.Foreach(func(k, v *ast.Term) {
				if ks, ok := k.Value.(ast.String); ok {
					m[string(ks)] = v
				}
			})
			s.collection[string(name)] = m
			if len(m) == obj.Len() { // only string keys: the index is exact
				s.index[v] = m
			}
		})
	}
	return s.withGrants(id, grants)
}

// withGrants is s with other grants (and id): the catalog and its lookup
// maps are shared, not rebuilt, so a grant approved or revoked swaps only
// the grants.
func (s *snapshot) withGrants(id uint64, grants ast.Object) *snapshot {
	n := *s
	n.id, n.grants = id, grants
	if n.grants == nil {
		n.grants = ast.NewObject()
	}
	items := [][2]*ast.Term{{keyGrants, ast.NewTerm(n.grants)}}
	if n.catalogTerm != nil {
		items = append(items, [2]*ast.Term{keyCatalog, n.catalogTerm})
	}
	n.root = ast.NewObject(items...)
	n.rootTerm = ast.NewTerm(n.root)
	return &n
}

// Get implements topdown.BaseCache: evaluations read base documents
// straight from the immutable snapshot, so topdown neither copies paths nor
// builds its per-query cache trie. A nil result (not found) makes topdown
// fall back to snapshotStore.Read, which reports it as missing.
func (s *snapshot) Get(ref ast.Ref) ast.Value {
	if len(ref) == 0 || !ref[0].Equal(ast.DefaultRootDocument) {
		return nil
	}
	if len(ref) == 1 {
		return s.root
	}
	var v ast.Value
	rest := ref[2:]
	switch ref[1].Value {
	case keyGrants.Value:
		v = s.grants
	case keyCatalog.Value:
		if s.catalog == nil {
			return nil
		}
		v = s.catalog
		if len(rest) >= 2 {
			name, ok1 := rest[0].Value.(ast.String)
			key, ok2 := rest[1].Value.(ast.String)
			if ok1 && ok2 {
				if coll, ok := s.collection[string(name)]; ok {
					t, ok := coll[string(key)]
					if !ok {
						return nil
					}
					v, rest = t.Value, rest[2:]
				}
			}
		}
	default:
		return nil
	}
	if len(rest) == 0 {
		return v
	}
	found, err := v.Find(rest)
	if err != nil {
		return nil
	}
	return found
}

// Put implements topdown.BaseCache; there is nothing to remember.
func (*snapshot) Put(ast.Ref, ast.Value) {}

// snapshotStore is the storage.Store topdown reads data through. It is
// read-only and stateless: the transaction handed to the query is the
// *snapshot to read.
type snapshotStore struct{}

var errReadOnly = errors.New("policy: the engine's data store is read-only; use SetCatalog, SetGrants or SetData")

// errNotFound is what every missing document reads as. topdown only asks
// storage.IsNotFound (lookups of absent grants and users are on the hot
// path), so one shared value saves building a path string and an error
// per miss.
var errNotFound = &storage.Error{Code: storage.NotFoundErr, Message: "document missing"}

func notFound(storage.Path) error { return errNotFound }

// Read implements storage.Store.
func (snapshotStore) Read(_ context.Context, txn storage.Transaction, path storage.Path) (any, error) {
	s, ok := txn.(*snapshot)
	if !ok {
		return nil, &storage.Error{Code: storage.InvalidTransactionErr, Message: "unknown transaction"}
	}
	if len(path) == 0 {
		return s.root, nil
	}
	var v ast.Value
	rest := path[1:]
	switch path[0] {
	case "grants":
		v = s.grants
	case "catalog":
		if s.catalog == nil {
			return nil, notFound(path)
		}
		v = s.catalog
		if len(rest) >= 2 {
			if coll, ok := s.collection[rest[0]]; ok {
				t, ok := coll[rest[1]]
				if !ok {
					return nil, notFound(path)
				}
				v, rest = t.Value, rest[2:]
			}
		}
	default:
		return nil, notFound(path)
	}
	for _, seg := range rest {
		switch x := v.(type) {
		case ast.Object:
			t := x.Get(ast.StringTerm(seg))
			if t == nil {
				return nil, notFound(path)
			}
			v = t.Value
		case *ast.Array:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= x.Len() {
				return nil, notFound(path)
			}
			v = x.Elem(i).Value
		default:
			return nil, notFound(path)
		}
	}
	return v, nil
}

// NewTransaction implements storage.Store; evaluations are handed a
// snapshot instead.
func (snapshotStore) NewTransaction(context.Context, ...storage.TransactionParams) (storage.Transaction, error) {
	return nil, errReadOnly
}

// Write implements storage.Store.
func (snapshotStore) Write(context.Context, storage.Transaction, storage.PatchOp, storage.Path, any) error {
	return errReadOnly
}

// Commit implements storage.Store.
func (snapshotStore) Commit(context.Context, storage.Transaction) error { return nil }

// Abort implements storage.Store.
func (snapshotStore) Abort(context.Context, storage.Transaction) {}

// Truncate implements storage.Store.
func (snapshotStore) Truncate(context.Context, storage.Transaction, storage.TransactionParams, storage.Iterator) error {
	return errReadOnly
}

// Register implements storage.Trigger.
func (snapshotStore) Register(context.Context, storage.Transaction, storage.TriggerConfig) (storage.TriggerHandle, error) {
	return nil, errReadOnly
}

// ListPolicies implements storage.Policy.
func (snapshotStore) ListPolicies(context.Context, storage.Transaction) ([]string, error) {
	return nil, nil
}

// GetPolicy implements storage.Policy.
func (snapshotStore) GetPolicy(_ context.Context, _ storage.Transaction, id string) ([]byte, error) {
	return nil, &storage.Error{Code: storage.NotFoundErr, Message: "policy " + strconv.Quote(id) + " not found"}
}

// UpsertPolicy implements storage.Policy.
func (snapshotStore) UpsertPolicy(context.Context, storage.Transaction, string, []byte) error {
	return errReadOnly
}

// DeletePolicy implements storage.Policy.
func (snapshotStore) DeletePolicy(context.Context, storage.Transaction, string) error {
	return errReadOnly
}

var (
	_ storage.Store     = snapshotStore{}
	_ topdown.BaseCache = (*snapshot)(nil)
)
