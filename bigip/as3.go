package bigip

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/backgate/backgate/proxy/edgetoken"
)

// BuildDesired renders everything backgate wants on one BIG-IP: the iRule
// for o, the data groups for keys and routes, and the virtual servers the
// rule is attached to. The data groups live directly in the partition
// (o.Folder must be empty; RenderAS3 moves them for AS3). Every key must
// pass edgetoken.Key.Validate.
func BuildDesired(o RuleOptions, keys []edgetoken.Key, routes []RouteTarget, virtuals []string) (Desired, error) {
	if o.Folder != "" {
		return Desired{}, fmt.Errorf("%w: Folder %q: BuildDesired places data groups directly in the partition", ErrInvalidOptions, o.Folder)
	}
	if len(keys) == 0 {
		return Desired{}, fmt.Errorf("%w: no signing keys", ErrInvalidDesired)
	}
	var errs []error
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalidDesired, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Desired{}, err
	}
	rule, err := RenderRule(o)
	if err != nil {
		return Desired{}, err
	}
	d := Desired{
		Partition:  or(o.Partition, DefaultPartition),
		Rule:       rule,
		DataGroups: RenderDataGroups(keys, routes),
		Virtuals:   append([]string(nil), virtuals...),
	}
	if err := d.Validate(); err != nil {
		return Desired{}, err
	}
	return d, nil
}

// as3 objects, with fields in the order AS3's documentation shows them.
type as3Record struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type as3DataGroup struct {
	Class       string      `json:"class"`
	Remark      string      `json:"remark,omitempty"`
	StorageType string      `json:"storageType"`
	KeyDataType string      `json:"keyDataType"`
	Records     []as3Record `json:"records"`
}

type as3IRule struct {
	Class  string `json:"class"`
	Remark string `json:"remark,omitempty"`
	Expand bool   `json:"expand"`
	IRule  struct {
		Base64 string `json:"base64"`
	} `json:"iRule"`
}

// orderedObject marshals as a JSON object with keys in insertion order.
type orderedObject struct {
	keys   []string
	values []any
}

func (o *orderedObject) set(k string, v any) {
	o.keys = append(o.keys, k)
	o.values = append(o.values, v)
}

func (o *orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(o.values[i])
		if err != nil {
			return nil, fmt.Errorf("bigip: AS3 object %q: %w", k, err)
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// RenderAS3 returns an AS3 declaration fragment: a Tenant named
// d.Partition whose "Shared" application (template "shared") holds the
// iRule (class iRule, base64 text, expand false) and the data groups (class
// Data_Group, storageType internal, keyDataType string). Merge it into an
// ADC declaration next to your other tenants.
//
// AS3 creates these objects under "/<Partition>/Shared/", so the rule's
// data group paths are rewritten from "/<Partition>/<name>" to
// "/<Partition>/Shared/<name>" (a rule rendered with Folder AS3Folder is
// used as is). Virtual servers are not part of the fragment: AS3 can only
// attach the rule to services it owns (iRules: [{"use": ".../Shared/<RuleName>"}]).
//
// The output contains the signing keys: treat it as a secret.
func RenderAS3(d Desired) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	text, err := as3RuleText(d)
	if err != nil {
		return nil, err
	}
	app := &orderedObject{}
	app.set("class", "Application")
	app.set("template", "shared")
	rule := as3IRule{Class: "iRule", Remark: "backgate edge-token verifier (generated)", Expand: false}
	rule.IRule.Base64 = base64.StdEncoding.EncodeToString([]byte(text))
	app.set(d.Rule.Name, rule)
	for _, g := range d.DataGroups {
		dg := as3DataGroup{Class: "Data_Group", StorageType: "internal", KeyDataType: "string", Records: []as3Record{}}
		switch g.Name {
		case KeysDataGroup:
			dg.Remark = "backgate edge-token keys: key id -> hex HMAC key"
		case RoutesDataGroup:
			dg.Remark = "backgate routes: service@environment -> pool"
		}
		for _, r := range g.Records {
			dg.Records = append(dg.Records, as3Record{Key: r.Name, Value: r.Data})
		}
		app.set(g.Name, dg)
	}
	tenant := &orderedObject{}
	tenant.set("class", "Tenant")
	tenant.set(AS3Folder, app)
	root := &orderedObject{}
	root.set(d.Partition, tenant)
	out, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("bigip: marshal AS3: %w", err)
	}
	return append(out, '\n'), nil
}

// as3RuleText returns the rule text with each data group path moved into
// the AS3 Shared folder, failing if the rule references a data group of d
// under neither path.
func as3RuleText(d Desired) (string, error) {
	text := d.Rule.Text
	for _, g := range d.DataGroups {
		plain := DataGroupPath(d.Partition, "", g.Name)
		shared := DataGroupPath(d.Partition, AS3Folder, g.Name)
		re := regexp.MustCompile(`(^|[^A-Za-z0-9_./-])` + regexp.QuoteMeta(plain) + `([^A-Za-z0-9_.-]|$)`)
		if re.MatchString(text) {
			text = re.ReplaceAllString(text, "${1}"+shared+"${2}")
			continue
		}
		if !bytes.Contains([]byte(text), []byte(`"`+shared+`"`)) {
			return "", fmt.Errorf("%w: rule %s references data group %s neither as %s nor as %s", ErrInvalidDesired, d.Rule.Name, g.Name, plain, shared)
		}
	}
	return text, nil
}
