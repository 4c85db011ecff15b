package icontrol

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backgate/backgate/bigip"
	"github.com/backgate/backgate/bigip/icontrol/icontroltest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestPlanGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(*testing.T, *icontroltest.Server)
		mutate func(*bigip.Desired)
	}{
		{name: "create"},
		{name: "in_sync", setup: func(t *testing.T, s *icontroltest.Server) {
			c := dial(t, s)
			_, err := c.Apply(context.Background(), desired())
			must(t, err)
		}},
		{name: "drift", setup: func(t *testing.T, s *icontroltest.Server) {
			must(t, s.SetRule("Common", bigip.RuleName, "when HTTP_REQUEST {\n  # old\n}"))
			must(t, s.SetDataGroup("Common", bigip.KeysDataGroup, "string", map[string]string{"k1": keyHex, "kold": keyHex}))
			must(t, s.SetDataGroup("Common", bigip.RoutesDataGroup, "string", map[string]string{
				"component:default/payments@prod": "/Common/old_pool",
				"component:default/gone@prod":     "/Common/gone_pool",
			}))
			// vs_unrelated carries the iRule but is not desired: noted, kept.
			c := dial(t, s)
			_, _, err := c.request(context.Background(), "", "seed", "vs_unrelated", "PATCH", "ltm/virtual/~Common~vs_unrelated",
				map[string]any{"rules": []string{"/Common/" + bigip.RuleName}})
			must(t, err)
		}, mutate: func(d *bigip.Desired) {
			d.DataGroups[0].Records = []bigip.Record{{Name: "k1", Data: key2Hex}, {Name: "k2", Data: key2Hex}}
			d.DataGroups[1].Records = append(d.DataGroups[1].Records, bigip.Record{Name: "component:default/new@dev", Data: "/Common/new_pool"})
		}},
		{name: "type_change", setup: func(t *testing.T, s *icontroltest.Server) {
			c := dial(t, s)
			_, err := c.Apply(context.Background(), desired())
			must(t, err)
			must(t, s.SetDataGroup("Common", bigip.RoutesDataGroup, "integer", map[string]string{"1": "x"}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := device(t)
			if tc.setup != nil {
				tc.setup(t, s)
			}
			d := desired()
			if tc.mutate != nil {
				tc.mutate(&d)
			}
			c := dial(t, s)
			s.ResetCounters()
			p, err := c.Plan(context.Background(), d)
			must(t, err)
			if s.Writes() != 0 {
				t.Fatalf("Plan made %d writes", s.Writes())
			}
			var buf bytes.Buffer
			must(t, p.Write(&buf))
			got := buf.String()
			if got != p.String() {
				t.Fatal("String and Write differ")
			}
			if strings.Contains(got, keyHex) || strings.Contains(got, key2Hex) {
				t.Fatalf("plan shows key material:\n%s", got)
			}
			golden := filepath.Join("testdata", "plan_"+tc.name+".golden")
			if *update {
				must(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			must(t, err)
			if got != string(want) {
				t.Fatalf("plan differs from %s (run with -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
			}
			// Applying the plan brings the device in sync.
			_, err = c.Apply(context.Background(), d)
			must(t, err)
			p, err = c.Plan(context.Background(), d)
			must(t, err)
			if !p.Empty() {
				t.Fatalf("not in sync after Apply:\n%s", p)
			}
		})
	}
}

func TestEmptyRecordsClearGroup(t *testing.T) {
	ctx := context.Background()
	s := device(t)
	c := dial(t, s)
	_, err := c.Apply(ctx, desired())
	must(t, err)
	d := desired()
	d.DataGroups[1].Records = nil
	_, err = c.Apply(ctx, d)
	must(t, err)
	_, recs, _ := s.DataGroup("/Common/" + bigip.RoutesDataGroup)
	if len(recs) != 0 {
		t.Fatalf("routes after clearing = %v", recs)
	}
	p, err := c.Plan(ctx, d)
	must(t, err)
	if !p.Empty() {
		t.Fatalf("not in sync:\n%s", p)
	}
}
