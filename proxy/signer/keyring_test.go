package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backgate/backgate/proxy/edgetoken"
)

func TestKeyringFirstStart(t *testing.T) {
	clk := newClock()
	dataDir := filepath.Join(t.TempDir(), "data")
	k := openRing(t, KeyringOptions{Dir: dataDir, Now: clk.Now})

	keysDir := filepath.Join(dataDir, KeysDirName)
	st, err := os.Stat(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	if p := st.Mode().Perm(); p != 0o700 {
		t.Errorf("keys dir mode %#o, want 0700", p)
	}
	entries, err := os.ReadDir(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("keys dir has %d files, want keyring + 2 keys: %v", len(entries), entries)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if p := info.Mode().Perm(); p != 0o600 {
			t.Errorf("%s mode %#o, want 0600", e.Name(), p)
		}
	}
	var rf keyringFile
	raw, err := os.ReadFile(filepath.Join(keysDir, KeyringFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		t.Fatal(err)
	}
	if len(rf.Keys) != 2 || rf.Keys[0].Kind != KindEdge || rf.Keys[1].Kind != KindJWT || rf.Keys[1].Algorithm != AlgES256 {
		t.Fatalf("keyring = %+v", rf)
	}
	for _, e := range rf.Keys {
		if !e.Created.Equal(clk.Now()) || !e.ActivateAt.Equal(clk.Now()) || e.Retired || !e.RetireAt.IsZero() {
			t.Errorf("entry %+v: want created = activate_at = now, not retired", e)
		}
	}

	edge := mustList(t, k.EdgeStore())
	jwtKeys := mustList(t, k.JWTStore())
	if len(edge) != 1 || len(edge[0].Secret) != 32 || len(jwtKeys) != 1 || jwtKeys[0].Secret != nil {
		t.Fatalf("edge %+v jwt %+v", edge, jwtKeys)
	}

	// A second start loads the same keys and generates nothing.
	k2 := openRing(t, KeyringOptions{Dir: dataDir, Now: clk.Now})
	edge2, jwt2 := mustList(t, k2.EdgeStore()), mustList(t, k2.JWTStore())
	if len(edge2) != 1 || edge2[0].ID != edge[0].ID || !bytes.Equal(edge2[0].Secret, edge[0].Secret) {
		t.Errorf("reopened edge keys %v differ from %v", ids(edge2), ids(edge))
	}
	if len(jwt2) != 1 || jwt2[0].ID != jwtKeys[0].ID {
		t.Errorf("reopened JWT keys %v differ from %v", ids(jwt2), ids(jwtKeys))
	}
	j1, _ := k.JWKS()
	j2, _ := k2.JWKS()
	if !bytes.Equal(j1, j2) {
		t.Errorf("JWKS differs after reopen:\n%s\n%s", j1, j2)
	}
	raw2, _ := os.ReadFile(filepath.Join(keysDir, KeyringFileName))
	if !bytes.Equal(raw, raw2) {
		t.Error("reopen rewrote the keyring")
	}
}

func TestKeyringAlgorithms(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgES384, AlgRS256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			k := openRing(t, KeyringOptions{Dir: t.TempDir(), Algorithm: alg})
			js := k.snapshot().jwt
			if len(js) != 1 || js[0].alg.String() != alg {
				t.Fatalf("generated %v", js)
			}
			jwks, err := k.JWKS()
			if err != nil || !strings.Contains(string(jwks), `"alg":"`+alg+`"`) {
				t.Errorf("JWKS %s, %v", jwks, err)
			}
		})
	}
}

func TestKeyringRefusesOpenPermissions(t *testing.T) {
	dir := t.TempDir()
	openRing(t, KeyringOptions{Dir: dir})
	keys := filepath.Join(dir, KeysDirName)

	if err := os.Chmod(filepath.Join(keys, KeyringFileName), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(KeyringOptions{Dir: dir}); !errors.Is(err, ErrKeyring) {
		t.Errorf("world-readable keyring.json: err = %v, want ErrKeyring", err)
	}
	if err := os.Chmod(filepath.Join(keys, KeyringFileName), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keys, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(KeyringOptions{Dir: dir}); !errors.Is(err, ErrKeyring) {
		t.Errorf("group-readable key dir: err = %v, want ErrKeyring", err)
	}
	if err := os.Chmod(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(keys, "*.edge.hex"))
	if err := os.Chmod(m[0], 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyring(KeyringOptions{Dir: dir}); !errors.Is(err, ErrKeyring) {
		t.Errorf("group-readable edge key: err = %v, want ErrKeyring", err)
	}
}

func TestKeyringRotation(t *testing.T) {
	clk := newClock()
	k := openRing(t, KeyringOptions{Dir: t.TempDir(), Now: clk.Now})
	store := k.EdgeStore()
	old := mustList(t, store)[0]

	next, err := store.Add(clk.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Secret) != 32 || next.ID == old.ID {
		t.Fatalf("Add returned %+v", next)
	}
	signing := func() string { return k.snapshot().edgeSigner(clk.Now()).id }
	verify := func() []string {
		var out []string
		for _, e := range k.EdgeVerifyKeys() {
			out = append(out, e.ID)
		}
		return out
	}
	if got := signing(); got != old.ID {
		t.Errorf("pending key signs: %s", got)
	}
	if got := verify(); !slices.Equal(got, []string{next.ID, old.ID}) {
		t.Errorf("verify keys %v, want pending and old", got)
	}
	if s, ok := k.EdgeSecret(next.ID); !ok || !bytes.Equal(s, next.Secret) {
		t.Error("pending key not verifiable")
	}

	clk.Add(time.Hour)
	if got := signing(); got != next.ID {
		t.Errorf("after activate_at signs with %s, want %s", got, next.ID)
	}
	if _, ok := k.EdgeSecret(old.ID); !ok {
		t.Error("old key stopped verifying before retirement")
	}

	// Scheduled retirement: still verifies until the time comes.
	if err := store.Retire(old.ID, clk.Now().Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.EdgeSecret(old.ID); !ok {
		t.Error("old key stopped verifying before its retire_at")
	}
	if l := mustList(t, store); !l[0].Retired || !l[0].RetireAt.Equal(clk.Now().Add(10*time.Minute)) {
		t.Errorf("scheduled retirement not reported: %#v", l[0])
	}
	// A retirement is never postponed.
	if err := store.Retire(old.ID, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if l := mustList(t, store); !l[0].RetireAt.Equal(clk.Now().Add(10 * time.Minute)) {
		t.Errorf("retirement postponed to %v", l[0].RetireAt)
	}
	clk.Add(10 * time.Minute)
	if _, ok := k.EdgeSecret(old.ID); ok {
		t.Error("old key still verifies after retire_at")
	}
	if got := verify(); !slices.Equal(got, []string{next.ID}) {
		t.Errorf("verify keys %v, want only %s", got, next.ID)
	}
	l := mustList(t, store)
	if len(l) != 2 || l[0].ID != old.ID || !l[0].Retired || !l[0].RetireAt.Equal(clk.Now()) || l[1].Retired {
		t.Errorf("List = %#v", l)
	}

	if err := store.Retire("nope", time.Time{}); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Retire unknown: %v", err)
	}
	jwtID := mustList(t, k.JWTStore())[0].ID
	if err := store.Retire(jwtID, time.Time{}); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("edge store retired a JWT key: %v", err)
	}

	// Retiring the only signing key fails closed.
	if err := store.Retire(next.ID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if e := k.snapshot().edgeSigner(clk.Now()); e != nil {
		t.Errorf("signing with retired key %s", e.id)
	}
}

func TestKeyringStaticFiles(t *testing.T) {
	dir := t.TempDir()
	edgeHex := filepath.Join(dir, "edge.hex")
	edgeRaw := filepath.Join(dir, "edge.raw")
	jwtPEM := filepath.Join(dir, "jwt.pem")
	secret := bytes.Repeat([]byte{0xab}, 32)
	raw := []byte("this is a raw edge secret of 40 bytes!!")
	_, pemBytes, err := newJWTKey(mustAlg(t, AlgEdDSA))
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{edgeHex: []byte(strings.Repeat("ab", 32) + "\n"), edgeRaw: raw, jwtPEM: pemBytes} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := KeyringOptions{
		EdgeKeyFiles: []KeyFile{{ID: "edge-a", Path: edgeHex}, {ID: "edge-b", Path: edgeRaw}},
		JWTKeyFiles:  []KeyFile{{ID: "jwt-a", Path: jwtPEM}},
	}
	k := openRing(t, opts)
	ks := k.snapshot()
	if e := ks.edgeSigner(time.Now()); e == nil || e.id != "edge-a" || !bytes.Equal(e.key.Secret, secret) {
		t.Errorf("edge signer = %+v", e)
	}
	if s, ok := k.EdgeSecret("edge-b"); !ok || !bytes.Equal(s, raw) {
		t.Errorf("edge-b = %q %v", s, ok)
	}
	if j := ks.jwtSigner(time.Now()); j == nil || j.id != "jwt-a" || j.alg.String() != AlgEdDSA {
		t.Errorf("jwt signer = %+v", j)
	}
	if _, err := k.EdgeStore().Add(time.Time{}); !errors.Is(err, ErrNoKeyring) {
		t.Errorf("Add without Dir: %v", err)
	}
	if err := k.EdgeStore().Retire("edge-a", time.Time{}); !errors.Is(err, ErrStaticKey) {
		t.Errorf("Retire static: %v", err)
	}

	// With a data dir too, only the kind without files is generated, and a
	// keyring key added later supersedes the static one.
	opts.Dir = filepath.Join(dir, "data")
	opts.JWTKeyFiles = nil
	k = openRing(t, opts)
	if n := len(k.snapshot().edge); n != 2 {
		t.Errorf("edge keys %d, want the 2 files and no generated one", n)
	}
	if n := len(k.snapshot().jwt); n != 1 {
		t.Errorf("jwt keys %d, want 1 generated", n)
	}
	added, err := k.EdgeStore().Add(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if e := k.snapshot().edgeSigner(time.Now()); e.id != added.ID {
		t.Errorf("signer %s, want keyring key %s", e.id, added.ID)
	}
}

func TestKeyringOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts KeyringOptions
		want string
	}{
		{"nothing", KeyringOptions{}, "EdgeKeyFiles: need at least one"},
		{"bad alg", KeyringOptions{Dir: "x", Algorithm: "HS256"}, `algorithm "HS256"`},
		{"bad id", KeyringOptions{Dir: "x", EdgeKeyFiles: []KeyFile{{ID: "a b", Path: "p"}}}, `EdgeKeyFiles[0].ID "a b"`},
		{"dup id", KeyringOptions{Dir: "x", EdgeKeyFiles: []KeyFile{{ID: "a", Path: "p"}}, JWTKeyFiles: []KeyFile{{ID: "a", Path: "q"}}}, `JWTKeyFiles[0].ID "a" is used twice`},
		{"no path", KeyringOptions{Dir: "x", JWTKeyFiles: []KeyFile{{ID: "a"}}}, "JWTKeyFiles[0].Path is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want mention of %q", err, tt.want)
			}
		})
	}
	if err := (KeyringOptions{Dir: "x"}).Validate(); err != nil {
		t.Errorf("minimal options: %v", err)
	}
}

func TestKeyringReloadAndWatch(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	k := openRing(t, KeyringOptions{Dir: dir, Now: clk.Now})
	other := openRing(t, KeyringOptions{Dir: dir, Now: clk.Now}) // e.g. the rotation job in another process
	gen := k.snapshot().gen

	if err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if k.snapshot().gen != gen {
		t.Error("Reload without changes swapped the key set")
	}

	added, err := other.EdgeStore().Add(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Watch(ctx, time.Millisecond); close(done) }()
	deadline := time.After(10 * time.Second)
	for {
		if _, ok := k.EdgeSecret(added.ID); ok {
			break
		}
		select {
		case <-deadline:
			t.Fatal("Watch did not pick up the new key")
		case <-time.After(time.Millisecond):
		}
	}
	if e := k.snapshot().edgeSigner(clk.Now()); e.id != added.ID {
		t.Errorf("signing with %s, want %s", e.id, added.ID)
	}
	cancel()
	<-done

	// A broken keyring keeps the current keys in use.
	cur := k.snapshot()
	if err := os.WriteFile(filepath.Join(dir, KeysDirName, KeyringFileName), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := k.Reload(); !errors.Is(err, ErrKeyring) {
		t.Errorf("Reload of a broken keyring: %v", err)
	}
	if k.snapshot() != cur {
		t.Error("failed reload replaced the keys")
	}
}

func TestParseKeyring(t *testing.T) {
	valid := `{"version":1,"keys":[{"id":"e1","kind":"edge-hmac","file":"e1.hex","created":"2026-01-01T00:00:00Z","activate_at":"2026-01-01T00:00:00Z","retired":false}]}`
	if _, err := parseKeyring([]byte(valid)); err != nil {
		t.Fatalf("valid keyring: %v", err)
	}
	tests := []struct {
		name, doc, want string
	}{
		{"version", `{"version":2,"keys":[]}`, "version 2"},
		{"unknown field", `{"version":1,"keys":[],"x":1}`, "unknown field"},
		{"trailing", `{"version":1,"keys":[]} {}`, "data after"},
		{"bad kind", strings.Replace(valid, "edge-hmac", "hmac", 1), `kind "hmac"`},
		{"bad id", strings.Replace(valid, `"id":"e1"`, `"id":"e/1"`, 1), `id "e/1"`},
		{"path file", strings.Replace(valid, `"e1.hex"`, `"../e1.hex"`, 1), `file "../e1.hex"`},
		{"dot file", strings.Replace(valid, `"e1.hex"`, `".."`, 1), `file ".."`},
		{"keyring as key", strings.Replace(valid, `"e1.hex"`, `"keyring.json"`, 1), `file "keyring.json"`},
		{"alg on edge", strings.Replace(valid, `"file"`, `"alg":"ES256","file"`, 1), `alg "ES256" set on an edge key`},
		{"no created", strings.Replace(valid, `"created":"2026-01-01T00:00:00Z",`, ``, 1), "created is missing"},
		{"jwt no alg", strings.Replace(valid, "edge-hmac", "jwt", 1), `alg ""`},
		{"jwt HS256", strings.Replace(strings.Replace(valid, "edge-hmac", "jwt", 1), `"file"`, `"alg":"HS256","file"`, 1), `alg "HS256"`},
		{"dup id", strings.Replace(valid, `]}`, `,{"id":"e1","kind":"jwt","alg":"ES256","file":"j.pem","created":"2026-01-01T00:00:00Z","activate_at":"2026-01-01T00:00:00Z","retired":false}]}`, 1), "used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseKeyring([]byte(tt.doc))
			if !errors.Is(err, ErrKeyring) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrKeyring mentioning %q", err, tt.want)
			}
		})
	}
}

func FuzzParseKeyring(f *testing.F) {
	f.Add([]byte(`{"version":1,"keys":[{"id":"e1","kind":"edge-hmac","file":"e1.hex","created":"2026-01-01T00:00:00Z","activate_at":"2026-01-01T00:00:00Z","retired":false}]}`))
	f.Add([]byte(`{"version":1,"keys":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rf, err := parseKeyring(b)
		if err != nil {
			return
		}
		for _, e := range rf.Keys {
			if !validKeyID(e.ID) || !validKeyFileName(e.File) || strings.ContainsAny(e.File, `/\`) || e.File == ".." {
				t.Fatalf("accepted entry %+v", e)
			}
			if err := (edgetoken.Key{ID: e.ID, Secret: make([]byte, 32)}).Validate(); err != nil {
				t.Fatalf("accepted id unusable as edge key id: %v", err)
			}
		}
	})
}

func TestKeyLifecycle(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		m            keyMeta
		at           time.Time
		usable, sign bool
	}{
		{"active", keyMeta{activateAt: t0}, t0, true, true},
		{"pending", keyMeta{activateAt: t0.Add(time.Second)}, t0, true, false},
		{"retired outright", keyMeta{retired: true}, t0, false, false},
		{"retirement scheduled", keyMeta{retired: true, retireAt: t0.Add(time.Second)}, t0, true, true},
		{"retirement reached", keyMeta{retired: true, retireAt: t0}, t0, false, false},
		{"retire_at alone, before", keyMeta{retireAt: t0.Add(time.Second)}, t0, true, true},
		{"retire_at alone, reached", keyMeta{retireAt: t0}, t0, false, false},
		{"pending and retired", keyMeta{activateAt: t0.Add(time.Hour), retired: true, retireAt: t0.Add(time.Minute)}, t0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.usable(tt.at); got != tt.usable {
				t.Errorf("usable = %v, want %v", got, tt.usable)
			}
			if got := tt.m.active(tt.at); got != tt.sign {
				t.Errorf("active = %v, want %v", got, tt.sign)
			}
			// What bigip/icontrol computes from the KeyState must agree.
			st := tt.m.state(nil)
			if published := !st.Retired || tt.at.Before(st.RetireAt); published != tt.usable {
				t.Errorf("KeyState %#v published = %v, want %v", st, published, tt.usable)
			}
		})
	}
}
