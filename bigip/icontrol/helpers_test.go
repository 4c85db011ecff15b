package icontrol

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/bigip"
	"github.com/backgate/backgate/bigip/icontrol/icontroltest"
)

const (
	testUser = "admin"
	testPass = "s3cret-Passw0rd"
	// keyHex is a recognisable fake key: tests assert it never shows up in
	// plans or logs.
	keyHex  = "6b6579316b6579316b6579316b6579316b6579316b6579316b6579316b657931"
	key2Hex = "6b6579326b6579326b6579326b6579326b6579326b6579326b6579326b657932"
)

// device is a fake BIG-IP with a pool and two virtual servers using it;
// vs_app already has another iRule.
func device(t *testing.T) *icontroltest.Server {
	t.Helper()
	s := icontroltest.New(testUser, testPass)
	t.Cleanup(s.Close)
	must(t, s.AddPool("Common", "app_pool"))
	must(t, s.SetRule("Common", "other_rule", "when HTTP_REQUEST { log local0. hi }"))
	must(t, s.AddVirtual("Common", "vs_app", "/Common/app_pool", "/Common/other_rule"))
	must(t, s.AddVirtual("Common", "vs_api", "/Common/app_pool"))
	must(t, s.AddVirtual("Common", "vs_unrelated", "/Common/app_pool"))
	s.ResetCounters()
	return s
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func options(t *testing.T, s *icontroltest.Server) Options {
	t.Helper()
	ca, err := s.WriteCAFile(t.TempDir())
	must(t, err)
	return Options{
		URL: s.URL(), Username: testUser, Password: testPass, CAFile: ca,
		Timeout: 5 * time.Second, RetryWait: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func dial(t *testing.T, s *icontroltest.Server) *Client {
	t.Helper()
	c, err := Dial(context.Background(), options(t, s))
	must(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func desired() bigip.Desired {
	return bigip.Desired{
		Partition: "Common",
		Rule:      bigip.Rule{Name: bigip.RuleName, Text: "when HTTP_REQUEST {\n  # verify edge token\n}\n"},
		DataGroups: []bigip.DataGroup{
			{Name: bigip.KeysDataGroup, Type: "string", Records: []bigip.Record{{Name: "k1", Data: keyHex}}},
			{Name: bigip.RoutesDataGroup, Type: "string", Records: []bigip.Record{
				{Name: bigip.RouteKey("component:default/payments", "prod"), Data: "/Common/payments_pool"},
			}},
		},
		Virtuals: []string{"vs_app", "vs_api"},
	}
}
