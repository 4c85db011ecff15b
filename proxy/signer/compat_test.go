package signer_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backgate/backgate/bigip/icontrol"
	"github.com/backgate/backgate/proxy/signer"
)

// storeAdapter is what the integrator writes: signer.KeyState converts to
// icontrol.KeyState with a plain conversion.
type storeAdapter struct{ s *signer.FileKeyStore }

func (a storeAdapter) List() ([]icontrol.KeyState, error) {
	l, err := a.s.List()
	out := make([]icontrol.KeyState, len(l))
	for i, k := range l {
		out[i] = icontrol.KeyState(k)
	}
	return out, err
}

func (a storeAdapter) Add(at time.Time) (icontrol.KeyState, error) {
	k, err := a.s.Add(at)
	return icontrol.KeyState(k), err
}

func (a storeAdapter) Retire(id string, at time.Time) error { return a.s.Retire(id, at) }

var _ icontrol.EdgeKeyStore = storeAdapter{}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestRotationSemanticsMatchIcontrol walks a rotation the way
// icontrol.Rotate drives the store and checks, at every step, that the
// rotation code's view (SigningKey, Published, KeysDataGroup) and the
// signer's (its signing key, EdgeVerifyKeys) agree.
func TestRotationSemanticsMatchIcontrol(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	ring, err := signer.OpenKeyring(signer.KeyringOptions{Dir: t.TempDir(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := signer.New(signer.Options{Keyring: ring, Issuer: "https://gate.example.com", Now: clk.Now, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	store := storeAdapter{ring.EdgeStore()}
	check := func(step string) {
		t.Helper()
		now := clk.Now()
		keys, _ := store.List()
		want, ok := icontrol.SigningKey(keys, now)
		h, err := sg.Sign(signer.SignRequest{Host: "a.example.com", Subject: "s", Service: "component:default/a", Environment: "prod", NotAfter: now.Add(time.Hour)})
		if !ok {
			if err == nil {
				t.Errorf("%s: signer signs but icontrol sees no signing key", step)
			}
			return
		}
		if err != nil || !strings.HasPrefix(h.Edge, "bg1."+want.ID+".") {
			t.Errorf("%s: signer used %.30s (%v), icontrol expects %s", step, h.Edge, err, want.ID)
		}
		var published, verify []string
		for _, k := range keys {
			if k.Published(now) {
				published = append(published, k.ID)
			}
		}
		for _, k := range ring.EdgeVerifyKeys() {
			verify = append(verify, k.ID)
		}
		sort.Strings(published)
		sort.Strings(verify)
		if !slices.Equal(published, verify) {
			t.Errorf("%s: icontrol publishes %v, signer verifies %v", step, published, verify)
		}
		if _, err := icontrol.KeysDataGroup(keys, now); err != nil {
			t.Errorf("%s: KeysDataGroup: %v", step, err)
		}
	}
	check("start")
	for round := range 2 {
		old, _ := store.List()
		nk, err := store.Add(clk.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		retireAt := nk.ActivateAt.Add(5 * time.Minute)
		for _, k := range old {
			if !k.Retired {
				if err := store.Retire(k.ID, retireAt); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i, d := range []time.Duration{0, 59 * time.Second, time.Second, 4 * time.Minute, time.Minute, time.Minute} {
			clk.Add(d)
			check(fmt.Sprintf("round %d step %d", round, i))
		}
	}
	own, err := ring.EdgeStore().List()
	if err != nil || len(own) == 0 {
		t.Fatal(err)
	}
	secret := fmt.Sprint(own[0].Secret[:4])
	secret = secret[1 : len(secret)-1]
	if l := fmt.Sprintf("%v %+v %#v", own, own[0], own[0]); strings.Contains(l, "Secret") || strings.Contains(l, secret) {
		t.Errorf("KeyState formatting shows the secret: %s", l)
	}
}
