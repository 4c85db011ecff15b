package backstage

import (
	"fmt"
	"slices"
	"strings"
)

// User matching strategies for IdentityOptions.UserMatch.
const (
	MatchAnnotation = "annotation" // user annotation (SubjectAnnotation) == IdP subject
	MatchEmail      = "email"      // spec.profile.email == IdP email, case-insensitive
	MatchName       = "name"       // user name == preferred_username, else == e-mail local part
)

// Group matching strategies for IdentityOptions.GroupMatch.
const (
	GroupMatchName       = "name"       // IdP group name == group metadata.name
	GroupMatchAnnotation = "annotation" // IdP group name in the group's GroupAnnotation (comma-separated)
)

// IdentityOptions configure how IdP identities map to Backstage users and groups.
type IdentityOptions struct {
	// UserMatch is the order in which strategies are tried; the first that
	// yields exactly one user wins, one that yields several users is ambiguous
	// and fails the resolution (fail closed). Default: annotation, email, name.
	UserMatch []string
	// SubjectAnnotation defaults to "backgate.io/idp-subject".
	SubjectAnnotation string
	// Namespaces restricts matching to users in these namespaces; empty = all.
	Namespaces []string
	// GroupMatch lists the strategies that feed idp_groups. Default: name, annotation.
	GroupMatch []string
	// GroupAnnotation defaults to "backgate.io/idp-group".
	GroupAnnotation string
}

func (o IdentityOptions) normalise() (IdentityOptions, error) {
	if len(o.UserMatch) == 0 {
		o.UserMatch = []string{MatchAnnotation, MatchEmail, MatchName}
	}
	for _, m := range o.UserMatch {
		switch m {
		case MatchAnnotation, MatchEmail, MatchName:
		default:
			return o, fmt.Errorf("backstage: identity user match %q: want %q, %q or %q", m, MatchAnnotation, MatchEmail, MatchName)
		}
	}
	if len(o.GroupMatch) == 0 {
		o.GroupMatch = []string{GroupMatchName, GroupMatchAnnotation}
	}
	for _, m := range o.GroupMatch {
		switch m {
		case GroupMatchName, GroupMatchAnnotation:
		default:
			return o, fmt.Errorf("backstage: identity group match %q: want %q or %q", m, GroupMatchName, GroupMatchAnnotation)
		}
	}
	if o.SubjectAnnotation == "" {
		o.SubjectAnnotation = AnnotationIDPSubject
	}
	if o.GroupAnnotation == "" {
		o.GroupAnnotation = AnnotationIDPGroup
	}
	for i, ns := range o.Namespaces {
		o.Namespaces[i] = strings.ToLower(ns)
	}
	return o, nil
}

type identityIndex struct {
	order     []string
	bySubject map[string][]string
	byEmail   map[string][]string
	byName    map[string][]string
}

func buildIdentity(c *Catalog, kept map[string]*Entity, o IdentityOptions) (identityIndex, map[string][]string) {
	ix := identityIndex{order: o.UserMatch, bySubject: map[string][]string{}, byEmail: map[string][]string{}, byName: map[string][]string{}}
	for ref, u := range c.users {
		if len(o.Namespaces) > 0 && !slices.Contains(o.Namespaces, u.Namespace) {
			continue
		}
		if s := strings.TrimSpace(u.Annotations[o.SubjectAnnotation]); s != "" {
			ix.bySubject[s] = append(ix.bySubject[s], ref)
		}
		if u.Email != "" {
			ix.byEmail[u.Email] = append(ix.byEmail[u.Email], ref)
		}
		ix.byName[u.Name] = append(ix.byName[u.Name], ref)
	}
	for _, m := range []map[string][]string{ix.bySubject, ix.byEmail, ix.byName} {
		for _, v := range m {
			slices.Sort(v)
		}
	}
	idp := map[string][]string{}
	for ref, g := range c.groups {
		for _, m := range o.GroupMatch {
			switch m {
			case GroupMatchName:
				name := kept[ref].Metadata.Name
				idp[name] = append(idp[name], ref)
			case GroupMatchAnnotation:
				for _, v := range strings.Split(kept[ref].Metadata.Annotations[o.GroupAnnotation], ",") {
					if v = strings.TrimSpace(v); v != "" {
						idp[v] = append(idp[v], g.Ref)
					}
				}
			}
		}
	}
	for k, v := range idp {
		idp[k] = sortedUnique(v)
	}
	return ix, idp
}

// ResolveUser maps an IdP identity to a Backstage user ref using the
// configured strategies in order. It fails (ok=false) when no strategy finds
// a user, or when the first strategy that finds any finds more than one.
// Suspension is not checked here; the policy sees users[ref].suspended.
func (c *Catalog) ResolveUser(subject, email, username string) (ref string, ok bool) {
	email = strings.ToLower(strings.TrimSpace(email))
	username = strings.ToLower(strings.TrimSpace(username))
	for _, m := range c.ident.order {
		var cands []string
		switch m {
		case MatchAnnotation:
			if subject != "" {
				cands = c.ident.bySubject[subject]
			}
		case MatchEmail:
			if email != "" {
				cands = c.ident.byEmail[email]
			}
		case MatchName:
			if username != "" {
				cands = c.ident.byName[username]
			}
			if len(cands) == 0 {
				if at := strings.LastIndexByte(email, '@'); at > 0 {
					cands = c.ident.byName[email[:at]]
				}
			}
		}
		switch len(cands) {
		case 0:
			continue
		case 1:
			return cands[0], true
		default:
			return "", false
		}
	}
	return "", false
}
