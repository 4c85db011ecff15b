package icontrol

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/backgate/backgate/bigip"
	"github.com/backgate/backgate/proxy/edgetoken"
)

// KeyState is one edge-token HMAC key as a key store keeps it.
//
// A key is published (in the BIG-IP keys data group) from when it is added
// until its retirement time has passed; it signs tokens from ActivateAt
// until a newer key activates. Retired means its retirement is decided and
// RetireAt is when no token signed with it can still be valid.
type KeyState struct {
	ID         string
	Secret     []byte
	Created    time.Time
	ActivateAt time.Time
	RetireAt   time.Time // meaningful when Retired
	Retired    bool
}

// String shows the key without its secret, so that logging a KeyState with
// %v or %+v is safe.
func (k KeyState) String() string {
	s := fmt.Sprintf("key %s (activates %s", k.ID, k.ActivateAt.UTC().Format(time.RFC3339))
	if k.Retired {
		s += ", retires " + k.RetireAt.UTC().Format(time.RFC3339)
	}
	return s + ", secret redacted)"
}

// GoString is String, for %#v.
func (k KeyState) GoString() string { return k.String() }

// Published reports whether k belongs in the BIG-IP keys data group at now.
func (k KeyState) Published(now time.Time) bool {
	return !k.Retired || now.Before(k.RetireAt)
}

// EdgeKeyStore keeps the edge-token keys (the proxy signs with them, BIG-IP
// verifies with them). Implementations must be safe for use by one rotation
// at a time; Rotate does not call them concurrently.
type EdgeKeyStore interface {
	// List returns every key, retired ones included.
	List() ([]KeyState, error)
	// Add creates a new random key that activates at activateAt.
	Add(activateAt time.Time) (KeyState, error)
	// Retire marks key id retired as of at (Retired = true, RetireAt = at).
	Retire(id string, at time.Time) error
}

// RotateOptions are the timings of a key rotation.
type RotateOptions struct {
	// PropagationDelay is how long after Rotate the new key starts signing:
	// time for every proxy replica to load it from the store (BIG-IP has it
	// once Rotate returns). Required, > 0.
	PropagationDelay time.Duration
	// MaxTokenLifetime is the longest validity of an edge token. Required,
	// > 0.
	MaxTokenLifetime time.Duration
	// Skew is the clock difference tolerated between proxies and BIG-IP;
	// >= 0.
	Skew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate names every bad field.
func (o RotateOptions) Validate() error {
	var errs []error
	if o.PropagationDelay <= 0 {
		errs = append(errs, fmt.Errorf("%w: RotateOptions.PropagationDelay: %s, must be > 0", ErrInvalid, o.PropagationDelay))
	}
	if o.MaxTokenLifetime <= 0 {
		errs = append(errs, fmt.Errorf("%w: RotateOptions.MaxTokenLifetime: %s, must be > 0", ErrInvalid, o.MaxTokenLifetime))
	}
	if o.Skew < 0 {
		errs = append(errs, fmt.Errorf("%w: RotateOptions.Skew: %s, must be >= 0", ErrInvalid, o.Skew))
	}
	return errors.Join(errs...)
}

func (o RotateOptions) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Errors of key rotation.
var (
	// ErrKeyPending: pushing a new key to BIG-IP failed and so did retiring
	// it in the store; it will start signing at its activation time unless
	// retired by hand before then.
	ErrKeyPending = errors.New("icontrol: new edge key is pending but not on BIG-IP")
	// ErrNoKeys: the keys data group would be left empty.
	ErrNoKeys = errors.New("icontrol: no edge key left to publish")
)

// Retirement is a key scheduled to leave BIG-IP.
type Retirement struct {
	ID string
	At time.Time
}

// RotateResult says what a rotation did. It holds no secret.
type RotateResult struct {
	NewKeyID   string       // "" for FinishRotation
	ActivateAt time.Time    // when the new key starts signing
	Retiring   []Retirement // keys whose retirement this call scheduled
	Published  []string     // key ids now in the BIG-IP keys data group
	Plan       Plan         // what changed on BIG-IP (record names only)
}

// SigningKey is the key proxies sign with at now: the published key with
// the latest ActivateAt not after now.
func SigningKey(keys []KeyState, now time.Time) (KeyState, bool) {
	var best KeyState
	found := false
	for _, k := range keys {
		if !k.Published(now) || k.ActivateAt.After(now) {
			continue
		}
		if !found || k.ActivateAt.After(best.ActivateAt) || (k.ActivateAt.Equal(best.ActivateAt) && k.ID > best.ID) {
			best, found = k, true
		}
	}
	return best, found
}

// KeysDataGroup is the bigip.KeysDataGroup content for keys at now: every
// published key, id -> lower-case hex secret. A key that edgetoken would
// refuse is an error wrapping ErrInvalid.
func KeysDataGroup(keys []KeyState, now time.Time) (bigip.DataGroup, error) {
	g := bigip.DataGroup{Name: bigip.KeysDataGroup, Type: "string"}
	seen := map[string]bool{}
	for _, k := range keys {
		if !k.Published(now) {
			continue
		}
		if err := (edgetoken.Key{ID: k.ID, Secret: k.Secret}).Validate(); err != nil {
			return g, fmt.Errorf("%w: key store: %w", ErrInvalid, err)
		}
		if seen[k.ID] {
			return g, fmt.Errorf("%w: key store: key id %q appears twice", ErrInvalid, k.ID)
		}
		seen[k.ID] = true
		g.Records = append(g.Records, bigip.Record{Name: k.ID, Data: hex.EncodeToString(k.Secret)})
	}
	sort.Slice(g.Records, func(i, j int) bool { return g.Records[i].Name < g.Records[j].Name })
	return g, nil
}

// pushKeys makes the device's keys data group hold exactly the published
// keys; nothing else is touched.
func (c *Client) pushKeys(ctx context.Context, keys []KeyState, now time.Time) (Plan, []string, error) {
	g, err := KeysDataGroup(keys, now)
	if err != nil {
		return Plan{Partition: c.partition}, nil, err
	}
	if len(g.Records) == 0 {
		return Plan{Partition: c.partition}, nil, ErrNoKeys
	}
	ids := make([]string, len(g.Records))
	for i, r := range g.Records {
		ids[i] = r.Name
	}
	p, err := c.apply(ctx, bigip.Desired{Partition: c.partition, DataGroups: []bigip.DataGroup{g}}, scope{})
	return p, ids, err
}

// Rotate starts a key rotation:
//  1. adds a new key to store, pending until now + PropagationDelay;
//  2. publishes all published keys, old and new, in the BIG-IP keys data
//     group (dropping keys whose retirement time has passed). If that
//     fails the new key is retired at once in the store so it never
//     signs; if retiring fails too the error wraps ErrKeyPending;
//  3. schedules every key not yet retired for retirement at the new key's
//     activation + MaxTokenLifetime + Skew, when no token it signed can
//     still be valid.
//
// FinishRotation (or the next Rotate) later removes retired keys from
// BIG-IP.
func Rotate(ctx context.Context, c *Client, store EdgeKeyStore, o RotateOptions) (RotateResult, error) {
	if err := o.Validate(); err != nil {
		return RotateResult{}, err
	}
	old, err := store.List()
	if err != nil {
		return RotateResult{}, fmt.Errorf("icontrol: rotate: list keys: %w", err)
	}
	now := o.now()
	// Refuse before adding anything if the store's keys would not publish.
	if _, err := KeysDataGroup(old, now); err != nil {
		return RotateResult{}, fmt.Errorf("icontrol: rotate: %w", err)
	}
	activate := now.Add(o.PropagationDelay)
	nk, err := store.Add(activate)
	if err != nil {
		return RotateResult{}, fmt.Errorf("icontrol: rotate: add key: %w", err)
	}
	res := RotateResult{NewKeyID: nk.ID, ActivateAt: nk.ActivateAt}
	abandon := func(cause error) (RotateResult, error) {
		if rerr := store.Retire(nk.ID, now); rerr != nil {
			return res, fmt.Errorf("icontrol: rotate: %w; %w: retiring key %s failed (%v): retire it by hand before %s",
				cause, ErrKeyPending, nk.ID, rerr, nk.ActivateAt.UTC().Format(time.RFC3339))
		}
		c.log.Warn("icontrol: new edge key retired unused", "key", nk.ID, "error", cause)
		return res, fmt.Errorf("icontrol: rotate: %w; new key %s was retired and will never sign", cause, nk.ID)
	}
	if nk.ActivateAt.Before(activate) {
		return abandon(fmt.Errorf("%w: key store activates new key %s at %s, before %s", ErrInvalid, nk.ID, nk.ActivateAt, activate))
	}
	if slices.ContainsFunc(old, func(k KeyState) bool { return k.ID == nk.ID }) {
		return abandon(fmt.Errorf("%w: key store reused key id %q", ErrInvalid, nk.ID))
	}
	all := append(slices.Clone(old), nk)
	p, ids, err := c.pushKeys(ctx, all, now)
	res.Plan, res.Published = p, ids
	if err != nil {
		return abandon(fmt.Errorf("push keys to BIG-IP: %w", err))
	}
	retireAt := nk.ActivateAt.Add(o.MaxTokenLifetime).Add(o.Skew)
	for _, k := range old {
		if k.Retired {
			continue
		}
		if err := store.Retire(k.ID, retireAt); err != nil {
			return res, fmt.Errorf("icontrol: rotate: new key %s is on BIG-IP and activates at %s, but scheduling retirement of key %s failed: %w",
				nk.ID, nk.ActivateAt.UTC().Format(time.RFC3339), k.ID, err)
		}
		res.Retiring = append(res.Retiring, Retirement{ID: k.ID, At: retireAt})
	}
	c.log.Info("icontrol: edge key rotation started", "new_key", nk.ID, "activates", nk.ActivateAt, "retiring", len(res.Retiring))
	return res, nil
}

// FinishRotation removes from BIG-IP the keys whose retirement time has
// passed, and adds any published key missing there. It never leaves the
// keys data group empty (ErrNoKeys). Run it after the longest retirement
// time of the last Rotate; running it earlier changes nothing.
func FinishRotation(ctx context.Context, c *Client, store EdgeKeyStore, o RotateOptions) (RotateResult, error) {
	keys, err := store.List()
	if err != nil {
		return RotateResult{}, fmt.Errorf("icontrol: finish rotation: list keys: %w", err)
	}
	p, ids, err := c.pushKeys(ctx, keys, o.now())
	if err != nil {
		return RotateResult{Plan: p}, fmt.Errorf("icontrol: finish rotation: %w", err)
	}
	if !p.Empty() {
		c.log.Info("icontrol: edge keys updated on BIG-IP", "published", len(ids))
	}
	return RotateResult{Published: ids, Plan: p}, nil
}
