// Package icontrol plans and applies backgate's BIG-IP objects (the edge-token
// iRule, its data groups and the iRule's attachment to virtual servers) over
// iControl REST with go-bigip, and rotates the edge-token HMAC keys published
// in the keys data group without breaking tokens already issued.
//
// # How go-bigip is used, and its traps
//
// Reads use go-bigip's typed getters (IRule, GetInternalDataGroup); login,
// writes and transactions go through its generic (*bigip.BigIP).APICall with
// bodies built here, because:
//   - NewTokenSession needs TrustedCertificate to be a readable file even to
//     use the system roots, adds the system roots to a custom CA, prints to
//     stdout and builds its own transport, so the password could be sent
//     over a connection this package did not configure. Login here is the
//     same request (POST /mgmt/shared/authn/login with loginProviderName
//     "tmos") over the transport built from Options.
//   - go-bigip never refreshes a token: a 401 answer makes this package log
//     in again and retry the request once.
//   - Its Get* functions return an error whose text is F5's message for a 404
//     ("01020036:3: The requested rule (/Common/x) was not found."), with no
//     status code. The HTTP status is read from the transport instead (see
//     below), so 404 means "absent" without matching message text.
//   - ModifyVirtualServer PATCHes the whole VirtualServer struct, whose pool
//     is not omitempty and whose persist/policies are null when unset, which
//     detaches the pool on a real device. Virtual servers are changed with a
//     PATCH of {"rules":[...]} only, keeping the rules already there.
//   - CreateIRule cannot set a partition, ModifyInternalDataGroupRecords
//     (PUT) drops "records" when empty and so cannot clear a group, and
//     StartTransaction/CommitTransaction log to the global logger and discard
//     the commit answer. Equivalent requests are made with APICall.
//   - APICall sleeps 10 s and retries on any 503 (or "active asynchronous
//     task" error) and takes no context. The *http.Transport handed to
//     go-bigip routes every https request to a RoundTripper of this package
//     (http.Transport.RegisterProtocol) that binds the caller's context to
//     the request, retries 503s itself a bounded number of times with a
//     context-aware wait (Options.Retries503, Options.RetryWait), and then
//     hands go-bigip the 503 as plain text so it fails at once instead of
//     sleeping.
//
// Several writes are made in one iControl REST transaction (POST
// /mgmt/tm/transaction, the writes with X-F5-REST-Coordination-Id, then PATCH
// {"state":"VALIDATING"}), so a failure leaves the device as it was. Reads are
// never made inside a transaction.
package icontrol
