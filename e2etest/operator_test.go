package e2etest

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// TestL2Operator covers what issue 16 asks the operator to see, on one
// two-node bed: a CNI-like bridge never answers ARP under the default
// interface exclusions; a cluster whose every node carries
// node.kubernetes.io/exclude-from-external-load-balancers says so in one
// NotAnnounced event and in herald_layer2_unannounced_ips, and announces
// with --ignore-exclude-lb.
func TestL2Operator(t *testing.T) {
	b := startL2(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pods := b.podsOn("node1", "node2")
	n1 := b.node("node1")
	restart := func(extra ...string) {
		t.Helper()
		for _, n := range b.Nodes {
			if err := b.speakers[n.Name].Stop(5 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range b.Nodes {
			b.startSpeaker(ctx, n, extra...)
		}
		b.waitMembers(ctx, 2)
	}
	arp := func(ip netip.Addr) (bool, string) {
		out, err := n1.Output(ctx, "arping", "-0", "-i", "vethcni1", "-c", "3", "-w", "2", ip.String())
		return err == nil, strings.TrimSpace(string(out))
	}

	ips := b.service(ctx, testbed.ServiceSpec{Name: "web", Pods: pods}, 1)
	ip := ips[0]
	t.Run("CNIBridgeNeverAnswers", func(t *testing.T) {
		// node1 owns the IP while node2 is excluded.
		label(t, ctx, b, "node2", true)
		defer label(t, ctx, b, "node2", false)
		b.waitOwner(ctx, ip, "node1")
		// cni0 in node1, as a CNI makes it: a bridge with an address and a
		// pod's veth on it. The asker is the other end of the veth.
		for _, c := range [][]string{
			{"ip", "link", "add", "cni0", "type", "bridge"},
			{"ip", "addr", "add", "198.18.17.250/32", "dev", "cni0"},
			{"ip", "link", "add", "vethcni0", "type", "veth", "peer", "name", "vethcni1"},
			{"ip", "link", "set", "vethcni0", "master", "cni0"},
			{"ip", "link", "set", "vethcni0", "up"},
			{"ip", "link", "set", "vethcni1", "up"},
			{"ip", "link", "set", "cni0", "up"},
		} {
			if out, err := n1.Output(ctx, c...); err != nil {
				t.Fatalf("%v: %v: %s", c, err, out)
			}
		}
		defer func() { _, _ = n1.Output(context.Background(), "ip", "link", "del", "cni0") }()
		defer func() { _, _ = n1.Output(context.Background(), "ip", "link", "del", "vethcni0") }()
		time.Sleep(5 * time.Second) // two interface polls of the speaker and the announcer
		if ok, out := arp(ip); ok {
			t.Errorf("node1 answered ARP for %s on cni0 under the default exclusions: %s", ip, out)
		}
		// The same bridge answers when it is not excluded: the check above can fail.
		restart("--exclude-interfaces=veth*")
		b.waitOwner(ctx, ip, "node1")
		eventually(t, 20*time.Second, "node1 answers ARP on cni0 once cni0 is not excluded", func() (bool, string) {
			return arp(ip)
		})
		restart()
	})

	t.Run("EveryNodeExcluded", func(t *testing.T) {
		label(t, ctx, b, "node1", true)
		label(t, ctx, b, "node2", true)
		defer label(t, ctx, b, "node1", false)
		defer label(t, ctx, b, "node2", false)
		var msgs []string
		eventually(t, 30*time.Second, "a NotAnnounced event on web", func() (bool, string) {
			msgs = b.events(ctx, "default", "web", "NotAnnounced")
			return len(msgs) > 0, fmt.Sprint(msgs)
		})
		want := fmt.Sprintf("no node announces %s: every node is excluded", ip)
		if len(msgs) != 1 || !strings.HasPrefix(msgs[0], want) {
			t.Errorf("events %q, want one starting %q", msgs, want)
		}
		sum := func() (float64, string) {
			total, per := 0.0, []string{}
			for _, n := range b.Nodes {
				m, err := b.metrics(ctx, n)
				if err != nil {
					return -1, err.Error()
				}
				v := m[`herald_layer2_unannounced_ips{reason="NodeExcluded"}`]
				total += v
				per = append(per, fmt.Sprintf("%s=%v", n.Name, v))
			}
			return total, strings.Join(per, " ")
		}
		eventually(t, 20*time.Second, "herald_layer2_unannounced_ips{reason=NodeExcluded} summed over the speakers counts web's IP once", func() (bool, string) {
			v, s := sum()
			return v >= 1, s
		})
		time.Sleep(3 * time.Second)
		evs, err := b.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web,reason=NotAnnounced"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Count > 1 {
				t.Errorf("NotAnnounced recorded %d times (%s): once per reason is the rule", e.Count, e.Message)
			}
		}
		if _, err := b.ClientL2.Get(ctx, testbed.HostPort(ip, 80)); err == nil {
			t.Errorf("%s answers while every node is excluded", ip)
		}

		restart("--ignore-exclude-lb")
		r := b.get(ctx, ip, 20*time.Second)
		t.Logf("with --ignore-exclude-lb, %s answers (pod %s)", ip, r.Pod)
		eventually(t, 20*time.Second, "the gauge drops to 0", func() (bool, string) {
			v, s := sum()
			return v == 0, s
		})
	})
}

// label puts the exclusion label on a node, or takes it off.
func label(t *testing.T, ctx context.Context, b *l2Bed, node string, on bool) {
	t.Helper()
	v := `null`
	if on {
		v = `""`
	}
	patch := `{"metadata":{"labels":{"node.kubernetes.io/exclude-from-external-load-balancers":` + v + `}}}`
	if _, err := b.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
