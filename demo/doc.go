// Package demo provides what `backgate demo` runs beside the proxy: a demo
// OpenID Provider with built-in users, and demo upstream apps that show the
// identity headers they received and whether they verify.
package demo
