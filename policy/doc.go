// Package policy decides requests with an embedded OPA engine evaluating the
// Rego in rego/ (or a directory the security team points it at) over Backstage
// catalog data, IdP claims and temporary grants.
package policy
