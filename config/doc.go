// Package config is backgate's one typed configuration: strict YAML decoding
// (unknown keys are errors), defaults in one place, Validate with errors that
// name the field and value, and secrets read from files or environment
// variables, never inline. It does no network I/O.
package config
