package policy

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
)

// converter turns a JSON-typed document (map[string]any, []any, string,
// bool, nil, json.Number and Go numbers) into an ast.Value. Compared with
// ast.InterfaceToValue it shares one *ast.Term per distinct string (refs
// repeat across members, groups and owners lists), converts a []any that
// appears in several places once (package backstage shares all_members
// slices with owner_users), and builds each object in one allocation block.
// Terms are immutable once built, so sharing them is safe.
type converter struct {
	strings map[string]*ast.Term
	arrays  map[*any]arrayMemo       // by identity: the same []any met again
	content map[uint64][]contentMemo // string arrays by content
	seed    maphash.Seed
	items   [][2]*ast.Term // scratch for object items
	slab    termSlab       // terms are carved from blocks: fewer heap objects for the GC to visit
}

// newTerm returns a term for v from the current block of terms.
func (c *converter) newTerm(v ast.Value) *ast.Term { return c.slab.term(v) }

type arrayMemo struct {
	n int
	t *ast.Term
}

type contentMemo struct {
	src []any
	t   *ast.Term
}

func newConverter() *converter {
	return &converter{
		strings: make(map[string]*ast.Term, 1<<15),
		arrays:  map[*any]arrayMemo{},
		content: map[uint64][]contentMemo{},
		seed:    maphash.MakeSeed(),
		slab:    termSlab{block: 1024},
	}
}

// stringsHash buckets an array whose elements are all strings by its
// length, first few and last elements (candidates are compared in full);
// ok is false for any other array.
func (c *converter) stringsHash(x []any) (h uint64, ok bool) {
	for _, e := range x {
		if _, isStr := e.(string); !isStr {
			return 0, false
		}
	}
	var mh maphash.Hash
	mh.SetSeed(c.seed)
	mh.WriteString(strconv.Itoa(len(x)))
	for i, e := range x {
		if i == 4 {
			mh.WriteString(x[len(x)-1].(string))
			break
		}
		mh.WriteByte(0)
		mh.WriteString(e.(string))
	}
	return mh.Sum64(), true
}

func sameStrings(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].(string) != b[i].(string) {
			return false
		}
	}
	return true
}

func (c *converter) str(s string) *ast.Term {
	if t, ok := c.strings[s]; ok {
		return t
	}
	t := c.newTerm(ast.String(s))
	c.strings[s] = t
	return t
}

func (c *converter) term(v any) (*ast.Term, error) {
	switch x := v.(type) {
	case string:
		return c.str(x), nil
	case map[string]any:
		if len(x) == 0 {
			// Most entities have no annotations: one shared empty object
			// instead of one (a map and three slices) per entity.
			return ast.InternedEmptyObject, nil // catalog values are never mutated
		}
		o, err := c.object(x)
		if err != nil {
			return nil, err
		}
		return c.newTerm(o), nil
	case []any:
		if len(x) == 0 {
			return emptyArray, nil
		}
		if m, ok := c.arrays[&x[0]]; ok && m.n == len(x) {
			return m.t, nil
		}
		// Equal lists of refs (the members of a group repeated as the
		// owner_users of each component it owns, the all_groups of users in
		// the same team) become one shared array.
		h, strs := c.stringsHash(x)
		if strs {
			for _, m := range c.content[h] {
				if sameStrings(m.src, x) {
					c.arrays[&x[0]] = arrayMemo{len(x), m.t}
					return m.t, nil
				}
			}
		}
		elems := make([]*ast.Term, len(x))
		for i, e := range x {
			t, err := c.term(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			elems[i] = t
		}
		t := c.newTerm(ast.NewArray(elems...))
		c.arrays[&x[0]] = arrayMemo{len(x), t}
		if strs {
			c.content[h] = append(c.content[h], contentMemo{x, t})
		}
		return t, nil
	case []string:
		elems := make([]*ast.Term, len(x))
		for i, e := range x {
			elems[i] = c.str(e)
		}
		return ast.ArrayTerm(elems...), nil
	case bool:
		return ast.InternedTerm(x), nil
	case nil:
		return ast.InternedNullTerm, nil
	case json.Number:
		return ast.NumberTerm(x), nil
	case int:
		return ast.InternedTerm(x), nil
	case int64:
		return ast.NumberTerm(json.Number(strconv.FormatInt(x, 10))), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", x)
		}
		return ast.NumberTerm(json.Number(strconv.FormatFloat(x, 'g', -1, 64))), nil
	default:
		// Anything else (structs, typed maps) takes the generic route.
		val, err := ast.InterfaceToValue(x)
		if err != nil {
			return nil, err
		}
		return ast.NewTerm(val), nil
	}
}

func (c *converter) object(m map[string]any) (ast.Object, error) {
	start := len(c.items)
	for k, v := range m {
		t, err := c.term(v)
		if err != nil {
			clear(c.items[start:])
			c.items = c.items[:start]
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		c.items = append(c.items, [2]*ast.Term{c.str(k), t})
	}
	o := ast.NewObject(c.items[start:]...)
	clear(c.items[start:])
	c.items = c.items[:start]
	return o, nil
}

// catalogValue converts a catalog document (the data.catalog shape) to an
// ast.Object.
func catalogValue(doc map[string]any) (ast.Object, error) {
	return newConverter().object(doc)
}
