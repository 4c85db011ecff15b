-- Requests, approvals, grants and the append-only audit trail.
-- Times are UTC Unix nanoseconds; 0 means "not set".
CREATE TABLE requests (
    id              TEXT PRIMARY KEY,
    requester       TEXT NOT NULL,
    requester_email TEXT NOT NULL,
    service         TEXT NOT NULL,
    environment     TEXT NOT NULL,
    duration_ns     BIGINT NOT NULL CHECK (duration_ns > 0),
    reason          TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'revoked', 'expired', 'canceled')),
    created_at      BIGINT NOT NULL,
    decided_at      BIGINT NOT NULL DEFAULT 0,
    decided_by      TEXT NOT NULL DEFAULT '',
    decision_reason TEXT NOT NULL DEFAULT '',
    approvals_n     INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX requests_one_pending ON requests (requester, service, environment) WHERE state = 'pending';
CREATE INDEX requests_by_requester ON requests (requester, created_at);
CREATE INDEX requests_by_state ON requests (state, created_at);

CREATE TABLE approvals (
    request_id     TEXT NOT NULL REFERENCES requests (id),
    approver       TEXT NOT NULL,
    approver_email TEXT NOT NULL,
    at             BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);

CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL UNIQUE REFERENCES requests (id),
    user_ref    TEXT NOT NULL,
    service     TEXT NOT NULL,
    environment TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL DEFAULT 0,
    revoked_by  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX grants_unrevoked ON grants (expires_at) WHERE revoked_at = 0;

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    actor_email TEXT NOT NULL,
    address     TEXT NOT NULL,
    via         TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    grant_id    TEXT NOT NULL,
    user_ref    TEXT NOT NULL,
    service     TEXT NOT NULL,
    environment TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX audit_by_user ON audit (user_ref, at);
CREATE INDEX audit_by_service ON audit (service, at);

-- The audit trail is append-only.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;
