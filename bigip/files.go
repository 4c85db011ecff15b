package bigip

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Names of the files WriteFiles writes.
const (
	FileRuleSuffix = ".tcl"            // <RuleName>.tcl: the iRule text
	FileDataGroups = "datagroups.json" // []DataGroup as iControl REST shapes
	FileTMSH       = "bigip.conf"      // rule and data groups for "tmsh load sys config merge file"
	FileAS3        = "as3.json"        // RenderAS3
)

// WriteFiles writes what `backgate bigip render` shows an operator into
// dir (created 0700 if missing): the iRule, the data groups as JSON and as
// a tmsh merge file, and the AS3 fragment. Files are written 0600 through
// a temporary file and rename, because the data groups hold the signing
// keys.
func WriteFiles(dir string, d Desired) error {
	if err := d.Validate(); err != nil {
		return err
	}
	as3, err := RenderAS3(d)
	if err != nil {
		return err
	}
	dgs, err := json.MarshalIndent(d.DataGroups, "", "  ")
	if err != nil {
		return fmt.Errorf("bigip: marshal data groups: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{d.Rule.Name + FileRuleSuffix, []byte(d.Rule.Text)},
		{FileDataGroups, append(dgs, '\n')},
		{FileTMSH, []byte(RenderTMSH(d))},
		{FileAS3, as3},
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bigip: create output directory %s: %w", dir, err)
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("bigip: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("bigip: write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("bigip: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("bigip: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("bigip: write %s: %w", path, err)
	}
	return nil
}

// RenderTMSH returns d's data groups and iRule in bigip.conf syntax, for
// `tmsh load sys config merge file FILE` (try `... merge verify file FILE`
// first). Objects go to /<Partition>/<name>, the paths a rule rendered
// without Folder uses. Virtual servers are not modified; attach the rule
// with `tmsh modify ltm virtual NAME rules { /<Partition>/<RuleName> }`,
// which replaces that virtual's rule list. d must be valid (see
// Desired.Validate).
func RenderTMSH(d Desired) string {
	var b strings.Builder
	b.WriteString("# backgate: edge-token iRule and data groups. Generated; holds signing keys.\n")
	for _, g := range d.DataGroups {
		fmt.Fprintf(&b, "ltm data-group internal %s {\n", DataGroupPath(d.Partition, "", g.Name))
		if len(g.Records) > 0 {
			b.WriteString("    records {\n")
			for _, r := range g.Records {
				fmt.Fprintf(&b, "        %q {\n            data %q\n        }\n", r.Name, r.Data)
			}
			b.WriteString("    }\n")
		}
		fmt.Fprintf(&b, "    type %s\n}\n", g.Type)
	}
	fmt.Fprintf(&b, "ltm rule %s {\n%s", DataGroupPath(d.Partition, "", d.Rule.Name), d.Rule.Text)
	if !strings.HasSuffix(d.Rule.Text, "\n") {
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.String()
}
