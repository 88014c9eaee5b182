package e2etest

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// TestL2Operator covers what issue 16 asks the operator to see, on one
// two-node bed: the ServiceAnnouncement objects follow a failover and a
// Service deletion; preferredNodeSelectors win and still fail over; a CNI-like bridge never answers ARP under the default
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

	plugin, err := b.HeraldBinary(ctx, "kubectl-herald")
	if err != nil {
		t.Fatal(err)
	}
	why := func(svc string) (int, string) {
		cmd := exec.CommandContext(ctx, plugin, "why", svc, "--kubeconfig", b.AdminKubeconfig)
		out, err := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out) + fmt.Sprint(err)
	}
	ips := b.service(ctx, testbed.ServiceSpec{Name: "web", Pods: pods}, 1)
	if code, out := why("web"); code != 0 {
		t.Errorf("why web on a healthy Service: exit %d\n%s", code, out)
	}
	ip := ips[0]
	t.Run("AnnouncementsFollow", func(t *testing.T) { announcementsFollow(t, ctx, b, ip) })
	t.Run("DeadOwnerObjectGoesWithService", func(t *testing.T) { deadOwnerObjectGoes(t, ctx, b) })
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

	t.Run("WhyNamesTheBrokenLink", func(t *testing.T) { whyBroken(t, ctx, b, why) })

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
			return sumMetric(ctx, b.Nodes, b.metrics, `herald_layer2_unannounced_ips{reason="NodeExcluded"}`)
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
		for _, n := range b.Nodes {
			if m, err := b.metrics(ctx, n); err != nil || m[`herald_layer2_announced_ips{protocol="arp"}`] != 0 {
				t.Errorf("%s announces while every node is excluded: %v %v", n.Name, m[`herald_layer2_announced_ips{protocol="arp"}`], err)
			}
		}
		// kubectl herald why names the broken link.
		if code, out := why("web"); code != 1 || !strings.Contains(out, "Broken link: eligibility") || !strings.Contains(out, "exclude-from-external-load-balancers") {
			t.Errorf("why web: exit %d, want 1 and the eligibility link:\n%s", code, out)
		} else {
			t.Logf("kubectl herald why web:\n%s", out)
		}

		restart("--ignore-exclude-lb")
		r := b.get(ctx, ip, 20*time.Second)
		t.Logf("with --ignore-exclude-lb, %s answers (pod %s)", ip, r.Pod)
		eventually(t, 20*time.Second, "the gauge drops to 0", func() (bool, string) {
			v, s := sum()
			return v == 0, s
		})
	})
	t.Run("PreferredNodes", func(t *testing.T) { preferredNodes(t, ctx, b) })
}

// whyBroken checks that kubectl herald why names the broken link when no
// pool selects a Service, when its pool is exhausted, and under ETP Local
// without endpoints.
func whyBroken(t *testing.T, ctx context.Context, b *l2Bed, why func(string) (int, string)) {
	// No pool selects the Service: it names a pool that does not exist.
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "nopool", Annotations: map[string]string{"herald.io/address-pool": "missing"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := b.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// ETP Local without endpoints: a selector-less Service without slices.
	local := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "lonely"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
	}
	if _, err := b.Client.CoreV1().Services("default").Create(ctx, local, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pool exhausted: a one-address pool, and a second Service asks it.
	if _, err := b.ApplyYAML(ctx, []byte(`
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: tiny}
spec:
  addresses: ["198.18.0.249/32"]
  autoAssign: false
`)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tiny1", "tiny2"} {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"herald.io/address-pool": "tiny"}},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}},
		}
		if _, err := b.Client.CoreV1().Services("default").Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if name == "tiny1" {
			eventually(t, 30*time.Second, "tiny1 gets the pool's only address", func() (bool, string) {
				got, err := b.Client.CoreV1().Services("default").Get(ctx, "tiny1", metav1.GetOptions{})
				return err == nil && len(got.Status.LoadBalancer.Ingress) > 0, fmt.Sprint(err)
			})
		}
	}
	for _, c := range []struct{ svc, want string }{
		{"nopool", "Broken link: allocation: no address"},
		{"tiny2", `Broken link: allocation: no address: pool "tiny" has no free IPv4 address`},
		{"lonely", "Broken link: eligibility: externalTrafficPolicy is Local and the Service has no ready endpoint"},
	} {
		var out string
		eventually(t, 30*time.Second, "why "+c.svc+" names the broken link", func() (bool, string) {
			var code int
			code, out = why(c.svc)
			return code == 1 && strings.Contains(out, c.want), out
		})
		t.Logf("kubectl herald why %s:\n%s", c.svc, out)
	}
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
