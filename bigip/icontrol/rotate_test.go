package icontrol

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/bigip"
)

// memStore is an in-memory EdgeKeyStore.
type memStore struct {
	keys      []KeyState
	now       func() time.Time
	n         int
	retireErr error
}

func (m *memStore) List() ([]KeyState, error) { return slices.Clone(m.keys), nil }

func (m *memStore) Add(at time.Time) (KeyState, error) {
	m.n++
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return KeyState{}, err
	}
	k := KeyState{ID: fmt.Sprintf("k%d", m.n), Secret: secret, Created: m.now(), ActivateAt: at}
	m.keys = append(m.keys, k)
	return k, nil
}

func (m *memStore) Retire(id string, at time.Time) error {
	if m.retireErr != nil {
		return m.retireErr
	}
	for i := range m.keys {
		if m.keys[i].ID == id {
			m.keys[i].Retired, m.keys[i].RetireAt = true, at
			return nil
		}
	}
	return fmt.Errorf("no key %q", id)
}

func (m *memStore) secretHex(id string) string {
	for _, k := range m.keys {
		if k.ID == id {
			return hex.EncodeToString(k.Secret)
		}
	}
	return ""
}

type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

const (
	delay    = 5 * time.Minute
	lifetime = 10 * time.Minute
	skew     = 30 * time.Second
)

func TestRotateSequence(t *testing.T) {
	ctx := context.Background()
	s := device(t)
	c := dial(t, s)
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	store := &memStore{now: clk.Now}
	o := RotateOptions{PropagationDelay: delay, MaxTokenLifetime: lifetime, Skew: skew, Now: clk.Now}
	keysOnDevice := func() map[string]string {
		t.Helper()
		_, recs, ok := s.DataGroup("/Common/" + bigip.KeysDataGroup)
		if !ok {
			t.Fatal("keys data group missing on the device")
		}
		return recs
	}
	signer := func() string {
		k, ok := SigningKey(store.keys, clk.Now())
		if !ok {
			return ""
		}
		return k.ID
	}

	// First rotation on an empty store: k1, pending for the delay.
	r, err := Rotate(ctx, c, store, o)
	must(t, err)
	if r.NewKeyID != "k1" || !r.ActivateAt.Equal(clk.Now().Add(delay)) || len(r.Retiring) != 0 {
		t.Fatalf("first rotation: %+v", r)
	}
	if got := keysOnDevice(); !maps.Equal(got, map[string]string{"k1": store.secretHex("k1")}) {
		t.Fatalf("device keys after first rotation: %v", slices.Collect(maps.Keys(got)))
	}
	if signer() != "" {
		t.Fatalf("k1 signs before its activation")
	}
	clk.Advance(delay)
	if signer() != "k1" {
		t.Fatalf("signer at activation = %q, want k1", signer())
	}

	// Second rotation: k2 is pushed next to k1; k1 retires after the
	// activation of k2 plus the token lifetime and skew.
	clk.Advance(time.Hour)
	t2 := clk.Now()
	r, err = Rotate(ctx, c, store, o)
	must(t, err)
	wantRetire := t2.Add(delay + lifetime + skew)
	if r.NewKeyID != "k2" || !slices.Equal(r.Retiring, []Retirement{{ID: "k1", At: wantRetire}}) || !slices.Equal(r.Published, []string{"k1", "k2"}) {
		t.Fatalf("second rotation: %+v", r)
	}
	if strings.Contains(r.Plan.String(), store.secretHex("k2")) || strings.Contains(fmt.Sprintf("%+v %#v", store.keys, store.keys), store.secretHex("k1")) {
		t.Fatal("secret shown by plan or KeyState formatting")
	}
	if got := keysOnDevice(); len(got) != 2 || got["k1"] != store.secretHex("k1") || got["k2"] != store.secretHex("k2") {
		t.Fatalf("device keys after second rotation: %v", slices.Collect(maps.Keys(got)))
	}
	if signer() != "k1" {
		t.Fatalf("signer during propagation = %q, want k1", signer())
	}
	clk.Advance(delay)
	if signer() != "k2" {
		t.Fatalf("signer after propagation = %q, want k2", signer())
	}

	// Finishing before k1's retirement time changes nothing, writes nothing.
	clk.t = wantRetire.Add(-time.Second)
	s.ResetCounters()
	r, err = FinishRotation(ctx, c, store, o)
	must(t, err)
	if !r.Plan.Empty() || s.Writes() != 0 || len(keysOnDevice()) != 2 {
		t.Fatalf("early finish: plan %q, %d writes", r.Plan, s.Writes())
	}
	// At the retirement time k1 leaves BIG-IP.
	clk.t = wantRetire
	r, err = FinishRotation(ctx, c, store, o)
	must(t, err)
	if got := keysOnDevice(); !maps.Equal(got, map[string]string{"k2": store.secretHex("k2")}) {
		t.Fatalf("device keys after finish: %v", slices.Collect(maps.Keys(got)))
	}
	if len(r.Plan.Changes) != 1 || !slices.Equal(r.Plan.Changes[0].Removed, []RecordChange{{Name: "k1"}}) {
		t.Fatalf("finish plan: %s", r.Plan)
	}
	// The keys push touched nothing else.
	if _, ok := s.Rule("/Common/" + bigip.RuleName); ok {
		t.Fatal("rotation created the iRule")
	}

	// A failed push: the new key k3 is retired at once and never signs;
	// the device keeps k2 only.
	s.FailOn("/Common/"+bigip.KeysDataGroup, "PATCH")
	_, err = Rotate(ctx, c, store, o)
	if err == nil || !strings.Contains(err.Error(), "k3") || !strings.Contains(err.Error(), "/Common/"+bigip.KeysDataGroup) {
		t.Fatalf("rotate with failing push: err = %v, want one naming k3 and the data group", err)
	}
	if errors.Is(err, ErrKeyPending) {
		t.Fatalf("err wraps ErrKeyPending although k3 was retired: %v", err)
	}
	clk.Advance(2 * delay)
	if signer() != "k2" {
		t.Fatalf("signer after a failed rotation = %q, want k2", signer())
	}
	if got := keysOnDevice(); len(got) != 1 || got["k2"] == "" {
		t.Fatalf("device keys after failed rotation: %v", slices.Collect(maps.Keys(got)))
	}
	if k := store.keys[2]; k.ID != "k3" || !k.Retired {
		t.Fatalf("k3 = %v, want retired", k)
	}
	// k2 was not scheduled for retirement by the failed rotation.
	if store.keys[1].Retired {
		t.Fatal("k2 retired by a failed rotation")
	}

	// Failed push and failed retire: ErrKeyPending, naming the key.
	store.retireErr = errors.New("disk full")
	_, err = Rotate(ctx, c, store, o)
	if !errors.Is(err, ErrKeyPending) || !strings.Contains(err.Error(), "k4") {
		t.Fatalf("err = %v, want ErrKeyPending naming k4", err)
	}
}

func TestRotateOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     RotateOptions
		field string
	}{
		{"no delay", RotateOptions{MaxTokenLifetime: time.Minute}, "PropagationDelay"},
		{"no lifetime", RotateOptions{PropagationDelay: time.Minute}, "MaxTokenLifetime"},
		{"negative skew", RotateOptions{PropagationDelay: time.Minute, MaxTokenLifetime: time.Minute, Skew: -1}, "Skew"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want ErrInvalid naming %s", err, tc.field)
			}
		})
	}
	if err := (RotateOptions{PropagationDelay: 1, MaxTokenLifetime: 1}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestKeysDataGroupRefusesBadKeys(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		keys []KeyState
	}{
		{"short secret", []KeyState{{ID: "k1", Secret: []byte("short")}}},
		{"bad id", []KeyState{{ID: "k 1", Secret: make([]byte, 32)}}},
		{"duplicate", []KeyState{{ID: "k1", Secret: make([]byte, 32)}, {ID: "k1", Secret: make([]byte, 32)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := KeysDataGroup(tc.keys, now); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	// Expired retired keys are skipped, even if malformed.
	g, err := KeysDataGroup([]KeyState{{ID: "old", Retired: true, RetireAt: now}, {ID: "k2", Secret: make([]byte, 32)}}, now)
	if err != nil || len(g.Records) != 1 || g.Records[0].Name != "k2" {
		t.Fatalf("got %v, %v", g.Records, err)
	}
}

func TestFinishRotationNeverEmptiesKeys(t *testing.T) {
	s := device(t)
	c := dial(t, s)
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	store := &memStore{now: clk.Now}
	o := RotateOptions{PropagationDelay: delay, MaxTokenLifetime: lifetime, Skew: skew, Now: clk.Now}
	_, err := Rotate(context.Background(), c, store, o)
	must(t, err)
	must(t, store.Retire("k1", clk.Now()))
	s.ResetCounters()
	_, err = FinishRotation(context.Background(), c, store, o)
	if !errors.Is(err, ErrNoKeys) {
		t.Fatalf("err = %v, want ErrNoKeys", err)
	}
	if _, recs, _ := s.DataGroup("/Common/" + bigip.KeysDataGroup); len(recs) != 1 || s.Writes() != 0 {
		t.Fatalf("device keys %d, writes %d; want 1 key kept and no write", len(recs), s.Writes())
	}
}

func TestSigningKey(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := []KeyState{
		{ID: "a", ActivateAt: t0, Retired: true, RetireAt: t0.Add(3 * time.Hour)},
		{ID: "b", ActivateAt: t0.Add(time.Hour)},
		{ID: "c", ActivateAt: t0.Add(2 * time.Hour), Retired: true, RetireAt: t0.Add(90 * time.Minute)}, // failed rotation
	}
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{
		{-time.Minute, ""},
		{0, "a"},
		{time.Hour, "b"},
		{150 * time.Minute, "b"},
		{5 * time.Hour, "b"},
	} {
		k, ok := SigningKey(keys, t0.Add(tc.at))
		if k.ID != tc.want || ok != (tc.want != "") {
			t.Errorf("at %s: signing key %q, want %q", tc.at, k.ID, tc.want)
		}
	}
}
