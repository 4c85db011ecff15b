package icontrol_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/backgate/backgate/bigip"
	"github.com/backgate/backgate/bigip/icontrol"
	"github.com/backgate/backgate/bigip/icontrol/icontroltest"
)

// Plan and apply against the fake device, as `backgate bigip apply` would
// against a real one.
func ExampleClient_Apply() {
	dev := icontroltest.New("admin", "pw")
	defer dev.Close()
	_ = dev.AddPool("Common", "app_pool")
	_ = dev.AddVirtual("Common", "vs_app", "/Common/app_pool")
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ca, _ := dev.WriteCAFile(dir)

	ctx := context.Background()
	c, err := icontrol.Dial(ctx, icontrol.Options{URL: dev.URL(), Username: "admin", Password: "pw", CAFile: ca, Timeout: 10 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx)

	d := bigip.Desired{
		Rule: bigip.Rule{Name: bigip.RuleName, Text: "when HTTP_REQUEST {\n}"},
		DataGroups: []bigip.DataGroup{{Name: bigip.KeysDataGroup, Type: "string",
			Records: []bigip.Record{{Name: "k1", Data: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}}}},
		Virtuals: []string{"vs_app"},
	}
	plan, err := c.Apply(ctx, d)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(plan)
	plan, _ = c.Plan(ctx, d)
	fmt.Print(plan)
	v, _ := dev.Virtual("/Common/vs_app")
	fmt.Println("pool kept:", v.Pool)
	// Output:
	// BIG-IP partition Common: 3 changes
	// + rule /Common/backgate_edge_verify: create (2 lines, sha256:80f97d47)
	// + data-group /Common/backgate_edge_keys: create, type string, 1 record
	//     + "k1" (data redacted)
	// ~ virtual /Common/vs_app: attach iRule
	//     rules [] -> ["/Common/backgate_edge_verify"]
	// BIG-IP partition Common: in sync, nothing to change
	// pool kept: /Common/app_pool
}
