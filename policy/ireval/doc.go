// Package ireval runs the decision query of a compiled Rego policy from OPA's
// intermediate representation (the "plan" that OPA's planner produces for
// Wasm and other targets) directly over ast values. It evaluates the same
// policy as OPA's topdown evaluator, with a fraction of the per-rule
// overhead, and reuses OPA's own built-in function implementations.
//
// Compile accepts only the statements and built-ins it supports and returns
// ErrUnsupported otherwise, so a caller can always fall back to topdown.
package ireval
