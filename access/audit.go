package access

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// auditJSON is the JSON form of an AuditEvent, in log lines and exports.
type auditJSON struct {
	ID          int64  `json:"id"`
	Time        string `json:"time"`
	Action      string `json:"action"`
	Actor       string `json:"actor"`
	ActorEmail  string `json:"actor_email,omitempty"`
	Address     string `json:"address,omitempty"`
	Via         string `json:"via,omitempty"`
	RequestID   string `json:"request_id"`
	GrantID     string `json:"grant_id,omitempty"`
	User        string `json:"user"`
	Service     string `json:"service"`
	Environment string `json:"environment"`
	Reason      string `json:"reason,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

func toAuditJSON(e AuditEvent) auditJSON {
	return auditJSON{
		ID:          e.ID,
		Time:        e.Time.UTC().Format(time.RFC3339Nano),
		Action:      e.Action,
		Actor:       e.Actor,
		ActorEmail:  e.ActorEmail,
		Address:     e.Address,
		Via:         e.Via,
		RequestID:   e.RequestID,
		GrantID:     e.GrantID,
		User:        e.User,
		Service:     e.Service,
		Environment: e.Environment,
		Reason:      e.Reason,
		Detail:      e.Detail,
	}
}

// auditLine is one JSON log line ({"log":"backgate.audit",...}\n).
func auditLine(e AuditEvent) ([]byte, error) {
	b, err := json.Marshal(struct {
		Log string `json:"log"`
		auditJSON
	}{"backgate.access.audit", toAuditJSON(e)})
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteAuditJSON writes evs as a JSON array, one event per line.
func WriteAuditJSON(w io.Writer, evs []AuditEvent) error {
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	for i, e := range evs {
		b, err := json.Marshal(toAuditJSON(e))
		if err != nil {
			return fmt.Errorf("encode audit event %d: %w", e.ID, err)
		}
		sep := ",\n"
		if i == 0 {
			sep = "\n"
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	end := "]\n"
	if len(evs) > 0 {
		end = "\n]\n"
	}
	_, err := io.WriteString(w, end)
	return err
}

// AuditCSVHeader is the header row of WriteAuditCSV.
var AuditCSVHeader = []string{"id", "time", "action", "actor", "actor_email", "address", "via", "request_id", "grant_id",
	"user", "service", "environment", "reason", "detail"}

// WriteAuditCSV writes evs as CSV (RFC 4180) with a header row. Cells that
// a spreadsheet would run as a formula (starting with = + - @ tab or CR)
// are prefixed with a single quote.
func WriteAuditCSV(w io.Writer, evs []AuditEvent) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(AuditCSVHeader); err != nil {
		return err
	}
	for _, e := range evs {
		j := toAuditJSON(e)
		row := []string{strconv.FormatInt(j.ID, 10), j.Time, j.Action, j.Actor, j.ActorEmail, j.Address, j.Via, j.RequestID,
			j.GrantID, j.User, j.Service, j.Environment, j.Reason, j.Detail}
		for i, c := range row {
			row[i] = csvSafe(c)
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvSafe(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
