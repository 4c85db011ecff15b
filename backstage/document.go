package backstage

// Document returns the OPA data document mounted at data.catalog, built
// anew on each call from the derived data (the policy engine converts it
// once per catalog; not keeping it halves what a catalog holds on the heap,
// which every garbage collection has to walk). Values are JSON types only
// (map[string]any, []any, string, bool); arrays are sorted except
// groups[*].ancestors, which is ordered nearest first; missing values are ""
// or [].
func (c *Catalog) Document() map[string]any { return c.buildDocument() }

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func annotations(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *Catalog) buildDocument() map[string]any {
	// Identical string slices (e.g. a group's all_members reused as the
	// owner_users of all its components) are converted once and shared.
	shared := map[*string][]any{}
	share := func(s []string) []any {
		if len(s) == 0 {
			return []any{}
		}
		if v, ok := shared[&s[0]]; ok && len(v) == len(s) {
			return v
		}
		v := strs(s)
		shared[&s[0]] = v
		return v
	}
	users := make(map[string]any, len(c.users))
	for ref, u := range c.users {
		users[ref] = map[string]any{
			"ref": ref, "name": u.Name, "namespace": u.Namespace, "email": u.Email,
			"display_name": u.DisplayName, "groups": strs(u.Groups), "all_groups": strs(u.AllGroups),
			"suspended": u.Suspended, "annotations": annotations(u.Annotations),
		}
	}
	groups := make(map[string]any, len(c.groups))
	for ref, g := range c.groups {
		groups[ref] = map[string]any{
			"ref": ref, "name": g.Name, "type": g.Type, "parent": g.Parent,
			"ancestors": strs(g.Ancestors), "children": strs(g.Children),
			"members": strs(g.Members), "all_members": share(g.AllMembers),
		}
	}
	owned := func(m map[string]*Owned) map[string]any {
		out := make(map[string]any, len(m))
		for ref, o := range m {
			out[ref] = map[string]any{
				"ref": ref, "name": o.Name, "namespace": o.Namespace, "type": o.Type,
				"lifecycle": o.Lifecycle, "owner": o.Owner, "owner_kind": o.OwnerKind,
				"owner_users": share(o.OwnerUsers), "system": o.System, "system_owner": o.SystemOwner,
				"domain": o.Domain, "domain_owner": o.DomainOwner,
				"annotations": annotations(o.Annotations), "tags": strs(o.Tags),
			}
		}
		return out
	}
	systems := make(map[string]any, len(c.systems))
	for ref, s := range c.systems {
		systems[ref] = map[string]any{"ref": ref, "owner": s.Owner, "domain": s.Domain}
	}
	domains := make(map[string]any, len(c.domains))
	for ref, d := range c.domains {
		domains[ref] = map[string]any{"ref": ref, "owner": d.Owner}
	}
	idp := make(map[string]any, len(c.idpGroups))
	for k, v := range c.idpGroups {
		idp[k] = strs(v)
	}
	return map[string]any{
		"revision": c.revision, "users": users, "groups": groups,
		"components": owned(c.components), "resources": owned(c.resources), "apis": owned(c.apis),
		"systems": systems, "domains": domains, "idp_groups": idp,
	}
}
