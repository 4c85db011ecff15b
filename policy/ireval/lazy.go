package ireval

import "github.com/open-policy-agent/opa/v1/ast"

// LazyObject is an object whose members are made when the plan looks them
// up: the policy engine's input, of which a decision reads a handful of
// fields. Member returns exactly what the whole object's Get would (nil
// when the member is absent); Object returns the whole object, built when
// the plan uses the value other than by looking a member up (comparing it,
// iterating it, handing it to a built-in). An evaluation calls them from
// its own goroutine only.
type LazyObject interface {
	Member(key string) *ast.Term
	Object() ast.Object
}

// LazyValue is the value of a term standing for o, to pass as
// EvalInput.Input (or as a member of another LazyObject).
func LazyValue(o LazyObject) ast.Value { return &lazyValue{o: o} }

// lazyValue stands for a LazyObject inside a term. The evaluator replaces
// it by the whole object before any other code sees the term; the
// ast.Value methods, which answer for the whole object, only keep a value
// that escaped that rule correct.
type lazyValue struct {
	o   LazyObject
	obj ast.Object
}

func (l *lazyValue) object() ast.Object {
	if l.obj == nil {
		l.obj = l.o.Object()
	}
	return l.obj
}

func (l *lazyValue) Compare(other ast.Value) int          { return l.object().Compare(other) }
func (l *lazyValue) Find(path ast.Ref) (ast.Value, error) { return l.object().Find(path) }
func (l *lazyValue) Hash() int                            { return l.object().Hash() }
func (l *lazyValue) IsGround() bool                       { return l.object().IsGround() }
func (l *lazyValue) String() string                       { return l.object().String() }
func (l *lazyValue) StringLength() int                    { return l.object().StringLength() }

// whole replaces a lazy value in t by the whole object, in place: every
// holder of the term sees the object from then on. t may be nil.
func whole(t *ast.Term) *ast.Term {
	if t != nil {
		if l, ok := t.Value.(*lazyValue); ok {
			t.Value = l.object()
		}
	}
	return t
}
