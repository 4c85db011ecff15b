package bigip

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backgate/backgate/proxy/edgetoken"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func goldenDesired(t *testing.T) Desired {
	t.Helper()
	d, err := BuildDesired(RuleOptions{}, []edgetoken.Key{testKeyB, testKeyA}, testRoutes(), []string{"vs_payments_https"})
	if err != nil {
		t.Fatalf("BuildDesired: %v", err)
	}
	return d
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bigip -run %s -update)", err, t.Name())
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file; run `go test ./bigip -update` and review the diff.\n--- got ---\n%s", path, got)
	}
}

func TestWriteFilesGolden(t *testing.T) {
	d := goldenDesired(t)
	dir := filepath.Join(t.TempDir(), "out")
	if err := WriteFiles(dir, d); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %o, want 0600 (it may hold keys)", e.Name(), perm)
		}
		got, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, e.Name(), got)
	}
	want := []string{RuleName + FileRuleSuffix, FileAS3, FileTMSH, FileDataGroups}
	if strings.Join(names, ",") != strings.Join(sortedCopy(want), ",") {
		t.Errorf("files %v, want %v", names, sortedCopy(want))
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("output dir mode: %v %v, want 0700", info.Mode(), err)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

func TestRenderRuleGoldenReplay(t *testing.T) {
	r, err := RenderRule(RuleOptions{ReplayProtection: true, DefaultPool: "/Common/fallback", SkewSeconds: 15})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "backgate_edge_verify_replay_default_pool.tcl", []byte(r.Text))
}

func TestRenderDataGroupsSortedAndHex(t *testing.T) {
	g := RenderDataGroups([]edgetoken.Key{testKeyB, testKeyA}, []RouteTarget{
		{Service: "component:default/z", Environment: "prod", Pool: "/Common/z"},
		{Service: "component:default/a", Environment: "dev", Pool: "/Common/a"},
	})
	if len(g) != 2 || g[0].Name != KeysDataGroup || g[1].Name != RoutesDataGroup {
		t.Fatalf("data groups %+v", g)
	}
	if g[0].Records[0].Name != testKeyA.ID || g[0].Records[0].Data != strings.Repeat("a15e", 16) {
		t.Errorf("keys records %+v", g[0].Records)
	}
	if g[1].Records[0].Name != "component:default/a@dev" || g[1].Records[1].Data != "/Common/z" {
		t.Errorf("route records %+v", g[1].Records)
	}
	for _, dg := range g {
		if dg.Type != "string" {
			t.Errorf("%s type %q", dg.Name, dg.Type)
		}
	}
}

func TestAS3Fragment(t *testing.T) {
	d := goldenDesired(t)
	out, err := RenderAS3(d)
	if err != nil {
		t.Fatal(err)
	}
	var decl map[string]struct {
		Class  string                     `json:"class"`
		Shared map[string]json.RawMessage `json:"Shared"`
	}
	if err := json.Unmarshal(out, &decl); err != nil {
		t.Fatalf("AS3 output is not JSON: %v", err)
	}
	ten, ok := decl["Common"]
	if !ok || ten.Class != "Tenant" {
		t.Fatalf("no Common tenant: %s", out)
	}
	var app struct {
		Class, Template string
	}
	var rule struct {
		Class  string
		Expand *bool
		IRule  struct{ Base64 string }
	}
	var dg struct {
		Class, StorageType, KeyDataType string
		Records                         []map[string]string
	}
	mustUnmarshal(t, ten.Shared["class"], &app.Class)
	mustUnmarshal(t, ten.Shared["template"], &app.Template)
	mustUnmarshal(t, ten.Shared[RuleName], &rule)
	mustUnmarshal(t, ten.Shared[RoutesDataGroup], &dg)
	if app.Class != "Application" || app.Template != "shared" {
		t.Errorf("application %+v", app)
	}
	if rule.Class != "iRule" || rule.Expand == nil || *rule.Expand {
		t.Errorf("iRule class %q expand %v", rule.Class, rule.Expand)
	}
	if dg.Class != "Data_Group" || dg.StorageType != "internal" || dg.KeyDataType != "string" ||
		len(dg.Records) != 2 || dg.Records[1]["key"] != RouteKey(testService, "prod") || dg.Records[1]["value"] != testPool {
		t.Errorf("routes data group %+v", dg)
	}
	text, err := base64.StdEncoding.DecodeString(rule.IRule.Base64)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(text), `"/Common/backgate_`) || !strings.Contains(string(text), `"/Common/Shared/backgate_edge_keys"`) {
		t.Errorf("AS3 rule does not use the Shared data group paths")
	}

	// The AS3 rule text works against data groups where AS3 puts them.
	s := &shimScript{}
	s.now(testNow)
	for _, g := range d.DataGroups {
		s.dataGroup(DataGroupPath("Common", AS3Folder, g.Name), g.Records)
	}
	s.pools(testPool)
	s.request("as3 valid", edge(mint(t, testKeyA, nil))...)
	s.request("as3 rotated key", edge(mint(t, testKeyB, nil))...)
	res, _ := runShim(t, string(text), s)
	checkResult(t, res["as3 valid"], "", testPool)
	checkResult(t, res["as3 rotated key"], "", testPool)
}

func mustUnmarshal(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("unmarshal %s: %v", raw, err)
	}
}

func TestDesiredValidation(t *testing.T) {
	base := goldenDesired(t)
	for _, tc := range []struct {
		name string
		edit func(*Desired)
		want string
	}{
		{"partition", func(d *Desired) { d.Partition = "" }, "Partition"},
		{"empty rule", func(d *Desired) { d.Rule.Text = " " }, "empty"},
		{"unbalanced rule", func(d *Desired) { d.Rule.Text += "}" }, "unbalanced"},
		{"short key", func(d *Desired) { d.DataGroups[0].Records[0].Data = "abcd" }, "hex"},
		{"upper-case hex key", func(d *Desired) {
			d.DataGroups[0].Records[0].Data = strings.ToUpper(d.DataGroups[0].Records[0].Data)
		}, "hex"},
		{"unsorted", func(d *Desired) {
			r := d.DataGroups[1].Records
			r[0], r[1] = r[1], r[0]
		}, "out of order"},
		{"relative pool", func(d *Desired) { d.DataGroups[1].Records[0].Data = "pool" }, "full path"},
		{"quote in route", func(d *Desired) { d.DataGroups[1].Records[0].Name = `a"b@prod` }, "quoted"},
		{"brace in pool", func(d *Desired) { d.DataGroups[1].Records[0].Data = "/Common/x}" }, "quoted"},
		{"virtual", func(d *Desired) { d.Virtuals = []string{"vs one"} }, "virtual"},
		{"rule lacks data group path", func(d *Desired) {
			d.Rule.Text = strings.ReplaceAll(d.Rule.Text, "/Common/backgate_routes", "/Other/backgate_routes")
		}, "references data group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base
			d.DataGroups = cloneGroups(base.DataGroups)
			tc.edit(&d)
			_, err := RenderAS3(d)
			if !errors.Is(err, ErrInvalidDesired) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidDesired mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("a15e", 4)) {
				t.Errorf("error leaks a key: %v", err)
			}
			if err := WriteFiles(t.TempDir(), d); err == nil {
				t.Errorf("WriteFiles accepted an invalid Desired")
			}
		})
	}
	if _, err := BuildDesired(RuleOptions{}, []edgetoken.Key{{ID: "k", Secret: []byte("short")}}, nil, nil); !errors.Is(err, ErrInvalidDesired) {
		t.Errorf("BuildDesired with a short key: %v", err)
	}
	if _, err := BuildDesired(RuleOptions{}, nil, nil, nil); !errors.Is(err, ErrInvalidDesired) {
		t.Errorf("BuildDesired without keys: %v", err)
	}
	if _, err := BuildDesired(RuleOptions{Folder: AS3Folder}, []edgetoken.Key{testKeyA}, nil, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("BuildDesired with a folder: %v", err)
	}
}

func cloneGroups(g []DataGroup) []DataGroup {
	out := make([]DataGroup, len(g))
	for i := range g {
		out[i] = g[i]
		out[i].Records = append([]Record(nil), g[i].Records...)
	}
	return out
}
