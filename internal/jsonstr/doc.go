// Package jsonstr appends JSON strings escaped exactly as log/slog's JSON
// handler escapes them. The access log (proxy) and the decision log
// (policy) encode their lines by hand, without reflection, and share this
// one escaper so the two logs quote every string alike.
package jsonstr
