package bigip

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/backgate/backgate/proxy/edgetoken"
)

//go:embed irule.tcl.tmpl
var ruleTemplateText string

// Defaults of RuleOptions.
const (
	DefaultPartition   = "Common"
	DefaultSkewSeconds = 30
	DefaultLogPrefix   = "backgate:"
	DefaultPriority    = 100
	// DefaultReplayTable is the session-table subtable that remembers token
	// ids when replay protection is on.
	DefaultReplayTable = "backgate_edge_replay"
	// MaxSkewSeconds bounds RuleOptions.SkewSeconds.
	MaxSkewSeconds = 300
	// AS3Folder is the application folder AS3 puts shared objects in:
	// "/<tenant>/Shared/<name>".
	AS3Folder = "Shared"
)

// ErrInvalidOptions is wrapped by every error RenderRule returns for a bad
// option; the message names the option.
var ErrInvalidOptions = errors.New("bigip: invalid rule options")

// RuleOptions configure the generated iRule. The zero value is usable: every
// empty field takes the default named in its comment.
type RuleOptions struct {
	// Partition holds the data groups; "" means "Common".
	Partition string
	// Folder is an optional folder inside Partition holding the data groups,
	// e.g. AS3Folder for objects deployed by AS3; "" means none.
	Folder string
	// HeaderName is the request header carrying the token; "" means
	// edgetoken.Header.
	HeaderName string
	// SkewSeconds is how far issued-at may lie in the future and how long
	// after expiry a token is still accepted; 0 means DefaultSkewSeconds.
	// At most MaxSkewSeconds.
	SkewSeconds int
	// MaxTokenLen caps the header value in bytes; 0 means
	// edgetoken.MaxTokenLen, which is also the upper bound.
	MaxTokenLen int
	// ReplayProtection accepts each token id once, remembering it in the
	// session table (subtable ReplayTable) until the token expires.
	ReplayProtection bool
	// ReplayTable names the session subtable; "" means DefaultReplayTable.
	ReplayTable string
	// DefaultPool is the full path of the pool for tokens whose service has
	// no route, e.g. "/Common/fallback"; "" means such requests get 403.
	DefaultPool string
	// KeysDataGroup and RoutesDataGroup are data group names (not paths);
	// "" means KeysDataGroup and RoutesDataGroup of this package.
	KeysDataGroup   string
	RoutesDataGroup string
	// LogPrefix starts every log line; "" means DefaultLogPrefix.
	LogPrefix string
	// Priority is the HTTP_REQUEST event priority (lower runs first,
	// BIG-IP's default is 500); 0 means DefaultPriority.
	Priority int
}

// ruleData is what the template sees: options with defaults applied and
// data group names turned into full paths.
type ruleData struct {
	RuleName         string
	HeaderName       string
	SkewSeconds      int
	MaxTokenLen      int
	ReplayProtection bool
	ReplayTable      string
	DefaultPool      string
	KeysDataGroup    string // full path
	RoutesDataGroup  string // full path
	LogPrefix        string
	Priority         int
}

var (
	reObjectName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,63}$`)
	reFullPath   = regexp.MustCompile(`^/[A-Za-z][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}){1,2}$`)
	reHeaderName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
	reLogPrefix  = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,32}$`)
)

// DataGroupPath is the full path of data group name in partition and
// optional folder, e.g. "/Common/backgate_edge_keys" or
// "/Common/Shared/backgate_edge_keys".
func DataGroupPath(partition, folder, name string) string {
	if folder == "" {
		return "/" + partition + "/" + name
	}
	return "/" + partition + "/" + folder + "/" + name
}

func (o RuleOptions) withDefaults() (ruleData, error) {
	d := ruleData{
		RuleName:         RuleName,
		HeaderName:       or(o.HeaderName, edgetoken.Header),
		SkewSeconds:      o.SkewSeconds,
		MaxTokenLen:      o.MaxTokenLen,
		ReplayProtection: o.ReplayProtection,
		ReplayTable:      or(o.ReplayTable, DefaultReplayTable),
		DefaultPool:      o.DefaultPool,
		LogPrefix:        or(o.LogPrefix, DefaultLogPrefix),
		Priority:         o.Priority,
	}
	if d.SkewSeconds == 0 {
		d.SkewSeconds = DefaultSkewSeconds
	}
	if d.MaxTokenLen == 0 {
		d.MaxTokenLen = edgetoken.MaxTokenLen
	}
	if d.Priority == 0 {
		d.Priority = DefaultPriority
	}
	partition := or(o.Partition, DefaultPartition)
	keys := or(o.KeysDataGroup, KeysDataGroup)
	routes := or(o.RoutesDataGroup, RoutesDataGroup)

	var errs []error
	bad := func(field string, value any, want string) {
		errs = append(errs, fmt.Errorf("%w: %s %v: %s", ErrInvalidOptions, field, value, want))
	}
	if !reObjectName.MatchString(partition) {
		bad("Partition", fmt.Sprintf("%q", partition), "must be a BIG-IP object name")
	}
	if o.Folder != "" && !reObjectName.MatchString(o.Folder) {
		bad("Folder", fmt.Sprintf("%q", o.Folder), "must be a BIG-IP object name")
	}
	if !reHeaderName.MatchString(d.HeaderName) {
		bad("HeaderName", fmt.Sprintf("%q", d.HeaderName), "must be an HTTP header name of [A-Za-z0-9-]")
	}
	if d.SkewSeconds < 0 || d.SkewSeconds > MaxSkewSeconds {
		bad("SkewSeconds", d.SkewSeconds, fmt.Sprintf("must be 1-%d", MaxSkewSeconds))
	}
	if d.MaxTokenLen < 100 || d.MaxTokenLen > edgetoken.MaxTokenLen {
		bad("MaxTokenLen", d.MaxTokenLen, fmt.Sprintf("must be 100-%d", edgetoken.MaxTokenLen))
	}
	if !reObjectName.MatchString(d.ReplayTable) {
		bad("ReplayTable", fmt.Sprintf("%q", d.ReplayTable), "must be of [A-Za-z0-9_.-], starting with a letter")
	}
	if d.DefaultPool != "" && !reFullPath.MatchString(d.DefaultPool) {
		bad("DefaultPool", fmt.Sprintf("%q", d.DefaultPool), `must be a full path such as "/Common/pool"`)
	}
	if !reObjectName.MatchString(keys) {
		bad("KeysDataGroup", fmt.Sprintf("%q", keys), "must be a BIG-IP object name")
	}
	if !reObjectName.MatchString(routes) || routes == keys {
		bad("RoutesDataGroup", fmt.Sprintf("%q", routes), "must be a BIG-IP object name other than KeysDataGroup")
	}
	if !reLogPrefix.MatchString(d.LogPrefix) {
		bad("LogPrefix", fmt.Sprintf("%q", d.LogPrefix), "must be 1-32 characters of [A-Za-z0-9_.:-]")
	}
	if d.Priority < 0 || d.Priority > 1000 {
		bad("Priority", d.Priority, "must be 1-1000")
	}
	if err := errors.Join(errs...); err != nil {
		return d, err
	}
	d.KeysDataGroup = DataGroupPath(partition, o.Folder, keys)
	d.RoutesDataGroup = DataGroupPath(partition, o.Folder, routes)
	return d, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// RenderRule returns the edge-token iRule (named RuleName) for o. Every
// option is validated and restricted to characters that need no quoting in
// Tcl, so no option can inject code into the rule.
func RenderRule(o RuleOptions) (Rule, error) {
	d, err := o.withDefaults()
	if err != nil {
		return Rule{}, err
	}
	t, err := template.New("irule").Delims("<%", "%>").Funcs(template.FuncMap{
		"deny": func(reason string, indent ...string) string { return denyBlock(d.LogPrefix, reason, indent...) },
	}).Option("missingkey=error").Parse(ruleTemplateText)
	if err != nil {
		return Rule{}, fmt.Errorf("bigip: parse iRule template: %w", err)
	}
	var sb strings.Builder
	if err := t.Execute(&sb, d); err != nil {
		return Rule{}, fmt.Errorf("bigip: render iRule: %w", err)
	}
	return Rule{Name: RuleName, Text: sb.String()}, nil
}

// denyBlock is the Tcl every failed check runs: a bare 403 that closes the
// connection (so no later request on it escapes the check), one log line
// with the reason, and no further iRule events on this connection.
func denyBlock(prefix, reason string, indent ...string) string {
	in := "        "
	if len(indent) > 0 {
		in += indent[0]
	}
	lines := []string{
		`HTTP::respond 403 content "Forbidden" noserver "Content-Type" "text/plain" "Connection" "close"`,
		`log local0. "` + prefix + ` deny reason=` + reason + ` client=[IP::client_addr]"`,
		`event disable all`,
		`return`,
	}
	return in + strings.Join(lines, "\n"+in)
}
