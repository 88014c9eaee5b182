package e2etest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// l2Bed is a bed with Herald's controller and one speaker per node, in
// layer 2 mode.
type l2Bed struct {
	*testbed.Bed
	t          *testing.T
	speakerBin string
	ctrlBin    string
	ctrl       *testbed.Process
	speakers   map[string]*testbed.Process // node name -> running speaker
	starts     map[string]int              // node name -> speakers started
	macs       map[string]string           // node name -> eth0 MAC
	// metricsToken, for a node, makes metrics scrape that speaker over
	// TLS on its node address with this bearer token (a speaker started
	// with --metrics-secure).
	metricsToken map[string]string
}

const l2Config = `
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: l2}
spec:
  addresses: ["198.18.0.200-198.18.0.229", "2001:db8:18::200-2001:db8:18::229"]
---
apiVersion: herald.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec:
  ipAddressPools: [l2]
---
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: zoned}
spec:
  addresses: ["198.18.0.230-198.18.0.239"]
  autoAssign: false
---
apiVersion: herald.io/v1beta1
kind: L2Advertisement
metadata: {name: zoned}
spec:
  ipAddressPools: [zoned]
  nodeSelectors: [{matchLabels: {herald-test/zone: z1}}]
  interfaces: [eth0]
---
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: nowhere}
spec:
  addresses: ["198.18.0.240-198.18.0.245"]
  autoAssign: false
---
apiVersion: herald.io/v1beta1
kind: L2Advertisement
metadata: {name: nowhere}
spec:
  ipAddressPools: [nowhere]
  interfaces: [eth9]
`

// startL2 brings up a dual-stack bed with the controller and the speakers.
func startL2(t *testing.T, nodes int) *l2Bed {
	return startL2With(t, testbed.Options{Nodes: nodes, PodsPerNode: 1, DualStack: true})
}

// startL2With is startL2 on a bed with opts (a router, for example).
func startL2With(t *testing.T, opts testbed.Options) *l2Bed {
	needRoot(t)
	nodes := opts.Nodes
	bed := testbed.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := &l2Bed{Bed: bed, t: t, speakers: map[string]*testbed.Process{}, starts: map[string]int{}, macs: map[string]string{}, metricsToken: map[string]string{}}
	for _, name := range []string{"herald-memberlist", "herald-memberlist-other"} {
		secret := make([]byte, 32)
		rand.Read(secret)
		_, err := bed.Client.CoreV1().Secrets(testbed.HeraldNamespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Data:       map[string][]byte{"secretkey": secret},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bed.ApplyYAML(ctx, []byte(l2Config)); err != nil {
		t.Fatal(err)
	}
	var err error
	if b.ctrlBin, err = bed.HeraldBinary(ctx, "controller"); err != nil {
		t.Fatal(err)
	}
	b.startController(ctx)
	if b.speakerBin, err = bed.HeraldBinary(ctx, "speaker"); err != nil {
		t.Fatal(err)
	}
	for _, n := range bed.Nodes {
		out, err := n.Output(ctx, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		b.macs[n.Name] = strings.TrimSpace(string(out))
		b.startSpeaker(ctx, n)
	}
	b.waitMembers(ctx, nodes)
	return b
}

// startController starts (or restarts) the controller with its RBAC
// identity.
func (b *l2Bed) startController(ctx context.Context) {
	b.t.Helper()
	if b.ctrl != nil {
		if err := b.ctrl.Stop(5 * time.Second); err != nil {
			b.t.Fatal(err)
		}
	}
	p, err := b.StartProcess(ctx, "", fmt.Sprintf("controller-%d", b.starts["controller"]), b.ctrlBin,
		"--kubeconfig", b.ControllerKubeconfig, "--metrics-addr", "", "--health-addr", "")
	if err != nil {
		b.t.Fatal(err)
	}
	b.starts["controller"]++
	b.ctrl = p
}

// startSpeaker starts the speaker of node n with the speaker's RBAC
// identity, as the DaemonSet would on the host network.
func (b *l2Bed) startSpeaker(ctx context.Context, n *testbed.Node, extra ...string) {
	b.t.Helper()
	b.starts[n.Name]++
	args := append([]string{"--kubeconfig", b.SpeakerKubeconfig, "--log-level", "debug",
		"--metrics-addr", "127.0.0.1:7472", "--metrics-secure=false", "--health-addr", ":7473"}, extra...)
	// HERALD_SPEAKER_FLAGS adds flags to every speaker, to compare settings
	// (for example memberlist timings) on the same tests.
	args = append(args, strings.Fields(os.Getenv("HERALD_SPEAKER_FLAGS"))...)
	p, err := n.StartSpeaker(ctx, fmt.Sprintf("speaker-%s-%d", n.Name, b.starts[n.Name]), b.speakerBin, args...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.speakers[n.Name] = p
}

// metrics reads one speaker's metrics as name{labels} -> value.
func (b *l2Bed) metrics(ctx context.Context, n *testbed.Node) (map[string]float64, error) {
	if tok := b.metricsToken[n.Name]; tok != "" {
		return parseMetrics(n.Output(ctx, "curl", "-sfk", "--max-time", "2", "-H", "Authorization: Bearer "+tok, "https://"+testbed.HostPort(n.IP, 7472)+"/metrics"))
	}
	return speakerMetrics(ctx, n)
}

// speakerMetrics reads the metrics of the speaker on n (on :7472) as
// name{labels} -> value.
func speakerMetrics(ctx context.Context, n *testbed.Node) (map[string]float64, error) {
	return parseMetrics(n.Output(ctx, "curl", "-sf", "--max-time", "2", "http://127.0.0.1:7472/metrics"))
}

// sumMetric adds one metric (name{labels}) over the nodes' speakers, read
// with get; it also returns the value per node, or -1 and the error.
func sumMetric(ctx context.Context, nodes []*testbed.Node, get func(context.Context, *testbed.Node) (map[string]float64, error), metric string) (float64, string) {
	total, per := 0.0, []string{}
	for _, n := range nodes {
		m, err := get(ctx, n)
		if err != nil {
			return -1, err.Error()
		}
		v := m[metric]
		total += v
		per = append(per, fmt.Sprintf("%s=%v", n.Name, v))
	}
	return total, strings.Join(per, " ")
}

// parseMetrics parses a metrics page as name{labels} -> value.
func parseMetrics(out []byte, err error) (map[string]float64, error) {
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "herald_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, nil
}

// waitMembers waits until every running speaker sees want members.
func (b *l2Bed) waitMembers(ctx context.Context, want int) {
	b.t.Helper()
	start := time.Now()
	for {
		ok := true
		for _, n := range b.Nodes {
			if p := b.speakers[n.Name]; p == nil || !p.Running() {
				continue
			}
			m, err := b.metrics(ctx, n)
			if err != nil || m["herald_memberlist_members"] != float64(want) {
				ok = false
			}
		}
		if ok {
			b.t.Logf("%d speakers see each other after %v", want, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 60*time.Second {
			b.t.Fatalf("speakers do not see %d members after 60s", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// service creates a backend Service and waits for the controller to give
// it IPs; it returns them.
func (b *l2Bed) service(ctx context.Context, spec testbed.ServiceSpec, want int) []netip.Addr {
	b.t.Helper()
	if _, err := b.BackendService(ctx, spec); err != nil {
		b.t.Fatal(err)
	}
	ns := spec.Namespace
	if ns == "" {
		ns = "default"
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		svc, err := b.Client.CoreV1().Services(ns).Get(ctx, spec.Name, metav1.GetOptions{})
		if err == nil && len(svc.Status.LoadBalancer.Ingress) >= want {
			var ips []netip.Addr
			for _, in := range svc.Status.LoadBalancer.Ingress {
				ips = append(ips, netip.MustParseAddr(in.IP))
			}
			b.t.Logf("service %s/%s got %v", ns, spec.Name, ips)
			return ips
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("service %s/%s has no %d IPs after 30s (err %v)", ns, spec.Name, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ownerByMAC returns the node whose MAC the L2 client's neighbour table
// holds for ip, or "".
func (b *l2Bed) ownerByMAC(ctx context.Context, ip netip.Addr) string {
	nb, err := b.ClientL2.Neighbors(ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, e := range nb {
		if e.Dst != ip.String() || e.LLAddr == "" {
			continue
		}
		for name, mac := range b.macs {
			if strings.EqualFold(mac, e.LLAddr) {
				return name
			}
		}
		b.t.Fatalf("neighbour %s is at %s, which is no node's MAC", ip, e.LLAddr)
	}
	return ""
}

// neighbourOwner is ownerByMAC for use off the test goroutine: errors give "".
func (b *l2Bed) neighbourOwner(ctx context.Context, ip netip.Addr) string {
	nb, err := b.ClientL2.Neighbors(ctx)
	if err != nil {
		return ""
	}
	for _, e := range nb {
		if e.Dst == ip.String() {
			for name, mac := range b.macs {
				if strings.EqualFold(mac, e.LLAddr) {
					return name
				}
			}
		}
	}
	return ""
}

// get asks addr from the L2 client until it answers.
func (b *l2Bed) get(ctx context.Context, ip netip.Addr, within time.Duration) testbed.Reply {
	b.t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < within {
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		r, err := b.ClientL2.Get(rctx, testbed.HostPort(ip, 80))
		cancel()
		if err == nil {
			return r
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("%s: no answer within %v: %v", ip, within, last)
	return testbed.Reply{}
}

// waitOwner waits until the client resolves ip to the MAC of one of the
// nodes in want (any node when want is empty) and returns it.
// endpointsOffOwner finds the owner of ip and points svc at the pods of
// another node, so that when the owner dies only the announcement moves;
// it returns once 20 probes in a row (each within timeout) got through,
// kube-proxy having caught up everywhere.
func (b *l2Bed) endpointsOffOwner(ctx context.Context, t *testing.T, svc *corev1.Service, ip netip.Addr, timeout time.Duration) string {
	t.Helper()
	owner := b.waitOwner(ctx, ip)
	for _, n := range b.Nodes {
		if n.Name != owner {
			if err := b.SetEndpoints(ctx, svc, n.Pods); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for ok := 0; ok < 20; {
		rctx, c := context.WithTimeout(ctx, timeout)
		if _, err := b.ClientL2.Get(rctx, testbed.HostPort(ip, 80)); err == nil {
			ok++
		} else {
			ok = 0
		}
		c()
		time.Sleep(10 * time.Millisecond)
	}
	return owner
}

func (b *l2Bed) waitOwner(ctx context.Context, ip netip.Addr, want ...string) string {
	b.t.Helper()
	start := time.Now()
	var owner string
	for time.Since(start) < 20*time.Second {
		b.get(ctx, ip, 10*time.Second)
		owner = b.ownerByMAC(ctx, ip)
		if owner != "" && (len(want) == 0 || slices.Contains(want, owner)) {
			return owner
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s: owner is %q, want one of %v", ip, owner, want)
	return ""
}

// events returns the messages of the Service's events with reason.
func (b *l2Bed) events(ctx context.Context, ns, name, reason string) []string {
	evs, err := b.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.name=" + name + ",reason=" + reason,
	})
	if err != nil {
		b.t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Message)
	}
	return out
}

func (b *l2Bed) node(name string) *testbed.Node {
	for _, n := range b.Nodes {
		if n.Name == name {
			return n
		}
	}
	b.t.Fatalf("no node %s", name)
	return nil
}

func (b *l2Bed) podsOn(names ...string) []*testbed.Pod {
	var pods []*testbed.Pod
	for _, name := range names {
		pods = append(pods, b.node(name).Pods...)
	}
	return pods
}

// TestL2 runs the layer 2 scenarios on one bed: announcement, HTTP through
// kube-proxy, events, ETP Local, node selectors, interfaces, IPv6 and the
// memberlist key mismatch.
func TestL2(t *testing.T) {
	b := startL2(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	all := b.podsOn("node1", "node2", "node3")

	t.Run("AnnounceAndServe", func(t *testing.T) {
		ips := b.service(ctx, testbed.ServiceSpec{Name: "web", Pods: all, DualStack: true}, 2)
		v4 := ips[0]
		if !v4.Is4() {
			v4 = ips[1]
		}
		start := time.Now()
		r := b.get(ctx, v4, 20*time.Second)
		owner := b.ownerByMAC(ctx, v4)
		t.Logf("%s answered by pod %s after %v; the client resolves it to %s", v4, r.Pod, time.Since(start).Round(time.Millisecond), owner)
		if owner == "" {
			t.Fatalf("client has no neighbour entry for %s", v4)
		}
		var msgs []string
		for time.Since(start) < 10*time.Second {
			if msgs = b.events(ctx, "default", "web", "Announcing"); len(msgs) >= 2 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		want := fmt.Sprintf("announcing %s from node %s on eth0 via ARP", v4, owner)
		if !slices.Contains(msgs, want) {
			t.Errorf("events %q lack %q", msgs, want)
		}
		t.Logf("events: %q", msgs)
		m, err := b.metrics(ctx, b.node(owner))
		if err != nil {
			t.Fatal(err)
		}
		if m[`herald_layer2_announced_ips{protocol="arp"}`] < 1 || m["herald_layer2_arp_replies_total"]+m["herald_layer2_gratuitous_arp_total"] < 1 {
			t.Errorf("owner's metrics: %v", m)
		}
	})

	// The controller's pool status write after an allocation is a
	// status-only update: no speaker rebuilds its configuration for it, and
	// a new Service costs each speaker a few elections of its own key, not
	// one per Service.
	t.Run("StatusEchoCostsNothing", func(t *testing.T) {
		work := func() map[string][2]float64 {
			out := map[string][2]float64{}
			for _, n := range []string{"node1", "node2", "node3"} {
				m, err := b.metrics(ctx, b.node(n))
				if err != nil {
					t.Fatal(err)
				}
				out[n] = [2]float64{m["herald_config_rebuilds_total"], m["herald_elections_total"]}
			}
			return out
		}
		assigned := func() int64 { return poolCount(getPool(t, b.Bed, "l2"), "assignedIPv4") }
		time.Sleep(2 * time.Second) // let earlier status writes settle
		before, assignedBefore := work(), assigned()
		b.service(ctx, testbed.ServiceSpec{Name: "echo", Pods: all}, 1)
		eventually(t, 20*time.Second, "the pool's status counts the new address", func() (bool, string) {
			n := assigned()
			return n > assignedBefore, fmt.Sprint(n)
		})
		time.Sleep(2 * time.Second)
		after := work()
		for n := range after {
			rebuilds, elections := after[n][0]-before[n][0], after[n][1]-before[n][1]
			t.Logf("%s: %v configuration rebuilds, %v elections for one new Service and the pool status echo", n, rebuilds, elections)
			if rebuilds != 0 {
				t.Errorf("%s rebuilt its configuration %v times for a status-only update", n, rebuilds)
			}
			if elections > 6 {
				t.Errorf("%s ran %v elections for one new Service", n, elections)
			}
		}
	})

	// A bad edit keeps the accepted spec in effect everywhere, across
	// restarts: an edit of a live pool that would overlap another, then an
	// IPv6 range in the wrong order (only the controller can tell), with a
	// speaker and the controller restarted in between. Nothing changes on
	// the wire.
	t.Run("BadEditsKeepTheAcceptedSpec", func(t *testing.T) {
		ips := b.service(ctx, testbed.ServiceSpec{Name: "judged", Pods: all}, 1)
		ip := ips[0]
		b.get(ctx, ip, 20*time.Second)
		owner := b.waitOwner(ctx, ip)
		accepted := getPool(t, b.Bed, "l2").GetGeneration()
		steady := func(what string) {
			t.Helper()
			start := time.Now()
			for time.Since(start) < 4*time.Second {
				if o := b.neighbourOwner(ctx, ip); o != "" && o != owner {
					t.Fatalf("%s: %s moved from %s to %s", what, ip, owner, o)
				}
				time.Sleep(20 * time.Millisecond)
			}
			b.get(ctx, ip, 5*time.Second)
			if got := ingressIPs(getService(t, b.Bed, "default", "judged")); len(got) != 1 || got[0] != ip.String() {
				t.Fatalf("%s: the Service's addresses are %v, want [%s]", what, got, ip)
			}
		}
		judged := func(what, msg string) {
			t.Helper()
			waitPool(t, b.Bed, "l2", what, func(u *unstructured.Unstructured) bool {
				gen, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
				acc, _, _ := unstructured.NestedInt64(u.Object, "status", "acceptedGeneration")
				st, m := condition(u, "Ready")
				return gen == u.GetGeneration() && acc == accepted && st == "False" && strings.Contains(m, msg)
			})
		}
		restartOther := func() {
			t.Helper()
			for _, n := range b.Nodes {
				if n.Name != owner {
					if err := b.speakers[n.Name].Stop(5 * time.Second); err != nil {
						t.Fatal(err)
					}
					b.startSpeaker(ctx, n)
					break
				}
			}
			b.waitMembers(ctx, 3)
		}
		l2Pool := func(addrs ...string) string {
			return poolYAML("l2", addrs, "")
		}

		// Pool l2 gains a range inside pool zoned.
		apply(t, b.Bed, l2Pool(`"198.18.0.200-198.18.0.229"`, `"2001:db8:18::200-2001:db8:18::229"`, `"198.18.0.235-198.18.0.236"`))
		judged("an overlapping edit refused", `overlaps pool "zoned"`)
		steady("after the overlapping edit")
		restartOther()
		b.startController(ctx)
		steady("after a speaker and the controller restarted")
		judged("the restarted controller judges the same", `overlaps pool "zoned"`)

		// A reversed IPv6 range, then a speaker restart.
		apply(t, b.Bed, l2Pool(`"198.18.0.200-198.18.0.229"`, `"2001:db8:18::229-2001:db8:18::200"`))
		judged("a reversed IPv6 range refused", "greater than the last")
		restartOther()
		steady("after a speaker restarted with the reversed range in the spec")

		// The original spec is accepted again.
		apply(t, b.Bed, l2Pool(`"198.18.0.200-198.18.0.229"`, `"2001:db8:18::200-2001:db8:18::229"`))
		waitPool(t, b.Bed, "l2", "accepted again", func(u *unstructured.Unstructured) bool {
			acc, _, _ := unstructured.NestedInt64(u.Object, "status", "acceptedGeneration")
			st, _ := condition(u, "Ready")
			return acc == u.GetGeneration() && st == "True"
		})
		steady("after the fix")
	})

	t.Run("IPv6", func(t *testing.T) {
		svc, err := b.Client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var v4, v6 netip.Addr
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip := netip.MustParseAddr(in.IP); ip.Is6() {
				v6 = ip
			} else {
				v4 = ip
			}
		}
		if !v6.IsValid() {
			t.Skip("no IPv6 load-balancer IP")
		}
		start := time.Now()
		r := b.get(ctx, v6, 20*time.Second)
		owner6, owner4 := b.ownerByMAC(ctx, v6), b.ownerByMAC(ctx, v4)
		t.Logf("%s answered by %s after %v, resolved to %s (IPv4 owner %s)", v6, r.Pod, time.Since(start).Round(time.Millisecond), owner6, owner4)
		if owner6 == "" || owner6 != owner4 {
			t.Errorf("IPv6 owner %q, IPv4 owner %q: both IPs of a Service must go to one node", owner6, owner4)
		}
	})

	t.Run("ExternalTrafficPolicyLocal", func(t *testing.T) {
		ips := b.service(ctx, testbed.ServiceSpec{Name: "local", Pods: b.podsOn("node2"),
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal}, 1)
		ip := ips[0]
		owner := b.waitOwner(ctx, ip, "node2")
		r := b.get(ctx, ip, 5*time.Second)
		if r.ClientIP() != testbed.ClientL2IP {
			t.Errorf("pod saw %s, want the client's %s", r.ClientIP(), testbed.ClientL2IP)
		}
		t.Logf("%s announced by %s, pod %s saw client %s", ip, owner, r.Pod, r.ClientIP())
		svc, err := b.Client.CoreV1().Services("default").Get(ctx, "local", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := b.SetEndpoints(ctx, svc, b.podsOn("node3")); err != nil {
			t.Fatal(err)
		}
		owner = b.waitOwner(ctx, ip, "node3")
		r = b.get(ctx, ip, 5*time.Second)
		t.Logf("endpoint moved to node3: %s announced by %s after %v, pod %s saw %s", ip, owner, time.Since(start).Round(time.Millisecond), r.Pod, r.ClientIP())
		if r.ClientIP() != testbed.ClientL2IP || r.Pod != b.node("node3").Pods[0].Name {
			t.Errorf("reply %+v", r)
		}
	})

	t.Run("NodeSelector", func(t *testing.T) {
		patch := []byte(`{"metadata":{"labels":{"herald-test/zone":"z1"}}}`)
		if _, err := b.Client.CoreV1().Nodes().Patch(ctx, "node1", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		ips := b.service(ctx, testbed.ServiceSpec{Name: "zoned", Pods: all, Mutate: func(s *corev1.Service) {
			s.Annotations = map[string]string{"herald.io/address-pool": "zoned"}
		}}, 1)
		owner := b.waitOwner(ctx, ips[0], "node1")
		t.Logf("%s (pool zoned, nodeSelector zone=z1) announced by %s", ips[0], owner)
		// Moving the label moves the IP.
		if _, err := b.Client.CoreV1().Nodes().Patch(ctx, "node3", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		unpatch := []byte(`{"metadata":{"labels":{"herald-test/zone":null}}}`)
		if _, err := b.Client.CoreV1().Nodes().Patch(ctx, "node1", types.MergePatchType, unpatch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		owner = b.waitOwner(ctx, ips[0], "node3")
		t.Logf("label moved to node3: %s announced by %s", ips[0], owner)
	})

	t.Run("MissingInterface", func(t *testing.T) {
		ips := b.service(ctx, testbed.ServiceSpec{Name: "nowhere", Pods: all, Mutate: func(s *corev1.Service) {
			s.Annotations = map[string]string{"herald.io/address-pool": "nowhere"}
		}}, 1)
		time.Sleep(time.Second)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if r, err := b.ClientL2.Get(rctx, testbed.HostPort(ips[0], 80)); err == nil {
			t.Errorf("%s (advertised on eth9 only) answered by %s", ips[0], r.Pod)
		}
		if owner := b.ownerByMAC(ctx, ips[0]); owner != "" {
			t.Errorf("%s resolved to %s", ips[0], owner)
		}
	})

	t.Run("RestartDoesNotSteal", func(t *testing.T) {
		// A speaker that restarts (a rolling upgrade) must not answer for
		// IPs before it has rejoined the others: alone, it would elect
		// itself for every IP and pull the traffic to itself.
		ips := b.service(ctx, testbed.ServiceSpec{Name: "steady", Pods: all}, 1)
		b.get(ctx, ips[0], 20*time.Second)
		owner := b.waitOwner(ctx, ips[0])
		var other *testbed.Node
		for _, n := range b.Nodes {
			if n.Name != owner {
				other = n
				break
			}
		}
		if err := b.speakers[other.Name].Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		b.startSpeaker(ctx, other)
		start := time.Now()
		for time.Since(start) < 4*time.Second {
			if o := b.neighbourOwner(ctx, ips[0]); o != "" && o != owner {
				t.Fatalf("%s restarted and took %s from %s after %v", other.Name, ips[0], owner, time.Since(start).Round(time.Millisecond))
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.waitMembers(ctx, 3)
		if o := b.ownerByMAC(ctx, ips[0]); o != owner {
			t.Errorf("owner of %s moved from %s to %s after a restart of %s", ips[0], owner, o, other.Name)
		}
	})

	t.Run("KeyMismatch", func(t *testing.T) {
		n := b.node("node3")
		if err := b.speakers[n.Name].Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		b.startSpeaker(ctx, n, "--memberlist-secret-name", "herald-memberlist-other")
		start := time.Now()
		var msgs []string
		for time.Since(start) < 30*time.Second {
			for _, node := range b.Nodes {
				msgs = append(msgs, b.events(ctx, "default", node.Name, "MemberlistKeyMismatch")...)
			}
			if len(msgs) > 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if len(msgs) == 0 {
			t.Fatal("no MemberlistKeyMismatch event in 30s")
		}
		t.Logf("key mismatch reported after %v: %q", time.Since(start).Round(time.Millisecond), msgs[0])
		total := 0.0
		for _, node := range b.Nodes {
			if m, err := b.metrics(ctx, node); err == nil {
				total += m["herald_memberlist_key_mismatches_total"]
			}
		}
		if total == 0 {
			t.Error("herald_memberlist_key_mismatches_total is 0 on every speaker")
		}
		// Refused by every peer, it must not answer alone: that would split
		// the clients between two nodes.
		time.Sleep(6 * time.Second) // past the speaker's settle timeout
		if m, err := b.metrics(ctx, n); err != nil {
			t.Errorf("metrics of %s: %v", n.Name, err)
		} else if got := m[`herald_layer2_announced_ips{protocol="arp"}`] + m[`herald_layer2_announced_ips{protocol="ndp"}`]; got != 0 {
			t.Errorf("the speaker with the wrong key announces %v IPs", got)
		}
		if err := b.speakers[n.Name].Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		b.startSpeaker(ctx, n)
		b.waitMembers(ctx, 3)
	})
}

// TestL2Failover measures the outage a client probing every 10 ms sees
// when the owner of an IP dies (cable cut and speaker killed) and when its
// speaker is stopped with SIGTERM. HERALD_FAILOVER_RUNS sets the number of
// runs of each (default 10).
func TestL2Failover(t *testing.T) {
	runs := 10
	if s := os.Getenv("HERALD_FAILOVER_RUNS"); s != "" {
		runs, _ = strconv.Atoi(s)
	}
	b := startL2(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ips := b.service(ctx, testbed.ServiceSpec{Name: "web", Pods: b.podsOn("node1")}, 1)
	ip := ips[0]
	svc, err := b.Client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// prepare finds the owner and points the Service at a pod of another
	// node, so that only the announcement moves.
	prepare := func() string { return b.endpointsOffOwner(ctx, t, svc, ip, 300*time.Millisecond) }

	measure := func(kind string, cut func(owner *testbed.Node), restore func(owner *testbed.Node)) []time.Duration {
		var outages, handovers []time.Duration
		for i := 0; i < runs; i++ {
			owner := b.node(prepare())
			p := testbed.Probe(ctx, b.ClientL2.NS, testbed.HostPort(ip, 80), 10*time.Millisecond, time.Second)
			time.Sleep(300 * time.Millisecond)
			moved := make(chan time.Duration, 1)
			cutAt := time.Now()
			go func() {
				for time.Since(cutAt) < 20*time.Second {
					if o := b.neighbourOwner(ctx, ip); o != "" && o != owner.Name {
						moved <- time.Since(cutAt)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				moved <- -1
			}()
			cut(owner)
			var out time.Duration
			for {
				time.Sleep(50 * time.Millisecond)
				if _, ok := outageAfter(p.Snapshot(), cutAt); ok {
					// Let the probes still in flight finish, then look again.
					time.Sleep(1100 * time.Millisecond)
					out, _ = outageAfter(p.Snapshot(), cutAt)
					break
				}
				if time.Since(cutAt) > 20*time.Second {
					t.Fatalf("%s run %d: no recovery in 20s", kind, i+1)
				}
			}
			p.Stop()
			mv := <-moved
			newOwner := b.ownerByMAC(ctx, ip)
			t.Logf("%s run %d: owner %s -> %s, client's neighbour entry moved after %v, outage %v",
				kind, i+1, owner.Name, newOwner, mv.Round(time.Millisecond), out.Round(time.Millisecond))
			outages = append(outages, out)
			handovers = append(handovers, mv)
			restore(owner)
			b.waitMembers(ctx, len(b.Nodes))
		}
		sorted := slices.Clone(outages)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
		t.Logf("FIGURE %s: %d runs, median %v, min %v, max %v", kind, runs, median(sorted).Round(time.Millisecond),
			sorted[0].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond))
		slices.Sort(handovers)
		t.Logf("FIGURE %s: client's neighbour entry on the new owner after: median %v, min %v, max %v", kind,
			median(handovers).Round(time.Millisecond), handovers[0].Round(time.Millisecond), handovers[len(handovers)-1].Round(time.Millisecond))
		return sorted
	}

	restart := func(owner *testbed.Node) { b.startSpeaker(ctx, owner) }
	dead := measure("node death (link down + speaker killed)", func(owner *testbed.Node) {
		if err := owner.LinkDown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.speakers[owner.Name].Kill(); err != nil {
			t.Fatal(err)
		}
	}, func(owner *testbed.Node) {
		if err := owner.LinkUp(ctx); err != nil {
			t.Fatal(err)
		}
		restart(owner)
	})
	term := measure("SIGTERM", func(owner *testbed.Node) {
		if err := b.speakers[owner.Name].Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}, func(owner *testbed.Node) {
		select {
		case <-b.speakers[owner.Name].Exited():
		case <-time.After(5 * time.Second):
			t.Errorf("speaker of %s still running 5s after SIGTERM", owner.Name)
			b.speakers[owner.Name].Kill()
		}
		restart(owner)
	})
	// Generous bounds: CI machines are noisy; the figures are in the log.
	if m := median(dead); m > 3*time.Second {
		t.Errorf("median outage after node death %v", m)
	}
	if m := median(term); m > time.Second {
		t.Errorf("median outage on SIGTERM %v", m)
	}
}

func median(sorted []time.Duration) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[len(sorted)/2]
}

// outageAfter returns the outage that follows t in r: 0 when probes went
// on answering for 2 s after t, and false while neither is known yet.
func outageAfter(r testbed.ProbeReport, t time.Time) (time.Duration, bool) {
	if o, ok := r.OutageAfter(t); ok {
		return o.Duration(), !o.Open
	}
	if n := len(r.Results); n > 0 && r.Results[n-1].Sent.Sub(t) > 2*time.Second {
		return 0, true
	}
	return 0, false
}
