package backstage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Annotations read by backgate (never under backstage.io/).
const (
	AnnotationSuspended  = "backgate.io/suspended"
	AnnotationIDPSubject = "backgate.io/idp-subject"
	AnnotationIDPGroup   = "backgate.io/idp-group"
)

// User is a derived Backstage User. All refs are canonical lower-case.
type User struct {
	Ref         string
	Name        string
	Namespace   string
	Email       string // lower-cased profile.email
	DisplayName string
	Groups      []string // direct groups, sorted
	AllGroups   []string // direct groups and all their ancestors, sorted
	Suspended   bool
	Annotations map[string]string
}

// Group is a derived Backstage Group.
type Group struct {
	Ref        string
	Name       string
	Namespace  string
	Type       string
	Parent     string   // "" for a root group
	Ancestors  []string // parent, grandparent, ... (nearest first)
	Children   []string // sorted
	Members    []string // direct user members, sorted
	AllMembers []string // users of this group and all descendants, sorted
}

// Owned is a derived Component, Resource or API.
type Owned struct {
	Ref         string
	Kind        string
	Name        string
	Namespace   string
	Type        string
	Lifecycle   string
	Owner       string
	OwnerKind   string   // "group" or "user"
	OwnerUsers  []string // users behind the owner (a user, or a group's AllMembers); shared, read-only
	System      string
	SystemOwner string
	Domain      string
	DomainOwner string
	Annotations map[string]string
	Tags        []string
}

// System is a derived System.
type System struct {
	Ref    string
	Owner  string
	Domain string
}

// Domain is a derived Domain.
type Domain struct {
	Ref   string
	Owner string
}

// BuildOptions configure Build.
type BuildOptions struct {
	Identity IdentityOptions
	Routes   RouteOptions
}

// Catalog is the immutable result of Build: derived data computed once per
// snapshot. Every method is safe for concurrent use; returned values must be
// treated as read-only.
type Catalog struct {
	source    string
	fetchedAt time.Time
	revision  string

	users      map[string]*User
	groups     map[string]*Group
	components map[string]*Owned
	resources  map[string]*Owned
	apis       map[string]*Owned
	systems    map[string]*System
	domains    map[string]*Domain
	idpGroups  map[string][]string

	ident     identityIndex
	routes    []AnnotatedRoute
	problems  []Problem
	entityNum int
}

// Revision is the hex SHA-256 of the normalised entities (uid and etag
// excluded, so re-processing in Backstage does not change it).
func (c *Catalog) Revision() string { return c.revision }

// Source names where the snapshot came from.
func (c *Catalog) Source() string { return c.source }

// FetchedAt is when the snapshot was fetched.
func (c *Catalog) FetchedAt() time.Time { return c.fetchedAt }

// Problems lists every defect met while fetching and building (sorted).
func (c *Catalog) Problems() []Problem { return c.problems }

// Routes returns the routes derived from backgate.io/ annotations, sorted by
// host then path prefix.
func (c *Catalog) Routes() []AnnotatedRoute { return c.routes }

// EntityCount is the number of accepted User/Group/Component/System/Domain/
// Resource/API entities.
func (c *Catalog) EntityCount() int { return c.entityNum }

// User looks up a user by canonical ref.
func (c *Catalog) User(ref string) (*User, bool) {
	u, ok := c.users[strings.ToLower(ref)]
	return u, ok
}

// Group looks up a group by canonical ref.
func (c *Catalog) Group(ref string) (*Group, bool) {
	g, ok := c.groups[strings.ToLower(ref)]
	return g, ok
}

// Component looks up a component by canonical ref.
func (c *Catalog) Component(ref string) (*Owned, bool) {
	o, ok := c.components[strings.ToLower(ref)]
	return o, ok
}

// Entity looks up a component, resource or API by canonical ref.
func (c *Catalog) Entity(ref string) (*Owned, bool) {
	ref = strings.ToLower(ref)
	for _, m := range []map[string]*Owned{c.components, c.resources, c.apis} {
		if o, ok := m[ref]; ok {
			return o, true
		}
	}
	return nil, false
}

// System looks up a system by canonical ref.
func (c *Catalog) System(ref string) (*System, bool) {
	s, ok := c.systems[strings.ToLower(ref)]
	return s, ok
}

// Domain looks up a domain by canonical ref.
func (c *Catalog) Domain(ref string) (*Domain, bool) {
	d, ok := c.domains[strings.ToLower(ref)]
	return d, ok
}

// IDPGroups maps IdP group names (exact match against the keys of
// Document()["idp_groups"]) to the sorted, de-duplicated Backstage group refs.
func (c *Catalog) IDPGroups(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, c.idpGroups[n]...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// builder holds the state of one Build.
type builder struct {
	c     *Catalog
	probs []Problem
	kept  map[string]*Entity // ref -> entity, for the 7 kinds
	order []string           // sorted refs
}

func (b *builder) problem(ref, format string, args ...any) {
	b.probs = append(b.probs, Problem{Ref: ref, Source: b.c.source, Message: fmt.Sprintf(format, args...)})
}

// Build derives an immutable *Catalog from a snapshot. Bad entities become
// Problems and are skipped; only invalid options make it fail.
func Build(snap *Snapshot, opts BuildOptions) (*Catalog, error) {
	pb, err := startBuild(snap, opts)
	if err != nil {
		return nil, err
	}
	return pb.finish(), nil
}

// pendingBuild is a Build that has collected and hashed the entities (so
// the revision is known) but not derived anything yet: the syncer stops
// there when the revision is the one it serves, which saves the rest of
// the work (most of it) at every unchanged refresh.
type pendingBuild struct {
	b      *builder
	idOpts IdentityOptions
	rOpts  RouteOptions
}

func startBuild(snap *Snapshot, opts BuildOptions) (*pendingBuild, error) {
	if snap == nil {
		return nil, fmt.Errorf("backstage: nil snapshot")
	}
	idOpts, err := opts.Identity.normalise()
	if err != nil {
		return nil, err
	}
	rOpts, err := opts.Routes.normalise()
	if err != nil {
		return nil, err
	}
	c := &Catalog{
		source: snap.Source, fetchedAt: snap.FetchedAt,
		users: map[string]*User{}, groups: map[string]*Group{},
		components: map[string]*Owned{}, resources: map[string]*Owned{}, apis: map[string]*Owned{},
		systems: map[string]*System{}, domains: map[string]*Domain{},
	}
	b := &builder{c: c, kept: map[string]*Entity{}}
	b.probs = append(b.probs, snap.Problems...)
	b.collect(snap.Entities)
	c.revision = b.hash()
	return &pendingBuild{b: b, idOpts: idOpts, rOpts: rOpts}, nil
}

// revision is the revision the finished catalog will have.
func (pb *pendingBuild) revision() string { return pb.b.c.revision }

// finish derives the catalog.
func (pb *pendingBuild) finish() *Catalog {
	b, c := pb.b, pb.b.c
	b.buildGroupsAndUsers()
	b.buildDomainsAndSystems()
	for _, ref := range b.order {
		e := b.kept[ref]
		switch strings.ToLower(e.Kind) {
		case KindComponent:
			b.buildOwned(ref, e, c.components)
		case KindResource:
			b.buildOwned(ref, e, c.resources)
		case KindAPI:
			b.buildOwned(ref, e, c.apis)
		}
	}
	c.entityNum = len(b.kept)
	c.ident, c.idpGroups = buildIdentity(c, b.kept, pb.idOpts)
	c.routes = b.buildRoutes(pb.rOpts)
	sort.SliceStable(b.probs, func(i, j int) bool {
		if b.probs[i].Ref != b.probs[j].Ref {
			return b.probs[i].Ref < b.probs[j].Ref
		}
		return b.probs[i].Message < b.probs[j].Message
	})
	c.problems = slices.Compact(b.probs)
	return c
}

var supportedKinds = map[string]bool{
	KindUser: true, KindGroup: true, KindComponent: true, KindSystem: true,
	KindDomain: true, KindResource: true, KindAPI: true,
}

// collect validates entities, drops duplicates (first wins) and other kinds.
func (b *builder) collect(ents []Entity) {
	for i := range ents {
		e := &ents[i]
		if !supportedKinds[strings.ToLower(e.Kind)] {
			continue
		}
		ref := e.refString()
		if err := e.validate(); err != nil {
			b.problem(ref, "skipped: %v", err)
			continue
		}
		if _, dup := b.kept[ref]; dup {
			b.problem(ref, "skipped: duplicate entity (the first one is kept)")
			continue
		}
		b.kept[ref] = e
		b.order = append(b.order, ref)
	}
	slices.Sort(b.order)
}

// normalisedEntity is what the revision hashes.
type normalisedEntity struct {
	Ref         string            `json:"ref"`
	Spec        Spec              `json:"spec"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Relations   []Relation        `json:"relations,omitempty"`
}

func (b *builder) hash() string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, ref := range b.order {
		e := b.kept[ref]
		rel := slices.Clone(e.Relations)
		sort.Slice(rel, func(i, j int) bool {
			if rel[i].Type != rel[j].Type {
				return rel[i].Type < rel[j].Type
			}
			return rel[i].TargetRef < rel[j].TargetRef
		})
		// encoding/json sorts map keys, so the encoding is deterministic.
		_ = enc.Encode(normalisedEntity{Ref: ref, Spec: e.Spec, Annotations: e.Metadata.Annotations,
			Labels: e.Metadata.Labels, Tags: e.Metadata.Tags, Relations: rel})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// parseField parses a ref-valued spec field with Backstage's defaults: the
// given default kind and the entity's own namespace.
func (b *builder) parseField(self Ref, field, value, defaultKind string) (Ref, bool) {
	r, err := ParseRef(value, defaultKind, self.Namespace)
	if err != nil {
		b.problem(self.String(), "%s: %v", field, err)
		return Ref{}, false
	}
	return r, true
}

func (b *builder) buildGroupsAndUsers() {
	c := b.c
	parents := map[string]map[string]bool{}    // group -> parent groups
	members := map[string]map[string]bool{}    // group -> direct users
	userGroups := map[string]map[string]bool{} // user -> direct groups
	specParent := map[string]string{}
	add := func(m map[string]map[string]bool, k, v string) {
		s := m[k]
		if s == nil {
			s = map[string]bool{}
			m[k] = s
		}
		s[v] = true
	}
	for _, ref := range b.order {
		e := b.kept[ref]
		self := e.Ref()
		switch self.Kind {
		case KindGroup:
			c.groups[ref] = &Group{Ref: ref, Name: self.Name, Namespace: self.Namespace, Type: e.Spec.Type}
		case KindUser:
			c.users[ref] = &User{Ref: ref, Name: self.Name, Namespace: self.Namespace,
				Email:       strings.ToLower(strings.TrimSpace(e.Spec.Profile.Email)),
				DisplayName: e.Spec.Profile.DisplayName,
				Suspended:   strings.EqualFold(strings.TrimSpace(e.Metadata.Annotations[AnnotationSuspended]), "true"),
				Annotations: e.Metadata.Annotations,
			}
		}
	}
	isGroup := func(owner string, field string, r Ref) bool {
		if r.Kind != KindGroup {
			b.problem(owner, "%s: %q is not a group", field, r.String())
			return false
		}
		if _, ok := c.groups[r.String()]; !ok {
			b.problem(owner, "%s: group %q does not exist", field, r.String())
			return false
		}
		return true
	}
	isUser := func(owner string, field string, r Ref) bool {
		if r.Kind != KindUser {
			b.problem(owner, "%s: %q is not a user", field, r.String())
			return false
		}
		if _, ok := c.users[r.String()]; !ok {
			b.problem(owner, "%s: user %q does not exist", field, r.String())
			return false
		}
		return true
	}
	for _, ref := range b.order {
		e := b.kept[ref]
		self := e.Ref()
		switch self.Kind {
		case KindGroup:
			if e.Spec.Parent != "" {
				if p, ok := b.parseField(self, "spec.parent", e.Spec.Parent, KindGroup); ok && isGroup(ref, "spec.parent", p) {
					add(parents, ref, p.String())
					specParent[ref] = p.String()
				}
			}
			for _, ch := range e.Spec.Children {
				if r, ok := b.parseField(self, "spec.children", ch, KindGroup); ok && isGroup(ref, "spec.children", r) {
					add(parents, r.String(), ref)
				}
			}
			for _, m := range e.Spec.Members {
				if r, ok := b.parseField(self, "spec.members", m, KindUser); ok && isUser(ref, "spec.members", r) {
					add(members, ref, r.String())
					add(userGroups, r.String(), ref)
				}
			}
			for _, rel := range e.Relations {
				var r Ref
				var err error
				switch rel.Type {
				case "childOf", "parentOf", "hasMember":
					r, err = ParseRef(rel.TargetRef, "", "")
				default:
					continue
				}
				if err != nil {
					b.problem(ref, "relation %s: %v", rel.Type, err)
					continue
				}
				switch {
				case rel.Type == "childOf" && isGroup(ref, "relations.childOf", r):
					add(parents, ref, r.String())
				case rel.Type == "parentOf" && isGroup(ref, "relations.parentOf", r):
					add(parents, r.String(), ref)
				case rel.Type == "hasMember" && isUser(ref, "relations.hasMember", r):
					add(members, ref, r.String())
					add(userGroups, r.String(), ref)
				}
			}
		case KindUser:
			for _, g := range e.Spec.MemberOf {
				if r, ok := b.parseField(self, "spec.memberOf", g, KindGroup); ok && isGroup(ref, "spec.memberOf", r) {
					add(members, r.String(), ref)
					add(userGroups, ref, r.String())
				}
			}
			for _, rel := range e.Relations {
				if rel.Type != "memberOf" {
					continue
				}
				r, err := ParseRef(rel.TargetRef, "", "")
				if err != nil {
					b.problem(ref, "relation memberOf: %v", err)
					continue
				}
				if isGroup(ref, "relations.memberOf", r) {
					add(members, r.String(), ref)
					add(userGroups, ref, r.String())
				}
			}
		}
	}
	// Parents, children, ancestors (BFS, nearest first, cycle-guarded).
	children := map[string][]string{}
	for ref, g := range c.groups {
		ps := sortedKeys(parents[ref])
		if sp := specParent[ref]; sp != "" {
			g.Parent = sp
		} else if len(ps) > 0 {
			g.Parent = ps[0]
		}
		if len(ps) > 1 {
			b.problem(ref, "group has %d parents %v; %q is reported as parent, all are ancestors", len(ps), ps, g.Parent)
		}
		for _, p := range ps {
			children[p] = append(children[p], ref)
		}
	}
	for ref, g := range c.groups {
		g.Children = sortedUnique(children[ref])
		g.Members = sortedKeys(members[ref])
		seen := map[string]bool{ref: true}
		queue := sortedKeys(parents[ref])
		cycle := false
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if p == ref && !cycle {
				cycle = true
				b.problem(ref, "group is its own ancestor (parent/children cycle)")
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			g.Ancestors = append(g.Ancestors, p)
			queue = append(queue, sortedKeys(parents[p])...)
		}
	}
	// Users: direct and transitive groups; groups: transitive members.
	all := map[string][]string{}
	for ref, u := range c.users {
		u.Groups = sortedKeys(userGroups[ref])
		set := map[string]bool{}
		for _, g := range u.Groups {
			set[g] = true
			for _, a := range c.groups[g].Ancestors {
				set[a] = true
			}
		}
		u.AllGroups = sortedKeys(set)
		for _, g := range u.AllGroups {
			all[g] = append(all[g], ref)
		}
	}
	for ref, g := range c.groups {
		g.AllMembers = sortedUnique(all[ref])
	}
}

func (b *builder) parseOwner(self Ref, ref, owner string) (string, string, bool) {
	if strings.TrimSpace(owner) == "" {
		b.problem(ref, "skipped: spec.owner is missing")
		return "", "", false
	}
	r, err := ParseRef(owner, KindGroup, self.Namespace)
	if err != nil {
		b.problem(ref, "skipped: spec.owner: %v", err)
		return "", "", false
	}
	o := r.String()
	switch r.Kind {
	case KindGroup:
		if _, ok := b.c.groups[o]; !ok {
			b.problem(ref, "skipped: spec.owner: group %q does not exist", o)
			return "", "", false
		}
	case KindUser:
		if _, ok := b.c.users[o]; !ok {
			b.problem(ref, "skipped: spec.owner: user %q does not exist", o)
			return "", "", false
		}
	default:
		b.problem(ref, "skipped: spec.owner: %q is neither a user nor a group", o)
		return "", "", false
	}
	return o, r.Kind, true
}

func (b *builder) buildDomainsAndSystems() {
	c := b.c
	for _, ref := range b.order {
		e := b.kept[ref]
		self := e.Ref()
		if self.Kind != KindDomain {
			continue
		}
		if o, _, ok := b.parseOwner(self, ref, e.Spec.Owner); ok {
			c.domains[ref] = &Domain{Ref: ref, Owner: o}
		}
	}
	for _, ref := range b.order {
		e := b.kept[ref]
		self := e.Ref()
		if self.Kind != KindSystem {
			continue
		}
		o, _, ok := b.parseOwner(self, ref, e.Spec.Owner)
		if !ok {
			continue
		}
		s := &System{Ref: ref, Owner: o}
		if e.Spec.Domain != "" {
			if r, ok := b.parseField(self, "spec.domain", e.Spec.Domain, KindDomain); ok {
				if _, exists := c.domains[r.String()]; exists && r.Kind == KindDomain {
					s.Domain = r.String()
				} else {
					b.problem(ref, "spec.domain: domain %q does not exist (ignored)", r.String())
				}
			}
		}
		c.systems[ref] = s
	}
}

func (b *builder) buildOwned(ref string, e *Entity, into map[string]*Owned) {
	c := b.c
	self := e.Ref()
	owner, kind, ok := b.parseOwner(self, ref, e.Spec.Owner)
	if !ok {
		return
	}
	o := &Owned{Ref: ref, Kind: self.Kind, Name: self.Name, Namespace: self.Namespace,
		Type: e.Spec.Type, Lifecycle: e.Spec.Lifecycle, Owner: owner, OwnerKind: kind,
		Annotations: e.Metadata.Annotations, Tags: sortedUnique(slices.Clone([]string(e.Metadata.Tags)))}
	if kind == KindUser {
		o.OwnerUsers = []string{owner}
	} else {
		o.OwnerUsers = c.groups[owner].AllMembers
	}
	if e.Spec.System != "" {
		if r, ok := b.parseField(self, "spec.system", e.Spec.System, KindSystem); ok {
			if s, exists := c.systems[r.String()]; exists && r.Kind == KindSystem {
				o.System, o.SystemOwner, o.Domain = s.Ref, s.Owner, s.Domain
				if d, ok := c.domains[s.Domain]; ok {
					o.DomainOwner = d.Owner
				}
			} else {
				b.problem(ref, "spec.system: system %q does not exist (ignored)", r.String())
			}
		}
	}
	into[ref] = o
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}
