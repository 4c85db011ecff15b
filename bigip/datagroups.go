package bigip

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/backgate/backgate/proxy/edgetoken"
)

// RouteTarget sends a service in an environment to a pool.
type RouteTarget struct {
	Service     string // Backstage entity ref, e.g. "component:default/payments"
	Environment string // e.g. "prod"
	Pool        string // pool full path, e.g. "/Common/payments_prod"
}

// ErrInvalidDesired is wrapped by every error Desired.Validate returns.
var ErrInvalidDesired = errors.New("bigip: invalid desired state")

// RenderDataGroups returns the two data groups the iRule reads, records
// sorted by name: KeysDataGroup (key id -> lower-case hex secret) and
// RoutesDataGroup (RouteKey(service, env) -> pool full path). It does not
// validate; Desired.Validate does (RenderAS3 and WriteFiles call it).
// The keys data group holds secrets: never log it.
func RenderDataGroups(keys []edgetoken.Key, routes []RouteTarget) []DataGroup {
	kr := make([]Record, 0, len(keys))
	for _, k := range keys {
		kr = append(kr, Record{Name: k.ID, Data: hex.EncodeToString(k.Secret)})
	}
	rr := make([]Record, 0, len(routes))
	for _, r := range routes {
		rr = append(rr, Record{Name: RouteKey(r.Service, r.Environment), Data: r.Pool})
	}
	sortRecords(kr)
	sortRecords(rr)
	return []DataGroup{
		{Name: KeysDataGroup, Type: "string", Records: kr},
		{Name: RoutesDataGroup, Type: "string", Records: rr},
	}
}

func sortRecords(r []Record) {
	sort.SliceStable(r, func(i, j int) bool { return r[i].Name < r[j].Name })
}

var (
	reHexKey = regexp.MustCompile(`^([0-9a-f][0-9a-f]){32,}$`)
	reRouteK = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,1000}@[a-z0-9-]{1,32}$`)
)

// Validate checks d before anything is rendered or pushed: names, a rule
// that is present and brace-balanced, and records that are sorted, unique
// and free of characters that would need quoting on BIG-IP. For the two
// data groups this package manages it also checks the record shapes: hex
// keys of at least edgetoken.MinSecretLen bytes, route keys made by
// RouteKey, and pool full paths.
func (d Desired) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidDesired}, a...)...))
	}
	if !reObjectName.MatchString(d.Partition) {
		bad("Partition %q must be a BIG-IP object name", d.Partition)
	}
	if !reObjectName.MatchString(d.Rule.Name) {
		bad("Rule.Name %q must be a BIG-IP object name", d.Rule.Name)
	}
	if strings.TrimSpace(d.Rule.Text) == "" {
		bad("Rule.Text of %q is empty", d.Rule.Name)
	} else if !balanced(d.Rule.Text) {
		bad("Rule.Text of %q has unbalanced braces", d.Rule.Name)
	}
	seen := map[string]bool{}
	for _, g := range d.DataGroups {
		if !reObjectName.MatchString(g.Name) || seen[g.Name] {
			bad("data group name %q must be a unique BIG-IP object name", g.Name)
		}
		seen[g.Name] = true
		if g.Type != "string" {
			bad("data group %s: Type %q, want \"string\"", g.Name, g.Type)
		}
		for i, r := range g.Records {
			if i > 0 && g.Records[i-1].Name >= r.Name {
				bad("data group %s: record %q is out of order or duplicated", g.Name, r.Name)
			}
			if !safeRecordText(r.Name) || !safeRecordText(r.Data) {
				bad("data group %s: record %q has characters BIG-IP would need quoted", g.Name, r.Name)
				continue
			}
			switch g.Name {
			case KeysDataGroup:
				if (edgetoken.Key{ID: r.Name, Secret: make([]byte, edgetoken.MinSecretLen)}).Validate() != nil {
					bad("data group %s: key id %q must be 1-%d characters of [A-Za-z0-9_-]", g.Name, r.Name, edgetoken.MaxKeyIDLen)
				}
				if !reHexKey.MatchString(r.Data) {
					// Never print the secret itself.
					bad("data group %s: key %q: value must be lower-case hex of at least %d bytes", g.Name, r.Name, edgetoken.MinSecretLen)
				}
			case RoutesDataGroup:
				if !reRouteK.MatchString(r.Name) {
					bad("data group %s: route key %q must be RouteKey(service, environment)", g.Name, r.Name)
				}
				if !reFullPath.MatchString(r.Data) {
					bad("data group %s: route %q: pool %q must be a full path such as /Common/pool", g.Name, r.Name, r.Data)
				}
			}
		}
	}
	for _, v := range d.Virtuals {
		if !reObjectName.MatchString(v) && !reFullPath.MatchString(v) {
			bad("virtual server %q must be a BIG-IP object name or full path", v)
		}
	}
	return errors.Join(errs...)
}

// safeRecordText reports whether s can be written into tmsh configuration
// and AS3 without escaping: printable ASCII without quotes, braces,
// backslashes, whitespace or the Tcl specials $ [ ] ;.
func safeRecordText(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"'{}\\$[];#", c) >= 0 {
			return false
		}
	}
	return true
}

// balanced reports whether braces in a Tcl script are balanced, ignoring
// backslash-escaped ones.
func balanced(s string) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{':
			depth++
		case '}':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}
