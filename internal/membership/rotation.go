package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
)

// ErrNoEncryption is returned by [Cluster.SetSecrets] when the member was
// started without a Secret: memberlist cannot turn encryption on live.
var ErrNoEncryption = errors.New("membership: encryption is off; restart with a Secret to turn it on")

// KeyState is what a member publishes about its gossip keys, so that the
// others can tell when a key rotation may move on. It holds fingerprints
// only (see [Fingerprint]), never keys.
type KeyState struct {
	// Primary is the fingerprint of the key the member encrypts with.
	Primary string `json:"p"`
	// Accepted are the fingerprints of every key it decrypts with, the
	// primary included, sorted.
	Accepted []string `json:"a"`
}

// Equal reports whether two states are the same.
func (s KeyState) Equal(o KeyState) bool {
	return s.Primary == o.Primary && slices.Equal(s.Accepted, o.Accepted)
}

// Fingerprint names a derived key without revealing it: the first 8 bytes
// of its SHA-256, in hex.
func Fingerprint(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:8])
}

// SetSecrets installs the keys a changed Secret asks for: the key derived
// from secret is to become the primary, the ones derived from previous stay
// accepted. It only adds keys; [Cluster.Rotate] switches the primary and
// drops old keys once every live member is ready for it, so that a rotation
// never leaves two members unable to read each other. It reports whether the
// wanted keys changed.
func (c *Cluster) SetSecrets(secret []byte, previous [][]byte) (bool, error) {
	if c.keyring == nil {
		return false, ErrNoEncryption
	}
	want, err := DeriveKey(secret)
	if err != nil {
		return false, fmt.Errorf("membership: secret: %w", err)
	}
	var keep [][]byte
	for i, s := range previous {
		k, err := DeriveKey(s)
		if err != nil {
			return false, fmt.Errorf("membership: previous secret %d: %w", i, err)
		}
		keep = append(keep, k)
	}
	c.kmu.Lock()
	defer c.kmu.Unlock()
	changed := !bytes.Equal(want, c.want) || !slices.EqualFunc(keep, c.keep, bytes.Equal)
	c.want, c.keep = want, keep
	for _, k := range append([][]byte{want}, keep...) {
		if err := c.keyring.AddKey(k); err != nil {
			return changed, fmt.Errorf("membership: install key %s: %w", Fingerprint(k), err)
		}
	}
	if changed {
		c.log.Info("memberlist key installed; the rotation waits for every member to accept it",
			slog.String("wanted", Fingerprint(want)), slog.String("primary", Fingerprint(c.keyring.GetPrimaryKey())))
	}
	return changed, nil
}

// KeyState returns this member's key state; the zero state when encryption
// is off.
func (c *Cluster) KeyState() KeyState {
	if c.keyring == nil {
		return KeyState{}
	}
	return stateOf(c.keyring.GetPrimaryKey(), c.keyring.GetKeys())
}

func stateOf(primary []byte, keys [][]byte) KeyState {
	s := KeyState{Primary: Fingerprint(primary)}
	for _, k := range keys {
		s.Accepted = append(s.Accepted, Fingerprint(k))
	}
	slices.Sort(s.Accepted)
	return s
}

// Rotate moves a key rotation on, given the key states that the other live
// members publish (nil for a member whose state is unknown, such as an
// older speaker). It switches the primary to the wanted key once every
// member accepts it, and drops a key that the Secret no longer lists once
// no member encrypts with it. It reports whether this member's key state
// changed, in which case the caller publishes it again.
func (c *Cluster) Rotate(peers map[string]*KeyState) (bool, error) {
	if c.keyring == nil {
		return false, nil
	}
	c.kmu.Lock()
	defer c.kmu.Unlock()
	if c.want == nil {
		return false, nil
	}
	before := c.KeyState()
	byFP := map[string][]byte{}
	var installed []string
	for _, k := range c.keyring.GetKeys() {
		fp := Fingerprint(k)
		byFP[fp] = k
		installed = append(installed, fp)
	}
	var keep []string
	for _, k := range c.keep {
		keep = append(keep, Fingerprint(k))
	}
	states := make([]*KeyState, 0, len(peers))
	for _, name := range sortedKeys(peers) {
		states = append(states, peers[name])
	}
	plan := planRotation(before.Primary, installed, Fingerprint(c.want), keep, states)
	if plan.use != "" {
		if err := c.keyring.UseKey(byFP[plan.use]); err != nil {
			return false, fmt.Errorf("membership: use key %s: %w", plan.use, err)
		}
		c.rotations.Add(1)
		c.log.Info("memberlist key rotated: every member accepts the new key", slog.String("primary", plan.use), slog.String("was", before.Primary))
	}
	for _, fp := range plan.remove {
		if err := c.keyring.RemoveKey(byFP[fp]); err != nil {
			return false, fmt.Errorf("membership: remove key %s: %w", fp, err)
		}
		c.log.Info("memberlist key removed: no member encrypts with it any more", slog.String("key", fp))
	}
	return !c.KeyState().Equal(before), nil
}

// rotationPlan is what [planRotation] decides: the key to make primary (""
// for none) and the keys to drop.
type rotationPlan struct {
	use    string
	remove []string
}

// planRotation is the rotation rule, on fingerprints. A member encrypts
// with a new key only once every live member accepts it (otherwise a member
// that is slow to see the Secret could read nobody, and be declared dead by
// the others while it declares them dead: two clusters, two owners per IP).
// It drops a key only once no member encrypts with it. An unknown peer
// state (nil) holds both steps.
func planRotation(primary string, installed []string, want string, keep []string, peers []*KeyState) rotationPlan {
	var p rotationPlan
	known := !slices.Contains(peers, nil)
	if primary != want && slices.Contains(installed, want) && known {
		all := true
		for _, s := range peers {
			if !slices.Contains(s.Accepted, want) {
				all = false
				break
			}
		}
		if all {
			p.use = want
			primary = want
		}
	}
	if !known {
		return p
	}
	for _, fp := range installed {
		if fp == primary || fp == want || slices.Contains(keep, fp) {
			continue
		}
		used := false
		for _, s := range peers {
			if s.Primary == fp {
				used = true
				break
			}
		}
		if !used {
			p.remove = append(p.remove, fp)
		}
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
