package icontrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/backgate/backgate/bigip"
)

// Plan reads the iRule, the data groups and the virtual servers of d from
// the device and returns what Apply would change. It changes nothing. A
// virtual server named in d that does not exist is an error wrapping
// ErrNotFound.
func (c *Client) Plan(ctx context.Context, d bigip.Desired) (Plan, error) {
	p, _, err := c.diff(ctx, d, scope{rule: true, virtuals: true})
	return p, err
}

// Apply makes the device match d and returns the plan it carried out
// (empty, with no write made, when already in sync). Several writes are
// made in one transaction, so on failure nothing is changed. If an object
// was created by someone else between the read and the write (409), the
// plan is computed again once and applied as an update.
//
// Attaching the iRule to a virtual server PATCHes only its rules, keeping
// the ones already there and appending the iRule; the iRule is never
// detached from anything.
func (c *Client) Apply(ctx context.Context, d bigip.Desired) (Plan, error) {
	return c.apply(ctx, d, scope{rule: true, virtuals: true})
}

func (c *Client) apply(ctx context.Context, d bigip.Desired, sc scope) (Plan, error) {
	for attempt := 0; ; attempt++ {
		plan, ops, err := c.diff(ctx, d, sc)
		if err != nil || len(ops) == 0 {
			return plan, err
		}
		err = c.execute(ctx, ops)
		if err == nil {
			c.log.Info("icontrol: applied", "partition", plan.Partition, "changes", len(plan.Changes), "writes", len(ops))
			return plan, nil
		}
		if errors.Is(err, ErrConflict) && attempt == 0 {
			c.log.Warn("icontrol: object created concurrently; planning again", "error", err)
			continue
		}
		return plan, err
	}
}

// execute runs ops in order: alone when there is one, else in one
// transaction.
func (c *Client) execute(ctx context.Context, ops []op) error {
	var secrets []string
	for _, o := range ops {
		secrets = append(secrets, o.secrets...)
	}
	return scrub(c.executeOps(ctx, ops), secrets)
}

// minScrubLen is the shortest record data scrubbed from error messages;
// shorter values would mangle messages and are no key anyway.
const minScrubLen = 16

// scrub replaces every secret found in err's message with "<redacted>",
// keeping the *APIError (and so errors.Is on the status) when there is one.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	found := false
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			found = true
		}
	}
	if !found {
		return err
	}
	clean := func(s string) string {
		for _, sec := range secrets {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
		return s
	}
	var ae *APIError
	if errors.As(err, &ae) {
		cp := *ae
		cp.Err = &scrubbed{msg: clean(ae.Err.Error()), orig: ae.Err}
		return &cp
	}
	return &scrubbed{msg: clean(msg), orig: err}
}

// scrubbed is an error whose message had secrets removed; errors.Is and
// errors.As still see the original (only code that unwraps it on purpose
// can read the original message).
type scrubbed struct {
	msg  string
	orig error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.orig }

func (c *Client) executeOps(ctx context.Context, ops []op) error {
	if len(ops) == 1 {
		return c.run(ctx, "", ops[0])
	}
	raw, _, err := c.request(ctx, "", "start transaction for", describe(ops), http.MethodPost, "mgmt/tm/transaction", map[string]any{})
	if err != nil {
		return err
	}
	var t struct {
		TransID int64 `json:"transId"`
	}
	if err := json.Unmarshal(raw, &t); err != nil || t.TransID <= 0 {
		return &APIError{Op: "start transaction for", Object: describe(ops), Status: http.StatusOK, Err: fmt.Errorf("answer has no transId (%v)", err)}
	}
	id := strconv.FormatInt(t.TransID, 10)
	for _, o := range ops {
		if err := c.run(ctx, id, o); err != nil {
			c.discard(ctx, id)
			return err
		}
	}
	raw, _, err = c.request(ctx, "", "commit transaction "+id+" for", describe(ops), http.MethodPatch, "mgmt/tm/transaction/"+id, map[string]any{"state": "VALIDATING"})
	if err != nil {
		return err
	}
	var done struct {
		State         string `json:"state"`
		FailureReason string `json:"failureReason"`
	}
	if err := json.Unmarshal(raw, &done); err != nil {
		return &APIError{Op: "commit transaction " + id + " for", Object: describe(ops), Status: http.StatusOK, Err: fmt.Errorf("answer is not JSON: %w", err)}
	}
	if done.State != "COMPLETED" {
		return &APIError{Op: "commit transaction " + id + " for", Object: describe(ops), Status: http.StatusOK,
			Err: fmt.Errorf("state %q, want COMPLETED: %s", done.State, done.FailureReason)}
	}
	c.log.Info("icontrol: transaction committed", "transaction", id, "writes", len(ops))
	return nil
}

func (c *Client) run(ctx context.Context, txn string, o op) error {
	_, _, err := c.request(ctx, txn, o.verb, o.object, o.method, o.path, o.body)
	if err == nil {
		c.log.Debug("icontrol: write", "op", o.verb, "object", o.object, "transaction", txn)
	}
	return err
}

// discard deletes an unfinished transaction; failures are only logged (the
// device drops it after its timeout anyway).
func (c *Client) discard(ctx context.Context, id string) {
	if _, _, err := c.request(context.WithoutCancel(ctx), "", "discard transaction", id, http.MethodDelete, "mgmt/tm/transaction/"+id, nil); err != nil {
		c.log.Warn("icontrol: could not discard transaction", "transaction", id, "error", err)
	}
}

func describe(ops []op) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = o.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}
