package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backgate/backgate/access"
	"github.com/backgate/backgate/cmd/internal/app"
)

func runAudit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit", "audit --config FILE [--user REF] [--service REF] [--since T] [--until T] [--format json|csv] [--limit N]")
	cfgPath := fs.String("config", "", "configuration file (required: says where the database is)")
	user := fs.String("user", "", "only events about this Backstage user ref (e.g. user:default/bob)")
	service := fs.String("service", "", "only events about this service ref")
	since := fs.String("since", "", "only events at or after this time (RFC 3339, or a duration ago such as 24h)")
	until := fs.String("until", "", "only events before this time (RFC 3339)")
	format := fs.String("format", "json", "json or csv")
	limit := fs.Int("limit", 0, "at most this many events (0: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "json" && *format != "csv" {
		return fmt.Errorf("--format %q: want json or csv", *format)
	}
	f := access.AuditFilter{User: *user, Service: *service, Limit: *limit}
	var err error
	if f.Since, err = parseWhen(*since, time.Now()); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if f.Until, err = parseWhen(*until, time.Now()); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	cfg, err := requiredConfig(fs, *cfgPath)
	if err != nil {
		return err
	}
	st, err := app.OpenAccessStore(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := access.NewService(access.Options{Store: st, Approver: noApprover{}})
	if err != nil {
		return err
	}
	evs, err := svc.Audit(ctx, f)
	if err != nil {
		return err
	}
	if *format == "csv" {
		return access.WriteAuditCSV(e.Stdout, evs)
	}
	return access.WriteAuditJSON(e.Stdout, evs)
}

// parseWhen reads an RFC 3339 time or a duration before now; "" is zero.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}

// noApprover serves read-only uses of the service (the audit command).
type noApprover struct{}

func (noApprover) MayApprove(context.Context, access.ApprovalInput) (access.ApprovalResult, error) {
	return access.ApprovalResult{}, errors.New("read-only")
}
func (noApprover) MaxDuration(context.Context, string, string) (time.Duration, error) { return 0, nil }
