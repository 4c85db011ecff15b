// Package proxy is backgate's HTTP front: it matches a request to a route,
// makes sure the person is logged in, asks the policy engine for a decision,
// and forwards allowed requests to BIG-IP with signed identity headers, after
// removing every client-supplied copy of them. It shows people clear pages
// for everything else, and writes one access log record per request.
//
// Login and sessions (proxy/auth), header signing (proxy/signer) and pages
// (proxy/pages) are subpackages; this package wires them into the request
// path through the small interfaces declared here.
package proxy
