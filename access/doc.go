// Package access is temporary access: a person asks for access to a service
// for a while, the people Backstage lists as its owners approve (who may is
// decided by Rego), and the grant ends by itself. Requests, grants and the
// append-only audit trail live in SQL (SQLite embedded, PostgreSQL for
// replicas). HTTP pages and the JSON API are in proxy/access.
package access
