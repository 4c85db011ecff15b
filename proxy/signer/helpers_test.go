package signer

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock shared by a keyring and a signer.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openRing(t testing.TB, opts KeyringOptions) *Keyring {
	t.Helper()
	k, err := OpenKeyring(opts)
	if err != nil {
		t.Fatalf("OpenKeyring: %v", err)
	}
	return k
}

func mustList(t testing.TB, s KeyStore) []KeyState {
	t.Helper()
	l, err := s.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return l
}

func ids(keys []KeyState) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}

var testKeys sync.Map // algorithm -> PEM

// testKeyPEM returns a PKCS#8 PEM key for alg, generated once per test
// binary (RSA generation is slow).
func testKeyPEM(t testing.TB, alg string) []byte {
	t.Helper()
	if b, ok := testKeys.Load(alg); ok {
		return b.([]byte)
	}
	_, b, err := newJWTKey(mustAlg(t, alg))
	if err != nil {
		t.Fatal(err)
	}
	testKeys.Store(alg, b)
	return b
}
