// Package rego embeds backgate's shipped Rego policy, its Rego tests and the
// JSON schemas for input and catalog data; package policy compiles and serves it.
package rego
