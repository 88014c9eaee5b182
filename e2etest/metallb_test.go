package e2etest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// metallbConfig is an ordinary MetalLB v0.15 configuration: an L2 pool and
// a BGP pool, a v1beta2 BGPPeer (its CRD fills in disableMP and
// dualStackAddressFamily), a Community alias, a BGPAdvertisement that uses
// it.
const metallbConfig = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: ["198.18.0.200-198.18.0.209"]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec:
  ipAddressPools: [lan]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: metallb-system}
spec:
  addresses: ["203.0.113.0/28"]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities, namespace: metallb-system}
spec:
  communities: [{name: Edge_Routes, value: "64600:100"}]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: metallb-system}
spec:
  ipAddressPools: [routed]
  communities: [Edge_Routes]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec:
  myASN: 64600
  peerASN: 64512
  peerAddress: 198.18.0.2
  holdTime: 9s
`

// migrationPeer is the BGPPeer Herald peers with during the overlap: the
// router's other address family, so that the router sees Herald's session
// from another neighbour address than MetalLB's (a router takes one
// session per neighbour address), while the routes keep the node's IPv4
// address as next hop.
const migrationPeer = `
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: tor-migration}
spec:
  myASN: 64600
  peerASN: 64512
  peerAddress: "2001:db8:18::2"
  holdTime: 9s
  connectTime: 1s
`

var metallbGVs = []schema.GroupVersionResource{
	{Group: "metallb.io", Version: "v1beta1", Resource: "ipaddresspools"},
	{Group: "metallb.io", Version: "v1beta1", Resource: "l2advertisements"},
	{Group: "metallb.io", Version: "v1beta1", Resource: "bgpadvertisements"},
	{Group: "metallb.io", Version: "v1beta2", Resource: "bgppeers"},
	{Group: "metallb.io", Version: "v1beta1", Resource: "communities"},
}

const metallbNS = "metallb-system"

// metallbBed is a dual-stack bed running MetalLB v0.15's controller and
// speakers (native BGP, memberlist) as processes, the way the DaemonSet
// and the Deployment would on the host network.
type metallbBed struct {
	*testbed.Bed
	t        *testing.T
	ctrl     *testbed.Process
	speakers []*testbed.Process
	plugin   string
}

func startMetalLB(t *testing.T) *metallbBed {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	repo, err := testbed.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	// Build (or find cached) MetalLB first: the first build takes minutes.
	start := time.Now()
	ctrlBin, err := testbed.MetalLBBinary(ctx, repo, "controller")
	if err != nil {
		t.Fatal(err)
	}
	speakerBin, err := testbed.MetalLBBinary(ctx, repo, "speaker")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MetalLB %s binaries ready after %v (%s)", testbed.MetalLBVersion, time.Since(start).Round(time.Second), testbed.MetalLBDir())

	bed := testbed.Start(t, testbed.Options{Nodes: 3, PodsPerNode: 1, Router: true, DualStack: true})
	b := &metallbBed{Bed: bed, t: t}
	// Herald's binaries are built before the switch-over starts, as an
	// operator has the images before.
	start = time.Now()
	defer func() { t.Logf("MetalLB running, Herald built after %v", time.Since(start).Round(time.Millisecond)) }()
	for _, name := range []string{"controller", "speaker"} {
		if _, err := bed.HeraldBinary(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if b.plugin, err = bed.HeraldBinary(ctx, "kubectl-herald"); err != nil {
		t.Fatal(err)
	}
	if _, err := bed.ApplyMetalLBCRDs(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bed.EnsureNamespace(ctx, metallbNS); err != nil {
		t.Fatal(err)
	}
	// The memberlist key, as MetalLB's manifests mount the Secret
	// "memberlist" at /etc/ml_secret_key.
	key := make([]byte, 128)
	rand.Read(key)
	keyDir := filepath.Join(bed.RunDir, "etc", "metallb-memberlist")
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keyDir, "secretkey"), []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bed.ApplyYAML(ctx, []byte(metallbConfig)); err != nil {
		t.Fatal(err)
	}
	// The router: explicit neighbours for the nodes' IPv4 addresses (as
	// TestBGP does), and the IPv6 neighbours may carry IPv4 routes (the
	// router-side change of the switch-over).
	lines := []string{fmt.Sprintf("router bgp %d", testbed.RouterASN)}
	for _, n := range bed.Nodes {
		lines = append(lines, fmt.Sprintf(" neighbor %s peer-group NODES", n.IP))
	}
	if err := bed.Router.Configure(ctx, lines...); err != nil {
		t.Fatal(err)
	}

	// MetalLB's controller, in node1 (a pod network namespace would do;
	// the root namespace is shared by every bed on the machine). It runs
	// with the admin kubeconfig: MetalLB is the test's tool here, its
	// RBAC is not under test.
	n1 := bed.Nodes[0]
	kc := "KUBECONFIG=" + bed.AdminKubeconfig
	if b.ctrl, err = n1.StartEnv(ctx, "metallb-controller", []string{kc}, ctrlBin,
		"--namespace", metallbNS, "--webhook-mode", "disabled", "--disable-cert-rotation", "--port", "7479", "--log-level", "info"); err != nil {
		t.Fatal(err)
	}
	// MetalLB's speakers find each other through their pods' IPs: create
	// the pods of the DaemonSet (host network: pod IP = node IP).
	if _, err := bed.Client.CoreV1().ServiceAccounts(metallbNS).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "speaker"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range bed.Nodes {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "speaker-" + n.Name, Namespace: metallbNS,
				Labels: map[string]string{"app": "metallb", "component": "speaker"}},
			Spec: corev1.PodSpec{NodeName: n.Name, HostNetwork: true, ServiceAccountName: "speaker", AutomountServiceAccountToken: new(false),
				Containers: []corev1.Container{{Name: "speaker", Image: "quay.io/metallb/speaker:" + testbed.MetalLBVersion}}},
		}
		created, err := bed.Client.CoreV1().Pods(metallbNS).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: n.IP.String(), PodIP: n.IP.String(),
			PodIPs: []corev1.PodIP{{IP: n.IP.String()}}}
		if _, err := bed.Client.CoreV1().Pods(metallbNS).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range bed.Nodes {
		env := []string{kc,
			"METALLB_NODE_NAME=" + n.Name, "METALLB_POD_NAME=speaker-" + n.Name, "METALLB_HOST=" + n.IP.String(),
			"METALLB_NAMESPACE=" + metallbNS, "METALLB_ML_BIND_ADDR=" + n.IP.String(),
			"METALLB_ML_LABELS=app=metallb,component=speaker", "METALLB_ML_SECRET_KEY_PATH=" + keyDir,
		}
		p, err := n.StartEnv(ctx, "metallb-speaker-"+n.Name, env, speakerBin, "--log-level", "info")
		if err != nil {
			t.Fatal(err)
		}
		b.speakers = append(b.speakers, p)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range bed.Processes() {
			if strings.HasPrefix(p.Name, "metallb-") || strings.HasPrefix(p.Name, "herald-") {
				if data, err := os.ReadFile(p.Log); err == nil {
					t.Logf("%s log (tail):\n%s", p.Name, tail(string(data), 25))
				}
			}
		}
		out, _ := bed.Router.Vtysh(context.Background(), "show bgp summary")
		t.Logf("router:\n%s", out)
	})
	return b
}

// kubectlHerald runs the plugin against the bed as admin and returns its
// exit code, stdout and stderr.
func (b *metallbBed) kubectlHerald(ctx context.Context, args ...string) (int, string, string) {
	cmd := exec.CommandContext(ctx, b.plugin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.AdminKubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return code, stdout.String(), stderr.String()
}

// metallbObjects returns MetalLB's configuration objects, name ->
// resourceVersion and spec, to show they are left untouched.
func (b *metallbBed) metallbObjects(ctx context.Context) map[string]string {
	out := map[string]string{}
	for _, gvr := range metallbGVs {
		list, err := b.Dynamic.Resource(gvr).Namespace(metallbNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.t.Fatal(err)
		}
		for _, o := range list.Items {
			spec, _, _ := unstructured.NestedMap(o.Object, "spec")
			out[gvr.Resource+"/"+o.GetName()] = fmt.Sprintf("rv=%s spec=%v", o.GetResourceVersion(), spec)
		}
	}
	return out
}

// serviceAddr waits until a Service has an ingress IP, and returns it.
func (b *metallbBed) serviceAddr(ctx context.Context, name string) netip.Addr {
	var ip netip.Addr
	eventually(b.t, 60*time.Second, "MetalLB gives "+name+" an address", func() (bool, string) {
		svc, err := b.Client.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, "no ingress"
		}
		ip = netip.MustParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
		return true, ""
	})
	return ip
}

// applyDocs applies the YAML documents for which keep is true.
func (b *metallbBed) applyDocs(ctx context.Context, stream string, keep func(kind string) bool) []string {
	b.t.Helper()
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	var applied []string
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			break
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if !keep(u.GetKind()) {
			continue
		}
		if _, err := b.Apply(ctx, u); err != nil {
			b.t.Fatal(err)
		}
		applied = append(applied, u.GetKind()+"/"+u.GetName())
	}
	return applied
}

// bgpPaths returns the router's paths for p as "peer nexthop" strings.
func (b *metallbBed) bgpPaths(ctx context.Context, p netip.Prefix) []string {
	var r struct {
		Paths []ribPath `json:"paths"`
	}
	if err := b.Router.JSON(ctx, fmt.Sprintf("show bgp ipv4 unicast %s json", p), &r); err != nil {
		return nil
	}
	var out []string
	for _, path := range r.Paths {
		nh := ""
		if len(path.Nexthops) > 0 {
			nh = path.Nexthops[0].IP
		}
		out = append(out, path.Peer.PeerID+" via "+nh)
	}
	slices.Sort(out)
	return out
}

func (b *metallbBed) kernelNextHops(ctx context.Context, p netip.Prefix) []string {
	routes, err := b.Router.Routes(ctx, p)
	if err != nil || len(routes) == 0 {
		return nil
	}
	hops := routes[0].NextHops()
	slices.Sort(hops)
	return hops
}

// TestMigrateFromMetalLB moves a cluster served by real MetalLB v0.15
// (L2 with memberlist, native BGP) to Herald with the procedure of
// docs/migrating-from-metallb.md, while a client on the L2 segment and a
// client behind the router each open a connection every 10 ms. It asserts
// that every Service keeps its address, that the L2 client's longest
// outage is under 1 s and that the BGP client loses no probe, that
// MetalLB's annotation is cleaned up, and that MetalLB's objects are left
// as they were (for a rollback).
func TestMigrateFromMetalLB(t *testing.T) {
	b := startMetalLB(t)
	setup := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var pods []*testbed.Pod
	for _, n := range b.Nodes {
		pods = append(pods, n.Pods...)
	}
	// Two Services, as users have them: one on the L2 pool, one that asks
	// for the BGP pool with MetalLB's annotation.
	if _, err := b.BackendService(ctx, testbed.ServiceSpec{Name: "l2-web", Pods: pods}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.BackendService(ctx, testbed.ServiceSpec{Name: "bgp-web", Pods: pods, Mutate: func(s *corev1.Service) {
		s.Annotations = map[string]string{"metallb.io/address-pool": "routed"}
	}}); err != nil {
		t.Fatal(err)
	}
	l2IP, bgpIP := b.serviceAddr(ctx, "l2-web"), b.serviceAddr(ctx, "bgp-web")
	t.Logf("MetalLB assigned l2-web %v, bgp-web %v", l2IP, bgpIP)
	bgpHost := netip.PrefixFrom(bgpIP, 32)
	allNodes := []string{b.Nodes[0].IP.String(), b.Nodes[1].IP.String(), b.Nodes[2].IP.String()}
	eventually(t, 90*time.Second, "MetalLB: router routes bgp-web via every node", func() (bool, string) {
		got := b.kernelNextHops(ctx, bgpHost)
		return slices.Equal(got, allNodes), fmt.Sprint(got, b.bgpPaths(ctx, bgpHost))
	})
	eventually(t, 60*time.Second, "MetalLB: l2-web answers on the L2 segment", func() (bool, string) {
		_, err := b.ClientL2.Get(ctx, testbed.HostPort(l2IP, 80))
		return err == nil, fmt.Sprint(err)
	})
	eventually(t, 30*time.Second, "MetalLB: bgp-web answers behind the router", func() (bool, string) {
		_, err := b.ClientExt.Get(ctx, testbed.HostPort(bgpIP, 80))
		return err == nil, fmt.Sprint(err)
	})
	before := b.metallbObjects(ctx)
	t.Logf("MetalLB serves both Services after %v", time.Since(setup).Round(time.Millisecond))

	// Clients: a new connection every 10 ms; a probe fails if it has no
	// answer within 2 s (generous: on a loaded machine a starved process
	// can take a second). A lost packet is seen by the kernel, whatever the
	// timing: the clients' TCP retransmissions are counted too (each client
	// namespace opens only its probes' connections).
	const every, timeout = 10 * time.Millisecond, 2 * time.Second
	retrans0 := map[string]map[string]int64{"L2": b.retransmissions(ctx, b.ClientL2.NS), "BGP": b.retransmissions(ctx, b.ClientExt.NS)}
	probeL2 := testbed.Probe(ctx, b.ClientL2.NS, testbed.HostPort(l2IP, 80), every, timeout)
	probeBGP := testbed.Probe(ctx, b.ClientExt.NS, testbed.HostPort(bgpIP, 80), every, timeout)
	time.Sleep(2 * time.Second)
	migStart := time.Now()
	type event struct {
		at   time.Duration
		what string
	}
	var timeline []event
	mark := func(step string) {
		timeline = append(timeline, event{time.Since(migStart), step})
		t.Logf("+%v %s", time.Since(migStart).Round(time.Millisecond), step)
	}

	// Step 1: convert.
	code, converted, report := b.kubectlHerald(ctx, "migrate")
	t.Logf("kubectl herald migrate: exit %d; report:\n%s", code, report)
	if code != 0 {
		t.Fatalf("kubectl herald migrate: exit %d, want 0 (a faithful conversion)", code)
	}
	// Step 2: Herald's configuration, without its BGPPeers, and the
	// temporary peer on the router's other address.
	applied := b.applyDocs(ctx, converted, func(kind string) bool { return kind != "BGPPeer" })
	b.applyDocs(ctx, migrationPeer, func(string) bool { return true })
	t.Logf("applied %v and BGPPeer/tor-migration", applied)
	if err := b.Router.Configure(ctx, fmt.Sprintf("router bgp %d", testbed.RouterASN),
		" address-family ipv4 unicast", "  neighbor NODES6 activate", " exit-address-family"); err != nil {
		t.Fatal(err)
	}
	mark("Herald's configuration applied, router takes IPv4 routes from the IPv6 neighbours")
	// Step 3: MetalLB's controller stops (scale its Deployment to 0);
	// Herald's controller starts and adopts the addresses in status.
	if err := b.ctrl.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	mark("MetalLB's controller stopped")
	startController(t, b.Bed, "herald-controller")
	mark("Herald's controller started")
	for name, ip := range map[string]netip.Addr{"l2-web": l2IP, "bgp-web": bgpIP} {
		eventually(t, 30*time.Second, "Herald adopts "+name, func() (bool, string) {
			svc, err := b.Client.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			pool := svc.Annotations["herald.io/ip-allocated-from-pool"]
			return pool != "" && len(svc.Status.LoadBalancer.Ingress) == 1 && svc.Status.LoadBalancer.Ingress[0].IP == ip.String(),
				fmt.Sprint(svc.Annotations, svc.Status.LoadBalancer.Ingress)
		})
	}
	mark("Herald's controller adopted both addresses")
	// Step 4: Herald's speakers, on other host ports than MetalLB's.
	herald, err := b.HeraldBinary(ctx, "speaker")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range b.Nodes {
		if _, err := n.Start(ctx, "herald-speaker-"+n.Name, herald, "--kubeconfig", b.SpeakerKubeconfig,
			"--memberlist-port", "7947", "--metrics-addr", ":7572", "--health-addr", ":7573", "--log-level", "debug"); err != nil {
			t.Fatal(err)
		}
	}
	mark("Herald's speakers started")
	var both []string
	eventually(t, 60*time.Second, "router has MetalLB's and Herald's paths for bgp-web", func() (bool, string) {
		both = b.bgpPaths(ctx, bgpHost)
		return len(both) == 6, fmt.Sprint(both)
	})
	mark("router has MetalLB's and Herald's paths")
	t.Logf("overlap: router paths for %v: %v; kernel next hops %v", bgpHost, both, b.kernelNextHops(ctx, bgpHost))
	eventually(t, 30*time.Second, "Herald announces l2-web", func() (bool, string) {
		evs, err := b.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=l2-web,reason=Announcing"})
		if err != nil {
			return false, err.Error()
		}
		return len(evs.Items) > 0, "no Announcing event"
	})
	mark("Herald announces l2-web")
	b.checkCollision(ctx, bgpHost)
	mark("checked: the router refuses Herald's session from node1's IPv4 address while MetalLB's is up")
	// Step 5: MetalLB's speakers stop (delete its DaemonSet).
	stopSpeakers := time.Now()
	for _, p := range b.speakers {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range b.Nodes {
		if err := b.Client.CoreV1().Pods(metallbNS).Delete(ctx, "speaker-"+n.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "router has only Herald's paths", func() (bool, string) {
		got := b.bgpPaths(ctx, bgpHost)
		return len(got) == 3, fmt.Sprint(got)
	})
	mark(fmt.Sprintf("MetalLB's speakers stopped, router has only Herald's paths; routes via %v", b.kernelNextHops(ctx, bgpHost)))
	// Step 6: Herald's converted BGPPeers; once their sessions are up, the
	// temporary peer goes.
	b.applyDocs(ctx, converted, func(kind string) bool { return kind == "BGPPeer" })
	eventually(t, 60*time.Second, "Herald's sessions with the converted peer", func() (bool, string) {
		sum, err := b.Router.BGPSummary(ctx, false)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range b.Nodes {
			if sum[n.IP.String()].State != "Established" || sum[n.IP.String()].PfxRcd == 0 {
				return false, fmt.Sprint(sum)
			}
		}
		return len(b.bgpPaths(ctx, bgpHost)) == 6, fmt.Sprint(b.bgpPaths(ctx, bgpHost))
	})
	mark("converted BGPPeer's sessions up")
	ri, err := b.Resource(schema.GroupVersionKind{Group: "herald.io", Version: "v1beta1", Kind: "BGPPeer"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ri.Delete(ctx, "tor-migration", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "only the converted peer's paths", func() (bool, string) {
		got := b.bgpPaths(ctx, bgpHost)
		return len(got) == 3 && !strings.Contains(strings.Join(got, " "), ":"), fmt.Sprint(got)
	})
	if err := b.Router.Configure(ctx, fmt.Sprintf("router bgp %d", testbed.RouterASN),
		" address-family ipv4 unicast", "  no neighbor NODES6 activate", " exit-address-family"); err != nil {
		t.Fatal(err)
	}
	mark("temporary peer gone, router configuration reverted")
	// Step 7: clean MetalLB's annotation up.
	code, out, errOut := b.kubectlHerald(ctx, "migrate", "cleanup")
	t.Logf("kubectl herald migrate cleanup: exit %d\n%s%s", code, out, errOut)
	if code != 0 {
		t.Fatalf("cleanup: exit %d", code)
	}
	mark("annotations cleaned up")
	time.Sleep(3 * time.Second)
	migDur := time.Since(migStart)
	repL2, repBGP := probeL2.Stop(), probeBGP.Stop()
	retrans := map[string]map[string]int64{}
	for name, ns := range map[string]testbed.NS{"L2": b.ClientL2.NS, "BGP": b.ClientExt.NS} {
		now := b.retransmissions(ctx, ns)
		retrans[name] = map[string]int64{}
		for k, v := range now {
			retrans[name][k] = v - retrans0[name][k]
		}
	}

	// Every Service keeps its address, and carries no MetalLB annotation
	// but the input one (which a rollback needs).
	for name, ip := range map[string]netip.Addr{"l2-web": l2IP, "bgp-web": bgpIP} {
		svc, err := b.Client.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Status.LoadBalancer.Ingress) != 1 || svc.Status.LoadBalancer.Ingress[0].IP != ip.String() {
			t.Errorf("%s: ingress %v, want %v (the address MetalLB gave)", name, svc.Status.LoadBalancer.Ingress, ip)
		}
		for k := range svc.Annotations {
			if strings.HasSuffix(k, "/ip-allocated-from-pool") && !strings.HasPrefix(k, "herald.io/") {
				t.Errorf("%s: MetalLB's annotation %s=%s left behind", name, k, svc.Annotations[k])
			}
		}
	}
	if after := b.metallbObjects(ctx); !maps.Equal(before, after) {
		t.Errorf("MetalLB's objects changed:\nbefore %v\nafter  %v", before, after)
	}
	for name, rep := range map[string]testbed.ProbeReport{"L2": repL2, "BGP": repBGP} {
		for _, o := range rep.Outages {
			timeline = append(timeline, event{o.Start.Sub(migStart), fmt.Sprintf("%s client: outage of %v", name, o.Duration().Round(time.Millisecond))})
		}
		errs := map[string]int{}
		for _, r := range rep.Results {
			if !r.OK {
				errs[r.Err]++
			}
		}
		if len(errs) > 0 {
			t.Logf("%s client errors: %v", name, errs)
		}
	}
	slices.SortFunc(timeline, func(a, b event) int { return cmp.Compare(a.at, b.at) })
	var tl strings.Builder
	for _, e := range timeline {
		fmt.Fprintf(&tl, "%9.3fs  %s\n", e.at.Seconds(), e.what)
	}
	t.Logf("timeline (from the start of the migration):\n%s", tl.String())
	// Lost, for the BGP client: a probe that failed other than by timeout
	// (reset, unreachable); and, when the kernel retransmitted, a probe that
	// timed out or took longer than TCP's first SYN retransmission (1 s).
	// Without a retransmission a slow probe lost no packet: on a loaded
	// machine a starved process is slow, not gone.
	bgpRetrans := retrans["BGP"]["TcpRetransSegs"] + retrans["BGP"]["TcpExtTCPSynRetrans"]
	bgpLost, bgpSlow := 0, 0
	for _, r := range repBGP.Results {
		timedOut := !r.OK && (strings.Contains(r.Err, "deadline exceeded") || strings.Contains(r.Err, "Timeout"))
		switch {
		case !r.OK && !timedOut:
			bgpLost++
		case timedOut || r.Took > time.Second:
			bgpSlow++
			if bgpRetrans > 0 {
				bgpLost++
			}
		}
	}
	l2Out := repL2.LongestOutage()
	slowest := func(r testbed.ProbeReport) time.Duration {
		var m time.Duration
		for _, x := range r.Results {
			if x.OK {
				m = max(m, x.Took)
			}
		}
		return m.Round(time.Millisecond)
	}
	fmt.Printf("METALLB MIGRATION: %v for the whole procedure; L2 client: %d probes, %d failed, longest outage %v (target < 1s), slowest answer %v, TCP retransmissions %v; BGP client: %d probes, %d lost (target 0), %d timed out or slower than 1s, slowest answer %v, TCP retransmissions %v; MetalLB speakers stopped at +%v\n",
		migDur.Round(time.Millisecond), repL2.Sent, repL2.Failed, l2Out.Round(time.Millisecond), slowest(repL2), retrans["L2"],
		repBGP.Sent, bgpLost, bgpSlow, slowest(repBGP), retrans["BGP"], stopSpeakers.Sub(migStart).Round(time.Millisecond))
	if repL2.Sent < 100 || repBGP.Sent < 100 {
		t.Errorf("too few probes: L2 %d, BGP %d", repL2.Sent, repBGP.Sent)
	}
	if l2Out >= time.Second {
		t.Errorf("L2: longest outage %v, want < 1s (outages %v)", l2Out, repL2.Outages)
	}
	if bgpLost != 0 {
		t.Errorf("BGP: %d probes lost, want 0 (outages %v)", bgpLost, repBGP.Outages)
	}
	if bgpSlow > 0 && bgpRetrans == 0 {
		t.Logf("BGP: %d probes timed out (after %v) or took over 1s, without a retransmission: the machine was starved (load), no packet was lost", bgpSlow, timeout)
	}
}

// collisionPeer is Herald's session to the router's IPv4 address from
// node1's IPv4 address, the one MetalLB's speaker holds.
const collisionPeer = `
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: tor-collision}
spec:
  myASN: 64600
  peerASN: 64512
  peerAddress: 198.18.0.2
  holdTime: 9s
  connectTime: 1s
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node1}}]
`

// checkCollision shows why Herald's sessions overlap MetalLB's from the
// other address family: Herald's session from node1's IPv4 address (another
// source port) does not come up while MetalLB's holds that address, and
// MetalLB's session is left as it was. It runs while Herald's IPv6 sessions
// carry node1's next hop too, so the router's FIB does not depend on it.
func (b *metallbBed) checkCollision(ctx context.Context, bgpHost netip.Prefix) {
	t := b.t
	n1 := b.Nodes[0].IP.String()
	sum, err := b.Router.BGPSummary(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	before := sum[n1]
	b.applyDocs(ctx, collisionPeer, func(string) bool { return true })
	time.Sleep(8 * time.Second) // connectTime 1s: several attempts
	if sum, err = b.Router.BGPSummary(ctx, false); err != nil {
		t.Fatal(err)
	}
	after := sum[n1]
	ri, err := b.Resource(sessionStateGVK, testbed.HeraldNamespace)
	if err != nil {
		t.Fatal(err)
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var herald map[string]any
	for _, o := range list.Items {
		if st, _, _ := unstructured.NestedMap(o.Object, "status"); st["peer"] == "tor-collision" {
			herald = st
		}
	}
	log, _ := b.Router.Vtysh(ctx, "show bgp neighbors "+n1)
	t.Logf("router's neighbour %s before: %+v; after Herald dialled it for 8s: %+v; Herald's session state: %v", n1, before, after, herald)
	if herald == nil || herald["state"] == "Established" {
		t.Errorf("Herald's session from node1's IPv4 address: %v, want not Established while MetalLB's holds it", herald)
	}
	if after.State != "Established" || after.ConnectionsUp != before.ConnectionsUp {
		t.Errorf("MetalLB's session changed: before %+v, after %+v\n%s", before, after, tail(log, 30))
	}
	rd, err := b.Resource(schema.GroupVersionKind{Group: "herald.io", Version: "v1beta1", Kind: "BGPPeer"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.Delete(ctx, "tor-collision", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// retransmissions reads the TCP retransmission counters of a namespace.
func (b *metallbBed) retransmissions(ctx context.Context, ns testbed.NS) map[string]int64 {
	out, err := ns.Output(ctx, "nstat", "-asz", "TcpRetransSegs", "TcpExtTCPSynRetrans")
	if err != nil {
		b.t.Fatal(err)
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			m[f[0]] = v
		}
	}
	return m
}
