// Package backstage loads the Backstage software catalog (from catalog-info.yaml
// files or a live Backstage REST API), derives memberships, owners, identity
// mappings and routes from it, and publishes an immutable *Catalog plus the OPA
// data document the policy engine mounts at data.catalog.
package backstage
