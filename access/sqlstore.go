package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver
)

// Dialect is the SQL flavour of a database.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// SQLStore is the Store on database/sql: SQLite (embedded, one process) or
// PostgreSQL (shared by several backgate replicas). Both use the same
// schema, created and upgraded by versioned migrations when opened.
type SQLStore struct {
	db      *sql.DB
	dialect Dialect
	// writeMu serializes write transactions of this process on SQLite,
	// which allows one writer at a time anyway; it saves the busy-wait
	// sleeps of SQLite's busy handler. Other processes are covered by
	// busy_timeout and BEGIN IMMEDIATE.
	writeMu sync.Mutex
}

var _ Store = (*SQLStore)(nil)

// OpenSQLite opens (creating if needed) the SQLite database file at path,
// in WAL mode with synchronous=FULL (an acknowledged commit survives a
// crash), foreign keys on, a busy timeout, and write transactions that take
// the write lock at BEGIN. It applies pending migrations.
func OpenSQLite(ctx context.Context, path string) (*SQLStore, error) {
	if path == "" {
		return nil, fmt.Errorf("access: sqlite path is empty")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("access: sqlite path %q: must not contain '?' or '#'", path)
	}
	dsn := "file:" + path + "?_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("access: open sqlite %q: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	s := &SQLStore{db: db, dialect: SQLite}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("access: sqlite %q: %w", path, err)
	}
	return s, nil
}

// OpenPostgres connects to PostgreSQL with a pgx connection string (URL or
// key=value; search_path may be given as a parameter) and applies pending
// migrations. Several replicas may open the same database at once.
func OpenPostgres(ctx context.Context, dsn string) (*SQLStore, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("access: open postgres: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("access: connect to postgres: %w", err)
	}
	s := &SQLStore{db: db, dialect: Postgres}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("access: postgres: %w", err)
	}
	return s, nil
}

// Dialect reports which database s uses.
func (s *SQLStore) Dialect() Dialect { return s.dialect }

// DB is the underlying handle (for tests and health checks).
func (s *SQLStore) DB() *sql.DB { return s.db }

// Close closes the database handle.
func (s *SQLStore) Close() error { return s.db.Close() }

// q rewrites ? placeholders as $1, $2, ... for PostgreSQL. Queries here
// never contain a literal '?'.
func (s *SQLStore) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// write runs fn in a write transaction and commits it.
func (s *SQLStore) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.dialect == SQLite {
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func toNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

const requestCols = `r.id, r.requester, r.requester_email, r.service, r.environment, r.duration_ns, r.reason, r.state,
	r.created_at, r.decided_at, r.decided_by, r.decision_reason,
	COALESCE(g.id, ''), COALESCE(g.expires_at, 0), COALESCE(g.revoked_at, 0), COALESCE(g.revoked_by, '')`

const requestFrom = ` FROM requests r LEFT JOIN grants g ON g.request_id = r.id`

type scanner interface{ Scan(dest ...any) error }

func scanRequest(sc scanner) (Request, error) {
	var r Request
	var dur, created, decided, expires, revoked int64
	var state string
	if err := sc.Scan(&r.ID, &r.Requester, &r.RequesterEmail, &r.Service, &r.Environment, &dur, &r.Reason, &state,
		&created, &decided, &r.DecidedBy, &r.DecisionReason, &r.GrantID, &expires, &revoked, &r.RevokedBy); err != nil {
		return Request{}, err
	}
	r.Duration = time.Duration(dur)
	r.State = State(state)
	r.CreatedAt = fromNS(created)
	r.DecidedAt = fromNS(decided)
	r.ExpiresAt = fromNS(expires)
	r.RevokedAt = fromNS(revoked)
	return r, nil
}

func (s *SQLStore) getRequest(ctx context.Context, qr querier, id string) (Request, error) {
	r, err := scanRequest(qr.QueryRowContext(ctx, s.q(`SELECT `+requestCols+requestFrom+` WHERE r.id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, fmt.Errorf("request %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Request{}, fmt.Errorf("read request %q: %w", id, err)
	}
	if err := s.loadApprovals(ctx, qr, []*Request{&r}); err != nil {
		return Request{}, err
	}
	return r, nil
}

func (s *SQLStore) loadApprovals(ctx context.Context, qr querier, rs []*Request) error {
	if len(rs) == 0 {
		return nil
	}
	byID := make(map[string]*Request, len(rs))
	args := make([]any, 0, len(rs))
	for _, r := range rs {
		byID[r.ID] = r
		args = append(args, r.ID)
	}
	// Chunk to stay below parameter limits.
	for start := 0; start < len(args); start += 500 {
		end := min(start+500, len(args))
		chunk := args[start:end]
		query := `SELECT request_id, approver, approver_email, at FROM approvals WHERE request_id IN (?` +
			strings.Repeat(", ?", len(chunk)-1) + `) ORDER BY at, approver`
		rows, err := qr.QueryContext(ctx, s.q(query), chunk...)
		if err != nil {
			return fmt.Errorf("read approvals: %w", err)
		}
		for rows.Next() {
			var id string
			var a Approval
			var at int64
			if err := rows.Scan(&id, &a.By, &a.Email, &at); err != nil {
				rows.Close()
				return fmt.Errorf("read approvals: %w", err)
			}
			a.At = fromNS(at)
			if r := byID[id]; r != nil {
				r.Approvals = append(r.Approvals, a)
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("read approvals: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read approvals: %w", err)
		}
	}
	return nil
}

func (s *SQLStore) insertAudit(ctx context.Context, tx *sql.Tx, ev AuditEvent) (AuditEvent, error) {
	ev.Time = ev.Time.UTC()
	err := tx.QueryRowContext(ctx, s.q(`INSERT INTO audit (at, action, actor, actor_email, address, via, request_id, grant_id,
		user_ref, service, environment, reason, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		toNS(ev.Time), ev.Action, ev.Actor, ev.ActorEmail, ev.Address, ev.Via, ev.RequestID, ev.GrantID,
		ev.User, ev.Service, ev.Environment, ev.Reason, ev.Detail).Scan(&ev.ID)
	if err != nil {
		return AuditEvent{}, fmt.Errorf("write audit %s: %w", ev.Action, err)
	}
	return ev, nil
}

// CreateRequest implements Store.
func (s *SQLStore) CreateRequest(ctx context.Context, r Request, ev AuditEvent) (Request, AuditEvent, bool, error) {
	for attempt := 0; attempt < 5; attempt++ {
		var out Request
		var outEv AuditEvent
		existing := false
		gone := false
		err := s.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, s.q(`INSERT INTO requests (id, requester, requester_email, service, environment,
				duration_ns, reason, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING`),
				r.ID, r.Requester, r.RequesterEmail, r.Service, r.Environment, int64(r.Duration), r.Reason, toNS(r.CreatedAt))
			if err != nil {
				return fmt.Errorf("insert request: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("insert request: %w", err)
			}
			if n == 0 {
				existing = true
				row := tx.QueryRowContext(ctx, s.q(`SELECT `+requestCols+requestFrom+
					` WHERE r.requester = ? AND r.service = ? AND r.environment = ? AND r.state = 'pending'`),
					r.Requester, r.Service, r.Environment)
				out, err = scanRequest(row)
				if errors.Is(err, sql.ErrNoRows) {
					gone = true // decided meanwhile (or an ID clash): try again
					return nil
				}
				if err != nil {
					return fmt.Errorf("read pending request: %w", err)
				}
				return s.loadApprovals(ctx, tx, []*Request{&out})
			}
			outEv, err = s.insertAudit(ctx, tx, ev)
			if err != nil {
				return err
			}
			out = r
			out.State = StatePending
			return nil
		})
		if err != nil {
			return Request{}, AuditEvent{}, false, err
		}
		if gone {
			continue
		}
		return out, outEv, existing, nil
	}
	return Request{}, AuditEvent{}, false, fmt.Errorf("create request: %w", ErrConflict)
}

// GetRequest implements Store.
func (s *SQLStore) GetRequest(ctx context.Context, id string) (Request, error) {
	return s.getRequest(ctx, s.db, id)
}

// ListRequests implements Store.
func (s *SQLStore) ListRequests(ctx context.Context, f RequestFilter) ([]Request, error) {
	query := `SELECT ` + requestCols + requestFrom + ` WHERE 1 = 1`
	var args []any
	if f.Requester != "" {
		query += ` AND r.requester = ?`
		args = append(args, f.Requester)
	}
	if f.State != "" {
		query += ` AND r.state = ?`
		args = append(args, string(f.State))
	}
	query += ` ORDER BY r.created_at DESC, r.id`
	if f.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	ptrs := make([]*Request, len(out))
	for i := range out {
		ptrs[i] = &out[i]
	}
	if err := s.loadApprovals(ctx, s.db, ptrs); err != nil {
		return nil, err
	}
	return out, nil
}

// stateError explains why a conditional update of request id touched no row.
func (s *SQLStore) stateError(ctx context.Context, tx *sql.Tx, id string, want State) error {
	var state string
	err := tx.QueryRowContext(ctx, s.q(`SELECT state FROM requests WHERE id = ?`), id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("request %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read request %q: %w", id, err)
	}
	switch {
	case State(state) == want && want == StatePending:
		return fmt.Errorf("request %q: %w", id, ErrConflict)
	case want == StatePending:
		return fmt.Errorf("request %q is %s: %w", id, state, ErrNotPending)
	default:
		return fmt.Errorf("request %q is %s: %w", id, state, ErrNotActive)
	}
}

// changeRequest runs mutate and records the audit event it returns in one
// write transaction, and returns the request as it stands afterwards with
// the event as stored.
func (s *SQLStore) changeRequest(ctx context.Context, id string, mutate func(tx *sql.Tx) (AuditEvent, error)) (Request, AuditEvent, error) {
	var out Request
	var outEv AuditEvent
	err := s.write(ctx, func(tx *sql.Tx) error {
		ev, err := mutate(tx)
		if err != nil {
			return err
		}
		if outEv, err = s.insertAudit(ctx, tx, ev); err != nil {
			return err
		}
		out, err = s.getRequest(ctx, tx, id)
		return err
	})
	if err != nil {
		return Request{}, AuditEvent{}, err
	}
	return out, outEv, nil
}

// execGuarded runs a conditional update of request id and turns "no row
// changed" into the error that says why (no such request, not in state
// want, changed concurrently).
func (s *SQLStore) execGuarded(ctx context.Context, tx *sql.Tx, verb, id string, want State, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("%s request %q: %w", verb, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s request %q: %w", verb, id, err)
	}
	if n == 0 {
		return s.stateError(ctx, tx, id, want)
	}
	return nil
}

// Approve implements Store.
func (s *SQLStore) Approve(ctx context.Context, op ApproveOp) (Request, AuditEvent, error) {
	return s.changeRequest(ctx, op.RequestID, func(tx *sql.Tx) (AuditEvent, error) {
		at := toNS(op.Approval.At)
		var err error
		if op.Complete {
			err = s.execGuarded(ctx, tx, "approve", op.RequestID, StatePending, `UPDATE requests SET state = 'approved', approvals_n = approvals_n + 1,
				decided_at = ?, decided_by = ? WHERE id = ? AND state = 'pending' AND approvals_n = ?`,
				at, op.Approval.By, op.RequestID, op.SeenApprovals)
		} else {
			err = s.execGuarded(ctx, tx, "approve", op.RequestID, StatePending, `UPDATE requests SET approvals_n = approvals_n + 1
				WHERE id = ? AND state = 'pending' AND approvals_n = ?`, op.RequestID, op.SeenApprovals)
		}
		if err != nil {
			return AuditEvent{}, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO approvals (request_id, approver, approver_email, at) VALUES (?, ?, ?, ?)`),
			op.RequestID, op.Approval.By, op.Approval.Email, at); err != nil {
			return AuditEvent{}, fmt.Errorf("record approval of %q: %w", op.RequestID, err)
		}
		ev := op.Event
		if op.Complete {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO grants (id, request_id, user_ref, service, environment, created_at, expires_at)
				SELECT ?, id, requester, service, environment, ?, ? FROM requests WHERE id = ?`),
				op.Grant.ID, toNS(op.Grant.CreatedAt), toNS(op.Grant.ExpiresAt), op.RequestID); err != nil {
				return AuditEvent{}, fmt.Errorf("insert grant for %q: %w", op.RequestID, err)
			}
			ev.GrantID = op.Grant.ID
		}
		return ev, nil
	})
}

// Finish implements Store.
func (s *SQLStore) Finish(ctx context.Context, op FinishOp) (Request, AuditEvent, error) {
	if op.State != StateDenied && op.State != StateCanceled {
		return Request{}, AuditEvent{}, fmt.Errorf("close request %q as %q: %w", op.RequestID, op.State, ErrInvalid)
	}
	return s.changeRequest(ctx, op.RequestID, func(tx *sql.Tx) (AuditEvent, error) {
		err := s.execGuarded(ctx, tx, "close", op.RequestID, StatePending, `UPDATE requests SET state = ?, decided_at = ?, decided_by = ?, decision_reason = ?
			WHERE id = ? AND state = 'pending'`, string(op.State), toNS(op.At), op.By, op.Reason, op.RequestID)
		if errors.Is(err, ErrConflict) { // cannot happen: the update has no version check
			err = fmt.Errorf("request %q: %w", op.RequestID, ErrNotPending)
		}
		return op.Event, err
	})
}

// Revoke implements Store.
func (s *SQLStore) Revoke(ctx context.Context, op RevokeOp) (Request, AuditEvent, error) {
	return s.changeRequest(ctx, op.RequestID, func(tx *sql.Tx) (AuditEvent, error) {
		if err := s.execGuarded(ctx, tx, "revoke", op.RequestID, StateApproved, `UPDATE requests SET state = 'revoked', decision_reason = ?
			WHERE id = ? AND state = 'approved'`, op.Reason, op.RequestID); err != nil {
			return AuditEvent{}, err
		}
		ev := op.Event
		if err := tx.QueryRowContext(ctx, s.q(`UPDATE grants SET revoked_at = ?, revoked_by = ?
			WHERE request_id = ? AND revoked_at = 0 RETURNING id`), toNS(op.At), op.By, op.RequestID).Scan(&ev.GrantID); err != nil {
			return AuditEvent{}, fmt.Errorf("revoke grant of %q: %w", op.RequestID, err)
		}
		return ev, nil
	})
}

const grantCols = `g.id, g.request_id, g.user_ref, g.service, g.environment, g.created_at, g.expires_at, g.revoked_at, g.revoked_by`

func scanGrant(sc scanner) (Grant, error) {
	var g Grant
	var created, expires, revoked int64
	if err := sc.Scan(&g.ID, &g.RequestID, &g.User, &g.Service, &g.Environment, &created, &expires, &revoked, &g.RevokedBy); err != nil {
		return Grant{}, err
	}
	g.CreatedAt, g.ExpiresAt, g.RevokedAt = fromNS(created), fromNS(expires), fromNS(revoked)
	return g, nil
}

// ActiveGrants implements Store.
func (s *SQLStore) ActiveGrants(ctx context.Context, now time.Time) ([]Grant, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+grantCols+`, COALESCE(a.approver, '')
		FROM grants g LEFT JOIN approvals a ON a.request_id = g.request_id
		WHERE g.revoked_at = 0 AND g.expires_at > ? ORDER BY g.expires_at, g.id, a.at, a.approver`), toNS(now))
	if err != nil {
		return nil, fmt.Errorf("list active grants: %w", err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var g Grant
		var created, expires, revoked int64
		var approver string
		if err := rows.Scan(&g.ID, &g.RequestID, &g.User, &g.Service, &g.Environment, &created, &expires, &revoked, &g.RevokedBy, &approver); err != nil {
			return nil, fmt.Errorf("list active grants: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].ID == g.ID {
			if approver != "" {
				out[n-1].ApprovedBy = append(out[n-1].ApprovedBy, approver)
			}
			continue
		}
		g.CreatedAt, g.ExpiresAt, g.RevokedAt = fromNS(created), fromNS(expires), fromNS(revoked)
		if approver != "" {
			g.ApprovedBy = []string{approver}
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list active grants: %w", err)
	}
	return out, nil
}

// ExpireDue implements Store.
func (s *SQLStore) ExpireDue(ctx context.Context, now time.Time, ev func(Grant) AuditEvent) ([]AuditEvent, error) {
	var out []AuditEvent
	for {
		var batch []AuditEvent
		more := false
		err := s.write(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, s.q(`SELECT `+grantCols+` FROM grants g JOIN requests r ON r.id = g.request_id
				WHERE r.state = 'approved' AND g.revoked_at = 0 AND g.expires_at <= ? ORDER BY g.expires_at, g.id LIMIT 200`), toNS(now))
			if err != nil {
				return fmt.Errorf("find expired grants: %w", err)
			}
			var due []Grant
			for rows.Next() {
				g, err := scanGrant(rows)
				if err != nil {
					rows.Close()
					return fmt.Errorf("find expired grants: %w", err)
				}
				due = append(due, g)
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("find expired grants: %w", err)
			}
			more = len(due) == 200
			for _, g := range due {
				res, err := tx.ExecContext(ctx, s.q(`UPDATE requests SET state = 'expired' WHERE id = ? AND state = 'approved'`), g.RequestID)
				if err != nil {
					return fmt.Errorf("expire request %q: %w", g.RequestID, err)
				}
				if n, err := res.RowsAffected(); err != nil || n == 0 {
					continue // revoked or expired by someone else meanwhile
				}
				e, err := s.insertAudit(ctx, tx, ev(g))
				if err != nil {
					return err
				}
				batch = append(batch, e)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		out = append(out, batch...)
		if !more {
			return out, nil
		}
	}
}

// Audit implements Store.
func (s *SQLStore) Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	query := `SELECT id, at, action, actor, actor_email, address, via, request_id, grant_id, user_ref, service, environment,
		reason, detail FROM audit WHERE 1 = 1`
	var args []any
	if f.User != "" {
		query += ` AND user_ref = ?`
		args = append(args, f.User)
	}
	if f.Service != "" {
		query += ` AND service = ?`
		args = append(args, f.Service)
	}
	if !f.Since.IsZero() {
		query += ` AND at >= ?`
		args = append(args, toNS(f.Since))
	}
	if !f.Until.IsZero() {
		query += ` AND at < ?`
		args = append(args, toNS(f.Until))
	}
	query += ` ORDER BY at, id`
	if f.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Action, &e.Actor, &e.ActorEmail, &e.Address, &e.Via, &e.RequestID, &e.GrantID,
			&e.User, &e.Service, &e.Environment, &e.Reason, &e.Detail); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		e.Time = fromNS(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	return out, nil
}
