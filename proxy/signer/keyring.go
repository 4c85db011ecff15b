package signer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/backgate/backgate/proxy/edgetoken"
)

// KeyKind says what a key signs.
type KeyKind string

// Key kinds, as written in the keyring file.
const (
	KindEdge KeyKind = "edge-hmac" // 32-byte HMAC-SHA256 secret for the edge token
	KindJWT  KeyKind = "jwt"       // private key (PKCS#8 PEM) for the assertion JWT
)

// Layout of the keyring inside the data directory.
const (
	KeysDirName     = "keys"         // Dir/keys, mode 0700
	KeyringFileName = "keyring.json" // Dir/keys/keyring.json, mode 0600
	keyringVersion  = 1
)

// DefaultWatchInterval is Watch's polling interval when none is given.
const DefaultWatchInterval = 10 * time.Second

// Errors callers branch on with errors.Is.
var (
	ErrNoKeyring    = errors.New("signer: no keyring directory configured")
	ErrUnknownKey   = errors.New("signer: unknown key id")
	ErrStaticKey    = errors.New("signer: key is configured from a file, not the keyring")
	ErrNoSigningKey = errors.New("signer: no active signing key")
	ErrKeyring      = errors.New("signer: bad keyring")
)

// KeyState is one key as the rotation code sees it. Its fields are exactly
// those of bigip/icontrol.KeyState, in the same order, so a value converts
// with a plain type conversion. Secret is the HMAC secret for edge keys and
// nil for JWT keys. Retired means retirement is decided; the key then
// verifies until RetireAt (not at all when RetireAt is zero), so it is
// published while !Retired || now.Before(RetireAt). Keys from configured
// files have zero times and are never retired.
type KeyState struct {
	ID         string
	Secret     []byte
	Created    time.Time
	ActivateAt time.Time
	RetireAt   time.Time
	Retired    bool
}

// String describes k without its secret, so logging a KeyState is safe.
func (k KeyState) String() string {
	s := fmt.Sprintf("key %s (activates %s", k.ID, k.ActivateAt.UTC().Format(time.RFC3339))
	if k.Retired {
		s += ", retires " + k.RetireAt.UTC().Format(time.RFC3339)
	}
	return s + ", secret redacted)"
}

// GoString is String, for %#v.
func (k KeyState) GoString() string { return k.String() }

// KeyStore is the interface the key rotation code drives. *FileKeyStore
// implements it; its methods are safe for concurrent use.
type KeyStore interface {
	// List returns every key of the store's kind, retired ones included,
	// oldest first.
	List() ([]KeyState, error)
	// Add generates a key that becomes the signing key at activateAt (zero
	// means now) and is published for verification at once.
	Add(activateAt time.Time) (KeyState, error)
	// Retire marks key id retired (Retired = true, RetireAt = at; zero at
	// means now): verifiers accept it until at. A retirement can be brought
	// forward but never postponed.
	Retire(id string, at time.Time) error
}

var _ KeyStore = (*FileKeyStore)(nil)

// KeyFile names a key read from a file given in the configuration. Such keys
// are always active and never retire; they are older than every keyring key,
// and among themselves the first listed signs.
type KeyFile struct {
	ID   string
	Path string
}

// KeyringOptions configure OpenKeyring.
type KeyringOptions struct {
	// Dir is the data directory. The keyring lives in Dir/keys, created with
	// mode 0700, and a key of each kind that has no configured file is
	// generated there on first start. Empty means keys come only from files.
	Dir string
	// EdgeKeyFiles are edge HMAC secrets: hex, or raw bytes, 32 or more.
	EdgeKeyFiles []KeyFile
	// JWTKeyFiles are PEM private keys (PKCS#8 EC P-256/P-384, RSA, Ed25519).
	JWTKeyFiles []KeyFile
	// Algorithm for generated JWT keys: ES256 (when empty), ES384, RS256, EdDSA.
	Algorithm string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives reload errors from Watch; nil discards.
	Logger *slog.Logger
}

// Validate checks the options without touching the file system.
func (o KeyringOptions) Validate() error {
	var errs []error
	if _, err := ParseAlgorithm(o.Algorithm); err != nil {
		errs = append(errs, fmt.Errorf("signer: Algorithm: %w", err))
	}
	if o.Dir == "" && len(o.EdgeKeyFiles) == 0 {
		errs = append(errs, errors.New("signer: EdgeKeyFiles: need at least one when Dir is empty"))
	}
	if o.Dir == "" && len(o.JWTKeyFiles) == 0 {
		errs = append(errs, errors.New("signer: JWTKeyFiles: need at least one when Dir is empty"))
	}
	seen := map[string]bool{}
	for _, set := range []struct {
		name  string
		files []KeyFile
	}{{"EdgeKeyFiles", o.EdgeKeyFiles}, {"JWTKeyFiles", o.JWTKeyFiles}} {
		for i, f := range set.files {
			if !validKeyID(f.ID) {
				errs = append(errs, fmt.Errorf("signer: %s[%d].ID %q must be 1-%d characters of [A-Za-z0-9_-]", set.name, i, f.ID, edgetoken.MaxKeyIDLen))
			} else if seen[f.ID] {
				errs = append(errs, fmt.Errorf("signer: %s[%d].ID %q is used twice", set.name, i, f.ID))
			}
			seen[f.ID] = true
			if f.Path == "" {
				errs = append(errs, fmt.Errorf("signer: %s[%d].Path is empty", set.name, i))
			}
		}
	}
	return errors.Join(errs...)
}

func validKeyID(id string) bool {
	return edgetoken.Key{ID: id, Secret: make([]byte, edgetoken.MinSecretLen)}.Validate() == nil
}

// Keyring holds the signing and verification keys of both kinds. The key
// set in use is an immutable snapshot behind an atomic pointer: signing
// never waits for a reload, a write or Watch.
type Keyring struct {
	dir     string // Dir/keys, or "" without a keyring
	edgeFs  []KeyFile
	jwtFs   []KeyFile
	alg     jwa.SignatureAlgorithm
	now     func() time.Time
	log     *slog.Logger
	mu      sync.Mutex // serialises reloads and keyring writes
	lastSum [sha256.Size]byte
	gen     uint64
	cur     atomic.Pointer[keyset]
}

// OpenKeyring validates opts, creates the keyring on first start (a key of
// each kind without configured files, active at once) and loads every key.
func OpenKeyring(opts KeyringOptions) (*Keyring, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	alg, _ := ParseAlgorithm(opts.Algorithm)
	k := &Keyring{
		edgeFs: slices.Clone(opts.EdgeKeyFiles),
		jwtFs:  slices.Clone(opts.JWTKeyFiles),
		alg:    alg,
		now:    opts.Now,
		log:    opts.Logger,
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if opts.Dir != "" {
		k.dir = filepath.Join(opts.Dir, KeysDirName)
		if err := k.initDir(); err != nil {
			return nil, err
		}
	}
	if _, err := k.reloadLocked(); err != nil {
		return nil, err
	}
	return k, nil
}

// initDir creates Dir/keys and the keyring file if needed, and generates a
// key for each kind that has neither a keyring entry nor a configured file.
func (k *Keyring) initDir() error {
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return fmt.Errorf("signer: create key directory: %w", err)
	}
	st, err := os.Stat(k.dir)
	if err != nil {
		return fmt.Errorf("signer: key directory: %w", err)
	}
	if p := st.Mode().Perm(); p&0o077 != 0 {
		return fmt.Errorf("%w: key directory %s has mode %#o, want 0700", ErrKeyring, k.dir, p)
	}
	rf, raw, err := k.readRing()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	changed := raw == nil
	now := k.now()
	for _, kind := range []KeyKind{KindEdge, KindJWT} {
		if len(k.filesOf(kind)) > 0 || slices.ContainsFunc(rf.Keys, func(e keyEntry) bool { return e.Kind == kind }) {
			continue
		}
		e, err := k.generate(kind, rf, now, now)
		if err != nil {
			return err
		}
		rf.Keys = append(rf.Keys, e)
		changed = true
	}
	if changed {
		return k.writeRing(rf)
	}
	return nil
}

func (k *Keyring) filesOf(kind KeyKind) []KeyFile {
	if kind == KindEdge {
		return k.edgeFs
	}
	return k.jwtFs
}

// keyringFile is the JSON document in Dir/keys/keyring.json.
type keyringFile struct {
	Version int        `json:"version"`
	Keys    []keyEntry `json:"keys"`
}

type keyEntry struct {
	ID         string    `json:"id"`
	Kind       KeyKind   `json:"kind"`
	Algorithm  string    `json:"alg,omitempty"` // JWT keys only
	File       string    `json:"file"`          // base name inside Dir/keys
	Created    time.Time `json:"created"`
	ActivateAt time.Time `json:"activate_at"`
	RetireAt   time.Time `json:"retire_at,omitzero"`
	Retired    bool      `json:"retired"`
}

// parseKeyring decodes and checks a keyring document strictly.
func parseKeyring(raw []byte) (keyringFile, error) {
	var rf keyringFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		return rf, fmt.Errorf("%w: %v", ErrKeyring, err)
	}
	if dec.More() {
		return rf, fmt.Errorf("%w: data after the document", ErrKeyring)
	}
	if rf.Version != keyringVersion {
		return rf, fmt.Errorf("%w: version %d, want %d", ErrKeyring, rf.Version, keyringVersion)
	}
	ids := map[string]bool{}
	files := map[string]bool{}
	for i, e := range rf.Keys {
		switch {
		case !validKeyID(e.ID):
			return rf, fmt.Errorf("%w: keys[%d].id %q must be 1-%d characters of [A-Za-z0-9_-]", ErrKeyring, i, e.ID, edgetoken.MaxKeyIDLen)
		case ids[e.ID]:
			return rf, fmt.Errorf("%w: keys[%d].id %q is used twice", ErrKeyring, i, e.ID)
		case e.Kind != KindEdge && e.Kind != KindJWT:
			return rf, fmt.Errorf("%w: keys[%d].kind %q, want %q or %q", ErrKeyring, i, e.Kind, KindEdge, KindJWT)
		case e.Kind == KindEdge && e.Algorithm != "":
			return rf, fmt.Errorf("%w: keys[%d].alg %q set on an edge key", ErrKeyring, i, e.Algorithm)
		case !validKeyFileName(e.File) || files[e.File]:
			return rf, fmt.Errorf("%w: keys[%d].file %q must be a unique plain file name", ErrKeyring, i, e.File)
		case e.Created.IsZero():
			return rf, fmt.Errorf("%w: keys[%d].created is missing", ErrKeyring, i)
		}
		if e.Kind == KindJWT {
			if _, err := ParseAlgorithm(e.Algorithm); err != nil || e.Algorithm == "" {
				return rf, fmt.Errorf("%w: keys[%d].alg %q, want one of %s, %s, %s, %s", ErrKeyring, i, e.Algorithm, AlgES256, AlgES384, AlgRS256, AlgEdDSA)
			}
		}
		ids[e.ID], files[e.File] = true, true
	}
	return rf, nil
}

func validKeyFileName(name string) bool {
	if name == "" || len(name) > 128 || name == KeyringFileName || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// readRing reads and parses the keyring file. A missing file yields an
// empty keyring, a nil raw and an error wrapping fs.ErrNotExist.
func (k *Keyring) readRing() (keyringFile, []byte, error) {
	empty := keyringFile{Version: keyringVersion}
	raw, err := readPrivateFile(filepath.Join(k.dir, KeyringFileName))
	if err != nil {
		return empty, nil, err
	}
	rf, err := parseKeyring(raw)
	if err != nil {
		return empty, nil, fmt.Errorf("%s: %w", filepath.Join(k.dir, KeyringFileName), err)
	}
	return rf, raw, nil
}

func (k *Keyring) writeRing(rf keyringFile) error {
	raw, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return fmt.Errorf("signer: encode keyring: %w", err)
	}
	return writeFileAtomic(k.dir, KeyringFileName, append(raw, '\n'))
}

// readPrivateFile reads a file that must not be accessible to group or others.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyring, path)
	}
	if p := st.Mode().Perm(); p&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, want 0600", ErrKeyring, path, p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("signer: read %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrKeyring, path, maxKeyFileSize)
	}
	return b, nil
}

// writeFileAtomic writes dir/name with mode 0600 through a synced temporary
// file and a rename, so readers see the old or the new content, never a mix.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("signer: write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("signer: write %s: %w", name, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("signer: write %s: %w", name, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("signer: write %s: %w", name, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("signer: write %s: %w", name, err)
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("signer: write %s: %w", name, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// generate makes a new key of kind, writes its file and returns its entry;
// the caller appends it to rf and writes the keyring.
func (k *Keyring) generate(kind KeyKind, rf keyringFile, now, activateAt time.Time) (keyEntry, error) {
	e := keyEntry{Kind: kind, Created: now.UTC().Round(0), ActivateAt: activateAt.UTC().Round(0)}
	prefix := "e"
	if kind == KindJWT {
		prefix = "j"
	}
	for {
		var r [5]byte
		if _, err := rand.Read(r[:]); err != nil {
			return e, fmt.Errorf("signer: key id: %w", err)
		}
		e.ID = prefix + e.Created.Format("20060102") + "-" + idEncoding.EncodeToString(r[:])
		if !slices.ContainsFunc(rf.Keys, func(x keyEntry) bool { return x.ID == e.ID }) &&
			!slices.ContainsFunc(append(slices.Clone(k.edgeFs), k.jwtFs...), func(f KeyFile) bool { return f.ID == e.ID }) {
			break
		}
	}
	var data []byte
	switch kind {
	case KindEdge:
		secret, err := newEdgeSecret()
		if err != nil {
			return e, err
		}
		data, e.File = encodeEdgeSecret(secret), e.ID+".edge.hex"
	case KindJWT:
		_, pemBytes, err := newJWTKey(k.alg)
		if err != nil {
			return e, err
		}
		data, e.File, e.Algorithm = pemBytes, e.ID+".jwt.pem", k.alg.String()
	}
	if err := writeFileAtomic(k.dir, e.File, data); err != nil {
		return e, err
	}
	return e, nil
}

// keyMeta is the lifecycle of one loaded key.
type keyMeta struct {
	id         string
	created    time.Time
	activateAt time.Time
	retireAt   time.Time
	retired    bool
	static     bool
	order      int // tie-breaker, lower is preferred
	index      int // position when loaded: keyring entries in file order, then files
}

// usable reports whether verifiers accept the key at now: until its
// retire_at if one is set (whatever the retired flag says), otherwise
// unless it is flagged retired.
func (m *keyMeta) usable(now time.Time) bool {
	if !m.retireAt.IsZero() {
		return now.Before(m.retireAt)
	}
	return !m.retired
}

// active reports whether the key may sign at now.
func (m *keyMeta) active(now time.Time) bool {
	return m.usable(now) && !m.activateAt.After(now)
}

func (m *keyMeta) state(secret []byte) KeyState {
	return KeyState{
		ID: m.id, Secret: bytes.Clone(secret), Created: m.created, ActivateAt: m.activateAt,
		RetireAt: m.retireAt, Retired: m.retired || !m.retireAt.IsZero(),
	}
}

// preferred orders keys newest first: the signing key is the first active one.
func preferred(a, b *keyMeta) int {
	if c := b.activateAt.Compare(a.activateAt); c != 0 {
		return c
	}
	if c := b.created.Compare(a.created); c != 0 {
		return c
	}
	return a.order - b.order
}

type edgeKey struct {
	keyMeta
	key edgetoken.Key // Secret is nil for a retired key whose file is gone
}

type jwtKey struct {
	keyMeta
	alg  jwa.SignatureAlgorithm
	priv jwk.Key
	pub  jwk.Key
}

// keyset is an immutable snapshot of every key, each kind sorted by preference.
type keyset struct {
	gen  uint64
	edge []*edgeKey
	jwt  []*jwtKey
	jwks atomic.Pointer[jwksDoc]
}

func (ks *keyset) edgeSigner(now time.Time) *edgeKey {
	for _, k := range ks.edge {
		if k.active(now) {
			return k
		}
	}
	return nil
}

func (ks *keyset) jwtSigner(now time.Time) *jwtKey {
	for _, k := range ks.jwt {
		if k.active(now) {
			return k
		}
	}
	return nil
}

// rawFile is one key file read during a reload.
type rawFile struct {
	meta keyMeta
	kind KeyKind
	alg  string
	data []byte // nil when a retired key's file is missing
	path string
}

// Reload re-reads the keyring and the configured key files and, if any of
// them changed, swaps in the new key set. On error the current keys stay in
// use. It is safe to call at any time; Watch calls it periodically.
func (k *Keyring) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, err := k.reloadLocked()
	return err
}

// reloadLocked reports whether a new key set was installed.
func (k *Keyring) reloadLocked() (bool, error) {
	now := k.now()
	var files []rawFile
	sum := sha256.New()
	if k.dir != "" {
		rf, raw, err := k.readRing()
		if err != nil {
			return false, err
		}
		sum.Write(raw)
		for i, e := range rf.Keys {
			m := keyMeta{id: e.ID, created: e.Created, activateAt: e.ActivateAt, retireAt: e.RetireAt, retired: e.Retired, order: -i}
			path := filepath.Join(k.dir, e.File)
			data, err := readPrivateFile(path)
			if err != nil {
				if !(errors.Is(err, fs.ErrNotExist) && !m.usable(now)) {
					return false, fmt.Errorf("signer: key %q: %w", e.ID, err)
				}
				data = nil
			}
			files = append(files, rawFile{meta: m, kind: e.Kind, alg: e.Algorithm, data: data, path: path})
		}
	}
	for _, kind := range []KeyKind{KindEdge, KindJWT} {
		for i, f := range k.filesOf(kind) {
			data, err := os.ReadFile(f.Path)
			if err != nil {
				return false, fmt.Errorf("signer: key %q: %w", f.ID, err)
			}
			files = append(files, rawFile{meta: keyMeta{id: f.ID, static: true, order: i}, kind: kind, data: data, path: f.Path})
		}
	}
	for i := range files {
		files[i].meta.index = i
	}
	for _, f := range files {
		fmt.Fprintf(sum, "\x00%s\x00%d\x00", f.path, len(f.data))
		sum.Write(f.data)
	}
	var digest [sha256.Size]byte
	sum.Sum(digest[:0])
	if k.cur.Load() != nil && digest == k.lastSum {
		return false, nil
	}
	ks, err := buildKeyset(files, k.gen+1)
	if err != nil {
		return false, err
	}
	k.gen++
	k.lastSum = digest
	k.cur.Store(ks)
	return true, nil
}

func buildKeyset(files []rawFile, gen uint64) (*keyset, error) {
	ks := &keyset{gen: gen}
	for _, f := range files {
		switch f.kind {
		case KindEdge:
			ek := &edgeKey{keyMeta: f.meta, key: edgetoken.Key{ID: f.meta.id}}
			if f.data != nil {
				secret, err := ParseEdgeSecret(f.data)
				if err != nil {
					return nil, fmt.Errorf("signer: key %q (%s): %w", f.meta.id, f.path, err)
				}
				ek.key.Secret = secret
			}
			ks.edge = append(ks.edge, ek)
		case KindJWT:
			jk := &jwtKey{keyMeta: f.meta}
			if f.data != nil {
				key, alg, err := ParseJWTKey(f.data)
				if err != nil {
					return nil, fmt.Errorf("signer: key %q (%s): %w", f.meta.id, f.path, err)
				}
				if f.alg != "" && f.alg != alg.String() {
					return nil, fmt.Errorf("%w: key %q: alg %q does not match its %s key", ErrKeyring, f.meta.id, f.alg, alg)
				}
				jk.alg = alg
				if jk.priv, jk.pub, err = jwkPair(f.meta.id, alg, key); err != nil {
					return nil, err
				}
			}
			ks.jwt = append(ks.jwt, jk)
		}
	}
	slices.SortStableFunc(ks.edge, func(a, b *edgeKey) int { return preferred(&a.keyMeta, &b.keyMeta) })
	slices.SortStableFunc(ks.jwt, func(a, b *jwtKey) int { return preferred(&a.keyMeta, &b.keyMeta) })
	return ks, nil
}

// Watch calls Reload every interval (DefaultWatchInterval when <= 0) until
// ctx is done, logging failures; the last good keys stay in use meanwhile.
func (k *Keyring) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.Reload(); err != nil {
				k.log.Error("signer: keyring reload failed; keeping the current keys", "err", err)
			}
		}
	}
}

func (k *Keyring) snapshot() *keyset { return k.cur.Load() }

// EdgeSecret returns the secret of edge key kid if verifiers accept it now
// (active or pending, not retired). It fits edgetoken.Verifier.Keys.
func (k *Keyring) EdgeSecret(kid string) ([]byte, bool) {
	now := k.now()
	for _, e := range k.snapshot().edge {
		if e.id == kid && e.usable(now) && e.key.Secret != nil {
			return e.key.Secret, true
		}
	}
	return nil, false
}

// EdgeVerifyKeys returns every edge key verifiers must accept now, pending
// ones included, newest first: what the BIG-IP keys data group must hold.
func (k *Keyring) EdgeVerifyKeys() []edgetoken.Key {
	now := k.now()
	var out []edgetoken.Key
	for _, e := range k.snapshot().edge {
		if e.usable(now) && e.key.Secret != nil {
			out = append(out, edgetoken.Key{ID: e.id, Secret: bytes.Clone(e.key.Secret)})
		}
	}
	return out
}

// EdgeStore returns the store of edge HMAC keys for the rotation code.
func (k *Keyring) EdgeStore() *FileKeyStore { return &FileKeyStore{ring: k, kind: KindEdge} }

// JWTStore returns the store of JWT signing keys; its KeyStates have no Secret.
func (k *Keyring) JWTStore() *FileKeyStore { return &FileKeyStore{ring: k, kind: KindJWT} }

// FileKeyStore is one kind of key in a Keyring, seen through KeyStore.
// Add and Retire rewrite the keyring file atomically and reload at once.
type FileKeyStore struct {
	ring *Keyring
	kind KeyKind
}

// List returns every key of the store's kind in the current key set,
// configured files first, then keyring keys oldest first.
func (s *FileKeyStore) List() ([]KeyState, error) {
	ks := s.ring.snapshot()
	var metas []*keyMeta
	secrets := map[string][]byte{}
	if s.kind == KindEdge {
		for _, e := range ks.edge {
			metas = append(metas, &e.keyMeta)
			secrets[e.id] = e.key.Secret
		}
	} else {
		for _, j := range ks.jwt {
			metas = append(metas, &j.keyMeta)
		}
	}
	slices.SortStableFunc(metas, func(a, b *keyMeta) int {
		if a.static != b.static {
			if a.static {
				return -1
			}
			return 1
		}
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return a.index - b.index
	})
	out := make([]KeyState, 0, len(metas))
	for _, m := range metas {
		out = append(out, m.state(secrets[m.id]))
	}
	return out, nil
}

// Add generates a key of the store's kind, active from activateAt (zero
// means now). It fails with ErrNoKeyring when no Dir is configured.
func (s *FileKeyStore) Add(activateAt time.Time) (KeyState, error) {
	k := s.ring
	if k.dir == "" {
		return KeyState{}, ErrNoKeyring
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	rf, _, err := k.readRing()
	if err != nil {
		return KeyState{}, err
	}
	now := k.now()
	if activateAt.IsZero() {
		activateAt = now
	}
	e, err := k.generate(s.kind, rf, now, activateAt)
	if err != nil {
		return KeyState{}, err
	}
	rf.Keys = append(rf.Keys, e)
	if err := k.writeRing(rf); err != nil {
		return KeyState{}, err
	}
	if _, err := k.reloadLocked(); err != nil {
		return KeyState{}, fmt.Errorf("signer: key %q added but reload failed: %w", e.ID, err)
	}
	st := KeyState{ID: e.ID, Created: e.Created, ActivateAt: e.ActivateAt}
	if s.kind == KindEdge {
		for _, x := range k.snapshot().edge {
			if x.id == e.ID {
				st.Secret = bytes.Clone(x.key.Secret)
			}
		}
	}
	return st, nil
}

// Retire marks key id retired as of at (zero means now): it keeps signing
// (unless a newer key is active) and verifying until at, then neither. An
// earlier retirement already recorded is kept: a retirement can be brought
// forward but never postponed, so a retired key cannot come back. Keys from
// configured files cannot be retired here (ErrStaticKey); unknown ids give
// ErrUnknownKey.
func (s *FileKeyStore) Retire(id string, at time.Time) error {
	k := s.ring
	for _, f := range k.filesOf(s.kind) {
		if f.ID == id {
			return fmt.Errorf("%w: %q", ErrStaticKey, id)
		}
	}
	if k.dir == "" {
		return fmt.Errorf("%w: %q", ErrUnknownKey, id)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	rf, _, err := k.readRing()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(rf.Keys, func(e keyEntry) bool { return e.ID == id && e.Kind == s.kind })
	if i < 0 {
		return fmt.Errorf("%w: %s key %q", ErrUnknownKey, s.kind, id)
	}
	now := k.now()
	if at.IsZero() {
		at = now
	}
	e := &rf.Keys[i]
	at = at.UTC().Round(0)
	switch {
	case e.Retired && e.RetireAt.IsZero():
		return nil // retired outright already
	case !e.RetireAt.IsZero() && !at.Before(e.RetireAt):
		at = e.RetireAt
	}
	e.RetireAt, e.Retired = at, true
	if err := k.writeRing(rf); err != nil {
		return err
	}
	if _, err := k.reloadLocked(); err != nil {
		return fmt.Errorf("signer: key %q retired but reload failed: %w", id, err)
	}
	return nil
}
