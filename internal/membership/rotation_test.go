package membership

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestPlanRotation(t *testing.T) {
	st := func(primary string, accepted ...string) *KeyState {
		return &KeyState{Primary: primary, Accepted: accepted}
	}
	tests := []struct {
		desc       string
		primary    string
		installed  []string
		want       string
		keep       []string
		peers      []*KeyState
		wantUse    string
		wantRemove []string
	}{
		{desc: "steady", primary: "old", installed: []string{"old"}, want: "old",
			peers: []*KeyState{st("old", "old")}},
		{desc: "a peer lacks the new key: keep encrypting with the old one", primary: "old", installed: []string{"new", "old"}, want: "new",
			peers: []*KeyState{st("old", "new", "old"), st("old", "old")}},
		{desc: "every peer accepts the new key: switch, keep the old one while peers use it", primary: "old", installed: []string{"new", "old"}, want: "new",
			peers: []*KeyState{st("old", "new", "old"), st("old", "new", "old")}, wantUse: "new"},
		{desc: "every peer encrypts with the new key: drop the old one", primary: "new", installed: []string{"new", "old"}, want: "new",
			peers: []*KeyState{st("new", "new", "old"), st("new", "new")}, wantRemove: []string{"old"}},
		{desc: "alone: switch and drop at once", primary: "old", installed: []string{"new", "old"}, want: "new",
			wantUse: "new", wantRemove: []string{"old"}},
		{desc: "an unknown peer holds both steps", primary: "old", installed: []string{"new", "old"}, want: "new",
			peers: []*KeyState{st("new", "new"), nil}},
		{desc: "a previous key the Secret lists is kept", primary: "new", installed: []string{"new", "old"}, want: "new", keep: []string{"old"},
			peers: []*KeyState{st("new", "new", "old")}},
		{desc: "the wanted key is not installed", primary: "old", installed: []string{"old"}, want: "new",
			peers: []*KeyState{st("old", "new", "old")}},
		{desc: "a second rotation before the first ended", primary: "k1", installed: []string{"k1", "k2", "k3"}, want: "k3",
			peers: []*KeyState{st("k2", "k1", "k2", "k3")}, wantUse: "k3", wantRemove: []string{"k1"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := planRotation(tc.primary, tc.installed, tc.want, tc.keep, tc.peers)
			if p.use != tc.wantUse || !slices.Equal(p.remove, tc.wantRemove) {
				t.Fatalf("plan = use %q remove %v, want use %q remove %v", p.use, p.remove, tc.wantUse, tc.wantRemove)
			}
		})
	}
}

// TestRotationLive rotates the key of three live members, one of which
// sees the new Secret late, and checks that they never stop seeing each
// other.
func TestRotationLive(t *testing.T) {
	cs, ws := threeMembers(t)
	newSecret := []byte("rotated-secret-0123456789-abcdefgh")
	states := func() map[string]*KeyState {
		m := map[string]*KeyState{}
		for _, c := range cs {
			s := c.KeyState()
			m[c.name] = &s
		}
		return m
	}
	peersOf := func(c *Cluster) map[string]*KeyState {
		m := states()
		delete(m, c.name)
		return m
	}
	rotateAll := func() {
		for _, c := range cs {
			if _, err := c.Rotate(peersOf(c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// a and b see the new Secret; c does not yet.
	for _, c := range cs[:2] {
		if _, err := c.SetSecrets(newSecret, nil); err != nil {
			t.Fatal(err)
		}
	}
	rotateAll()
	old := Fingerprint(mustKey(t, testSecret))
	for _, c := range cs {
		if got := c.KeyState().Primary; got != old {
			t.Fatalf("%s switched to %s before c accepted the new key", c.name, got)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := cs[2].SetSecrets(newSecret, nil); err != nil {
		t.Fatal(err)
	}
	rotateAll() // every member accepts: all switch (a, b) or c switches, in turn
	// Speakers drop the old key only once the others publish the new one in
	// their metadata, after their packets under the old key are delivered;
	// here the packets in flight get as long.
	time.Sleep(200 * time.Millisecond)
	rotateAll() // every member encrypts with the new key: the old one goes
	fresh := Fingerprint(mustKey(t, newSecret))
	for _, c := range cs {
		if s := c.KeyState(); s.Primary != fresh || !slices.Equal(s.Accepted, []string{fresh}) {
			t.Fatalf("%s key state %+v, want only %s", c.name, s, fresh)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for i, c := range cs {
		if got := names(c.Members()); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("%s sees %v after the rotation", c.name, got)
		}
		ws[i].mu.Lock()
		for _, ev := range ws[i].events {
			if ev.Type == EventLeave {
				t.Errorf("%s saw %s leave during the rotation", c.name, ev.Member.Name)
			}
		}
		ws[i].mu.Unlock()
		if n := c.KeyMismatches(); n != 0 {
			t.Errorf("%s counted %d key mismatches", c.name, n)
		}
	}
	// A member started with only the new secret joins them.
	d, w := newMember(t, "d", newSecret, nil)
	if _, err := d.Join([]string{cs[0].LocalAddr().String()}); err != nil {
		t.Fatalf("a member with the new key cannot join: %v", err)
	}
	w.waitFor(t, EventJoin, "a", 5*time.Second)
}

func mustKey(t *testing.T, secret []byte) []byte {
	t.Helper()
	k, err := DeriveKey(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSetSecretsWithoutEncryption(t *testing.T) {
	c, _ := newMember(t, "a", nil, nil)
	if _, err := c.SetSecrets(testSecret, nil); !errors.Is(err, ErrNoEncryption) {
		t.Fatalf("err = %v, want ErrNoEncryption", err)
	}
}

func TestStartWithPreviousSecret(t *testing.T) {
	newSecret := []byte("rotated-secret-0123456789-abcdefgh")
	c, _ := newMember(t, "a", newSecret, func(cfg *Config) { cfg.PreviousSecrets = [][]byte{testSecret} })
	s := c.KeyState()
	if old := Fingerprint(mustKey(t, testSecret)); s.Primary != old || len(s.Accepted) != 2 {
		t.Fatalf("key state %+v: want the previous key %s as primary, both accepted", s, old)
	}
}
