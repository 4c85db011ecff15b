package rego

import (
	"embed"
	"io/fs"
)

//go:embed *.rego schemas/*.json
var files embed.FS

// FS returns the shipped policy: every *.rego file (including the *_test.rego
// files, which the engine excludes from serving) and schemas/*.json.
func FS() fs.FS { return files }
