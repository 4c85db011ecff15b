package bigip

// Names of the objects backgate manages on BIG-IP. They live in the
// configured partition (default "Common").
const (
	RuleName        = "backgate_edge_verify" // the iRule
	KeysDataGroup   = "backgate_edge_keys"   // key id -> hex HMAC key
	RoutesDataGroup = "backgate_routes"      // RouteKey(service, env) -> pool full path
)

// RouteKey is the record name in RoutesDataGroup for a service in an
// environment, e.g. "component:default/payments@staging".
func RouteKey(service, environment string) string { return service + "@" + environment }

// Record is one entry of an internal data group.
type Record struct {
	Name string `json:"name"`
	Data string `json:"data"`
}

// DataGroup is an internal (LTM) data group. Records are kept sorted by Name.
type DataGroup struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"` // "string"
	Records []Record `json:"records"`
}

// Rule is an iRule.
type Rule struct {
	Name string `json:"name"`
	Text string `json:"apiAnonymous"`
}

// Desired is everything backgate wants on one BIG-IP: the iRule, its data
// groups, and the virtual servers the iRule must be attached to.
type Desired struct {
	Partition  string      // e.g. "Common"
	Rule       Rule        // the edge-token iRule
	DataGroups []DataGroup // KeysDataGroup and RoutesDataGroup
	Virtuals   []string    // virtual server names (in Partition) that get the iRule
}
