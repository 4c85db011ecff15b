// Package configs embeds backgate's built-in configuration assets.
package configs

import "embed"

// Catalog is the demo Backstage catalog: a copy of Backstage's ACME example
// (Apache 2.0, see catalog/LICENSE and catalog/NOTICE) plus
// catalog/backgate-demo.yaml. Its entry points are the *.yaml files at the root
// of the "catalog" directory; use fs.Sub(Catalog, "catalog").
//
//go:embed catalog
var Catalog embed.FS
