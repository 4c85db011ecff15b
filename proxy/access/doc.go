// Package access is the HTTP side of temporary access: the pages where people
// ask for access and owners approve, deny or revoke it, and a JSON API for the
// same actions (for a Backstage plugin or a chat bot), all on top of the
// access.Service of the top-level package access.
//
// Endpoints, under BasePath (default /_backgate/access), on any host:
//
//	GET  /request?service=&env=&return=   form (or the pending request)
//	POST /request                         create → 303 /requests/{id}
//	GET  /                                my requests, requests to decide
//	GET  /requests/{id}                   one request (requester, deciders, approvers)
//	POST /requests/{id}/approve|deny|revoke|cancel
//	GET  /api/v1/csrf                     CSRF token for session API clients
//	GET  /api/v1/requests                 mine
//	GET  /api/v1/requests/to-decide
//	GET  /api/v1/requests/{id}
//	POST /api/v1/requests                 {service, environment, duration, reason}
//	POST /api/v1/requests/{id}/approve|deny|revoke|cancel   {reason}
//
// API errors are {"error", "code", "request_id"} with code invalid (400,
// 413, 415), unauthorized (401), forbidden (403), not_found (404),
// conflict (409), method_not_allowed (405) or internal (500, details only
// in the log).
//
// Authentication. Pages use the proxy's session only. The API takes either
// the session cookie or "Authorization: Bearer <service token>"; a request
// that carries an Authorization header is judged by it alone (cookies are
// ignored, a bad token is 401, there is no fallback to the session).
//
// Service tokens. A token is trusted infrastructure, not a person, so it never
// gets powers of its own beyond reading. Every token may read one request by
// id (GET api/v1/requests/{id}); nothing else. A token listed in
// Options.Delegating may in addition act on behalf of a person it has
// authenticated itself (the plugin or bot): it names that person's e-mail in
// "on_behalf_of" (JSON body field on POST, query parameter on GET), the
// handler maps it to a Backstage user with ResolveUser, and the call runs with
// exactly that user's rights through the same Service checks as the pages
// (self-approval included); the audit records Via "service-token:NAME". The
// actor then has no IdP groups, so group-based approval rules do not apply to
// delegated calls (it can only lose rights, never gain them).
//
// CSRF. Every state-changing call made with a cookie must carry a token bound
// to the session's issuer and subject (HMAC-SHA256 under Options.CSRFKey with
// an issued-at time, valid for CSRFTTL), in the form field csrf_token or the
// header X-CSRF-Token; session API clients fetch one from GET api/v1/csrf. A
// cross-site Origin or Sec-Fetch-Site is refused before the token is checked.
package access
