package icontrol

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/backgate/backgate/bigip"
	gobigip "github.com/f5devcentral/go-bigip"
)

// Limits on what a Desired may hold.
const (
	maxRuleText   = 1 << 20
	maxRecords    = 100000
	maxRecordData = 64 << 10
)

var dataGroupTypes = map[string]bool{"string": true, "integer": true, "ip": true}

// scope says which objects a diff covers: Plan and Apply cover all; key
// rotation covers the keys data group only.
type scope struct {
	rule     bool
	virtuals bool
}

// op is one write. It may hold key material in body, so it never leaves
// this package and is never logged.
type op struct {
	verb   string // e.g. "create rule"
	object string // full path
	method string
	path   string // relative to /mgmt/tm/
	body   any
	// secrets are values in body that must not appear in an error message
	// (key material, in case the device echoes it back).
	secrets []string
}

func (o op) String() string { return o.verb + " " + o.object }

// validateDesired checks d and returns the partition to use.
func validateDesired(d bigip.Desired, clientPartition string, sc scope) (string, error) {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: Desired.%s: %s", ErrInvalid, field, fmt.Sprintf(format, a...)))
	}
	part := d.Partition
	if part == "" {
		part = clientPartition
	} else if part != clientPartition {
		bad("Partition", "%q differs from the client's partition %q", d.Partition, clientPartition)
	}
	if sc.rule {
		if !objectName.MatchString(d.Rule.Name) {
			bad("Rule.Name", "%q is not a valid object name", d.Rule.Name)
		}
		if strings.TrimSpace(d.Rule.Text) == "" {
			bad("Rule.Text", "empty")
		} else if len(d.Rule.Text) > maxRuleText {
			bad("Rule.Text", "%d bytes, more than %d", len(d.Rule.Text), maxRuleText)
		}
	}
	seenDG := map[string]bool{}
	for i, g := range d.DataGroups {
		f := fmt.Sprintf("DataGroups[%d]", i)
		if !objectName.MatchString(g.Name) {
			bad(f+".Name", "%q is not a valid object name", g.Name)
		} else if seenDG[g.Name] {
			bad(f+".Name", "%q listed twice", g.Name)
		}
		seenDG[g.Name] = true
		if !dataGroupTypes[g.Type] {
			bad(f+".Type", "%q: want string, integer or ip", g.Type)
		}
		if len(g.Records) > maxRecords {
			bad(f+".Records", "%d records, more than %d", len(g.Records), maxRecords)
		}
		seenRec := map[string]bool{}
		for j, r := range g.Records {
			rf := fmt.Sprintf("%s.Records[%d]", f, j)
			switch {
			case r.Name == "" || len(r.Name) > 1024 || strings.ContainsAny(r.Name, "\x00\r\n"):
				bad(rf+".Name", "must be 1-1024 bytes without NUL, CR or LF")
			case seenRec[r.Name]:
				bad(rf+".Name", "%q listed twice", r.Name)
			}
			seenRec[r.Name] = true
			if len(r.Data) > maxRecordData || strings.ContainsAny(r.Data, "\x00") {
				bad(rf+".Data", "must be at most %d bytes without NUL", maxRecordData)
			}
		}
	}
	if sc.virtuals {
		seenVS := map[string]bool{}
		for i, v := range d.Virtuals {
			f := fmt.Sprintf("Virtuals[%d]", i)
			if !objectName.MatchString(v) {
				bad(f, "%q is not a valid virtual server name (give the name, not the full path)", v)
			} else if seenVS[v] {
				bad(f, "%q listed twice", v)
			}
			seenVS[v] = true
		}
	}
	return part, errors.Join(errs...)
}

func fullPath(partition, name string) string { return "/" + partition + "/" + name }

// restPath is the iControl REST form of a full path: ~Common~name.
func restPath(fp string) string { return strings.ReplaceAll(fp, "/", "~") }

// diff reads the device and computes the plan and the writes that carry it
// out, in the order they must run.
func (c *Client) diff(ctx context.Context, d bigip.Desired, sc scope) (Plan, []op, error) {
	part, err := validateDesired(d, c.partition, sc)
	plan := Plan{Partition: part}
	if err != nil {
		return plan, nil, err
	}
	var ops []op
	if sc.rule {
		ch, o, err := c.diffRule(ctx, part, d.Rule)
		if err != nil {
			return plan, nil, err
		}
		if ch != nil {
			plan.Changes = append(plan.Changes, *ch)
			ops = append(ops, o...)
		}
	}
	groups := slices.Clone(d.DataGroups)
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	for _, g := range groups {
		ch, o, err := c.diffDataGroup(ctx, part, g)
		if err != nil {
			return plan, nil, err
		}
		if ch != nil {
			plan.Changes = append(plan.Changes, *ch)
			ops = append(ops, o...)
		}
	}
	if sc.virtuals {
		chs, o, notes, err := c.diffVirtuals(ctx, part, d.Rule.Name, d.Virtuals)
		if err != nil {
			return plan, nil, err
		}
		plan.Changes = append(plan.Changes, chs...)
		plan.Notes = append(plan.Notes, notes...)
		ops = append(ops, o...)
	}
	return plan, ops, nil
}

// get runs a typed go-bigip getter; a 404 gives found == false.
func (c *Client) get(ctx context.Context, what, fp string, fn func(bigipAPI) error) (found bool, err error) {
	status, err := c.call(ctx, "", fn)
	if err != nil {
		if status == http.StatusNotFound {
			return false, nil
		}
		return false, c.classify(ctx, "read "+what, fp, status, err)
	}
	return true, nil
}

func normalizeRule(s string) string {
	return strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), " \t\r\n")
}

func ruleStats(s string) (lines int, hash string) {
	s = normalizeRule(s)
	if s == "" {
		return 0, "-"
	}
	sum := sha256.Sum256([]byte(s))
	return strings.Count(s, "\n") + 1, hex.EncodeToString(sum[:4])
}

func (c *Client) diffRule(ctx context.Context, part string, r bigip.Rule) (*Change, []op, error) {
	fp := fullPath(part, r.Name)
	var got *gobigip.IRule
	found, err := c.get(ctx, "rule", fp, func(api bigipAPI) error {
		var err error
		got, err = api.IRule(fp)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	ch := &Change{Kind: KindRule, Name: fp}
	ch.NewLines, ch.NewHash = ruleStats(r.Text)
	if !found || got == nil {
		ch.Action = ActionCreate
		ch.OldHash = "-"
		return ch, []op{{verb: "create rule", object: fp, method: http.MethodPost, path: "ltm/rule",
			body: map[string]any{"name": r.Name, "partition": part, "apiAnonymous": r.Text}}}, nil
	}
	if normalizeRule(got.Rule) == normalizeRule(r.Text) {
		return nil, nil, nil
	}
	ch.Action = ActionUpdate
	ch.OldLines, ch.OldHash = ruleStats(got.Rule)
	return ch, []op{{verb: "update rule", object: fp, method: http.MethodPatch, path: "ltm/rule/" + restPath(fp),
		body: map[string]any{"apiAnonymous": r.Text}}}, nil
}

func recordsBody(recs []bigip.Record) []map[string]string {
	sorted := slices.Clone(recs)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	out := make([]map[string]string, len(sorted))
	for i, r := range sorted {
		out[i] = map[string]string{"name": r.Name, "data": r.Data}
	}
	return out
}

func (c *Client) diffDataGroup(ctx context.Context, part string, g bigip.DataGroup) (*Change, []op, error) {
	fp := fullPath(part, g.Name)
	var got *gobigip.DataGroup
	found, err := c.get(ctx, "data-group", fp, func(api bigipAPI) error {
		var err error
		got, err = api.GetInternalDataGroup(fp)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	ch := &Change{Kind: KindDataGroup, Name: fp, NewType: g.Type, Redacted: g.Name != bigip.RoutesDataGroup}
	reveal := func(s string) string {
		if ch.Redacted {
			return ""
		}
		return s
	}
	var secrets []string
	if ch.Redacted {
		for _, r := range g.Records {
			if len(r.Data) >= minScrubLen {
				secrets = append(secrets, r.Data)
			}
		}
	}
	create := op{verb: "create data-group", object: fp, method: http.MethodPost, path: "ltm/data-group/internal",
		body: map[string]any{"name": g.Name, "partition": part, "type": g.Type, "records": recordsBody(g.Records)}, secrets: secrets}
	old := map[string]string{}
	if found && got != nil {
		for _, r := range got.Records {
			old[r.Name] = r.Data
		}
	}
	want := map[string]string{}
	for _, r := range g.Records {
		want[r.Name] = r.Data
		o, ok := old[r.Name]
		switch {
		case !ok:
			ch.Added = append(ch.Added, RecordChange{Name: r.Name, New: reveal(r.Data)})
		case o != r.Data:
			ch.Changed = append(ch.Changed, RecordChange{Name: r.Name, Old: reveal(o), New: reveal(r.Data)})
		}
	}
	for n, o := range old {
		if _, ok := want[n]; !ok {
			ch.Removed = append(ch.Removed, RecordChange{Name: n, Old: reveal(o)})
		}
	}
	for _, l := range [][]RecordChange{ch.Added, ch.Removed, ch.Changed} {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	if !found || got == nil {
		ch.Action = ActionCreate
		return ch, []op{create}, nil
	}
	ch.OldType = got.Type
	if got.Type != g.Type {
		ch.Action = ActionReplace
		return ch, []op{{verb: "delete data-group", object: fp, method: http.MethodDelete, path: "ltm/data-group/internal/" + restPath(fp)}, create}, nil
	}
	if len(ch.Added)+len(ch.Removed)+len(ch.Changed) == 0 {
		return nil, nil, nil
	}
	ch.Action = ActionUpdate
	return ch, []op{{verb: "update data-group", object: fp, method: http.MethodPatch, path: "ltm/data-group/internal/" + restPath(fp),
		body: map[string]any{"records": recordsBody(g.Records)}, secrets: secrets}}, nil
}

type virtualItem struct {
	Name      string   `json:"name"`
	Partition string   `json:"partition"`
	FullPath  string   `json:"fullPath"`
	Rules     []string `json:"rules"`
}

// parseVirtualList decodes GET /mgmt/tm/ltm/virtual (with $select).
func parseVirtualList(b []byte) ([]virtualItem, error) {
	var l struct {
		Items []virtualItem `json:"items"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("virtual server list is not JSON: %w", err)
	}
	for i, v := range l.Items {
		if v.Name == "" {
			return nil, fmt.Errorf("virtual server list: item %d has no name", i)
		}
		if v.FullPath == "" {
			l.Items[i].FullPath = fullPath(v.Partition, v.Name)
		}
	}
	return l.Items, nil
}

func (c *Client) diffVirtuals(ctx context.Context, part, ruleName string, names []string) ([]Change, []op, []string, error) {
	listPath := "ltm/virtual?$select=name,partition,fullPath,rules&$filter=partition%20eq%20" + part
	raw, _, err := c.request(ctx, "", "list virtual servers in partition", part, http.MethodGet, listPath, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	items, err := parseVirtualList(raw)
	if err != nil {
		return nil, nil, nil, &APIError{Op: "list virtual servers in partition", Object: part, Status: http.StatusOK, Err: err}
	}
	ruleFP := fullPath(part, ruleName)
	byPath := map[string]virtualItem{}
	for _, v := range items {
		if v.Partition == part || strings.HasPrefix(v.FullPath, "/"+part+"/") {
			byPath[v.FullPath] = v
		}
	}
	hasRule := func(rules []string) bool {
		for _, r := range rules {
			if r == ruleFP || (!strings.HasPrefix(r, "/") && fullPath(part, r) == ruleFP) {
				return true
			}
		}
		return false
	}
	wanted := map[string]bool{}
	sorted := slices.Clone(names)
	sort.Strings(sorted)
	var (
		chs []Change
		ops []op
	)
	for _, n := range sorted {
		fp := fullPath(part, n)
		wanted[fp] = true
		v, ok := byPath[fp]
		if !ok {
			return nil, nil, nil, fmt.Errorf("icontrol: virtual server %s (Desired.Virtuals): %w", fp, ErrNotFound)
		}
		if hasRule(v.Rules) {
			continue
		}
		newRules := append(slices.Clone(v.Rules), ruleFP)
		chs = append(chs, Change{Kind: KindVirtual, Name: fp, Action: ActionUpdate, OldRules: slices.Clone(v.Rules), NewRules: newRules})
		ops = append(ops, op{verb: "attach rule to virtual", object: fp, method: http.MethodPatch, path: "ltm/virtual/" + restPath(fp),
			body: map[string]any{"rules": newRules}})
	}
	var notes []string
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if !wanted[p] && hasRule(byPath[p].Rules) {
			notes = append(notes, fmt.Sprintf("virtual %s has %s attached but is not in the desired list; left attached", p, ruleFP))
		}
	}
	return chs, ops, notes, nil
}
