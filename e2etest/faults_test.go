package e2etest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// ownerWatch is what watchOwners records.
type ownerWatch struct {
	mu     sync.Mutex
	owners []string // distinct owners, in the order seen
	splits []string // "node: n members" for each sample below want
	stop   chan struct{}
	done   sync.WaitGroup
}

// watchOwners records, every 20 ms until end is called, which node the L2
// client's neighbour table maps ip to and, with members, every 250 ms, the
// speakers that see other than want members.
func (b *l2Bed) watchOwners(ctx context.Context, ip netip.Addr, want int, members bool) *ownerWatch {
	w := &ownerWatch{stop: make(chan struct{})}
	w.done.Go(func() {
		for {
			if o := b.neighbourOwner(ctx, ip); o != "" {
				w.mu.Lock()
				if !slices.Contains(w.owners, o) {
					w.owners = append(w.owners, o)
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	if members {
		w.done.Go(func() {
			for {
				for _, n := range b.Nodes {
					m, err := b.metrics(ctx, n)
					if err != nil {
						continue
					}
					if got := m["herald_memberlist_members"]; got != float64(want) {
						w.mu.Lock()
						w.splits = append(w.splits, fmt.Sprintf("%s %s sees %v members", time.Now().Format("15:04:05.000"), n.Name, got))
						w.mu.Unlock()
					}
				}
				select {
				case <-w.stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
			}
		})
	}
	return w
}

// end stops the watch and returns what it saw.
func (w *ownerWatch) end() (owners, splits []string) {
	close(w.stop)
	w.done.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.owners), slices.Clone(w.splits)
}

// keyStates reads every speaker's primary key fingerprint and number of
// keys from its metrics.
func (b *l2Bed) keyStates(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, n := range b.Nodes {
		m, err := b.metrics(ctx, n)
		if err != nil {
			out[n.Name] = "unreachable"
			continue
		}
		for k := range m {
			if fp, ok := strings.CutPrefix(k, `herald_memberlist_primary_key_info{fingerprint="`); ok {
				out[n.Name] = strings.TrimSuffix(fp, `"}`) + "/" + strconv.Itoa(int(m["herald_memberlist_keys"]))
			}
		}
	}
	return out
}

// waitKeys waits until every speaker reports the same primary key, other
// than not, with keys keys installed, and returns its fingerprint.
func (b *l2Bed) waitKeys(ctx context.Context, not string, keys int, within time.Duration) string {
	b.t.Helper()
	start := time.Now()
	var st map[string]string
	for time.Since(start) < within {
		st = b.keyStates(ctx)
		var fps []string
		ok := len(st) == len(b.Nodes)
		for _, v := range st {
			fp, n, _ := strings.Cut(v, "/")
			ok = ok && fp != not && n == strconv.Itoa(keys)
			fps = append(fps, fp)
		}
		slices.Sort(fps)
		if ok && len(slices.Compact(fps)) == 1 {
			return fps[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("speakers' keys after %v: %v; want one primary other than %q and %d keys each", within, st, not, keys)
	return ""
}

// TestL2KeyRotation rotates the memberlist key while an L2 Service is
// announced, with one speaker that sees the new Secret seconds after the
// others (its API connection is cut). The client's neighbour table must
// never map the IP to a second MAC, and every speaker must see all three
// members throughout.
func TestL2KeyRotation(t *testing.T) {
	b := startL2(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ip := b.service(ctx, testbed.ServiceSpec{Name: "rotate", Pods: b.podsOn("node1", "node2", "node3")}, 1)[0]
	owner := b.waitOwner(ctx, ip)
	old := b.waitKeys(ctx, "", 1, 10*time.Second)
	t.Logf("%s announced by %s; every speaker encrypts with key %s", ip, owner, old)

	// The laggard: a node that is not the owner, cut from the API server.
	var lag *testbed.Node
	for _, n := range b.Nodes {
		if n.Name != owner {
			lag = n
			break
		}
	}
	u, err := url.Parse(b.APIServerURL)
	if err != nil {
		t.Fatal(err)
	}
	// Both directions: the watch events come in on a connection that is
	// already open.
	rules := [][]string{
		{"OUTPUT", "-p", "tcp", "-d", u.Hostname(), "--dport", u.Port(), "-j", "DROP"},
		{"INPUT", "-p", "tcp", "-s", u.Hostname(), "--sport", u.Port(), "-j", "DROP"},
	}
	unblock := func() {
		for _, rule := range rules {
			if _, err := lag.Output(ctx, append([]string{"iptables", "-w", "-D"}, rule...)...); err != nil {
				t.Logf("remove the API block of %s: %v", lag.Name, err)
			}
		}
	}

	p := testbed.Probe(ctx, b.ClientL2.NS, testbed.HostPort(ip, 80), 50*time.Millisecond, time.Second)
	w := b.watchOwners(ctx, ip, 3, true)
	time.Sleep(time.Second)

	blocked := true
	for _, rule := range rules {
		if _, err := lag.Output(ctx, append([]string{"iptables", "-w", "-I"}, rule...)...); err != nil {
			unblock()
			t.Fatal(err)
		}
	}
	defer func() {
		if blocked {
			unblock()
		}
	}()
	sec, err := b.Client.CoreV1().Secrets(testbed.HeraldNamespace).Get(ctx, "herald-memberlist", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	sec.Data["previous"] = sec.Data["secretkey"]
	sec.Data["secretkey"] = fresh
	rotated := time.Now()
	if _, err := b.Client.CoreV1().Secrets(testbed.HeraldNamespace).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Secret rotated; %s is cut from the API server for 4s", lag.Name)
	time.Sleep(4 * time.Second)
	unblock()
	blocked = false
	newFP := b.waitKeys(ctx, old, 2, 60*time.Second)
	t.Logf("FIGURE every speaker encrypts with the new key %s %v after the Secret changed (one speaker saw it 4s late)",
		newFP, time.Since(rotated).Round(time.Millisecond))

	// Step 2 of the procedure: drop the previous key.
	sec, err = b.Client.CoreV1().Secrets(testbed.HeraldNamespace).Get(ctx, "herald-memberlist", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(sec.Data, "previous")
	if _, err := b.Client.CoreV1().Secrets(testbed.HeraldNamespace).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if fp := b.waitKeys(ctx, old, 1, 30*time.Second); fp != newFP {
		t.Errorf("primary key %s after dropping the previous one, want %s", fp, newFP)
	}
	time.Sleep(2 * time.Second)
	owners, splits := w.end()
	rep := p.Stop()
	t.Logf("client's neighbour entry for %s: %v; longest HTTP outage %v", ip, owners, rep.LongestOutage().Round(time.Millisecond))
	if len(owners) != 1 {
		t.Errorf("the client mapped %s to %d nodes during the rotation: %v", ip, len(owners), owners)
	}
	if len(splits) > 0 {
		t.Errorf("the memberlist split during the rotation: %q", splits)
	}

	// A speaker that starts now reads only the new key, and must join.
	w = b.watchOwners(ctx, ip, 3, false)
	if err := b.speakers[lag.Name].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	b.startSpeaker(ctx, lag)
	b.waitMembers(ctx, 3)
	if owners, _ := w.end(); len(owners) != 1 {
		t.Errorf("after the restart of %s the client mapped %s to %v", lag.Name, ip, owners)
	}
}
