package e2etest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// designsListenPort is the port the speakers of TestBGPDesigns accept
// router-initiated sessions on: above 1023, so the speaker needs no
// CAP_NET_BIND_SERVICE.
const designsListenPort = 1790

// The extra links of TestBGPDesigns, inside the bed's namespaces.
var (
	// The VRF link between node2 and the router.
	tenantNodeIP   = netip.MustParseAddr("198.18.40.1")
	tenantRouterIP = netip.MustParseAddr("198.18.40.2")
)

// TestBGPDesigns runs the data-centre designs on one dual-stack 2-node bed
// with FRR (198.18.0.2) and BIRD 2 (198.18.0.3):
//
//   - Passive: FRR dials node1 on port 1790 (BGPPeer passive: true); BIRD
//     dials node1 too, is no peer of node1, and is refused; BIRD dials node2,
//     whose BGPPeer for it is passive with dynamicASN internal.
//   - DynamicASN: node2 peers with FRR with dynamicASN external (eBGP, AS
//     64512 learned from the OPEN) and with BIRD with dynamicASN internal.
//   - Unnumbered: node1 peers with FRR over a link that has no IPv4
//     address (interface: un0; FRR: neighbor un1 interface remote-as
//     external); the IPv4 and IPv6 prefixes arrive with link-local next hops
//     and the client behind the router reaches the pods over that link.
//   - VRF: node2 peers with FRR from a VRF device; the VRF pool reaches only
//     that peer.
//   - UnnumberedBIRD: node2 peers with BIRD 2 over a link-local-only link
//     (BIRD's radv and dynamic BGP on the interface).
func TestBGPDesigns(t *testing.T) {
	needRoot(t)
	bed := testbed.Start(t, testbed.Options{Nodes: 2, PodsPerNode: 1, Router: true, DualStack: true})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	n1, n2 := bed.Nodes[0], bed.Nodes[1]
	secret := make([]byte, 32)
	rand.Read(secret)
	if _, err := bed.Client.CoreV1().Secrets(testbed.HeraldNamespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "herald-memberlist"}, Data: map[string][]byte{"secretkey": secret},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The unnumbered link: node1 un0 <-> router un1, IPv6 link-local only.
	// accept_ra=2: the node forwards, and a forwarding interface ignores
	// router advertisements otherwise (the router's link-local address
	// must reach the neighbour table).
	sh(t, ctx, "ip", "link", "add", "un0", "netns", n1.NS.Name, "type", "veth", "peer", "name", "un1", "netns", bed.Router.Name)
	for _, s := range []struct {
		ns   testbed.NS
		dev  string
		more []string
	}{{n1.NS, "un0", []string{"net.ipv6.conf.un0.accept_ra=2"}}, {bed.Router.NS, "un1", nil}} {
		for _, kv := range append([]string{"net.ipv6.conf." + s.dev + ".accept_dad=0", "net.ipv4.conf." + s.dev + ".rp_filter=0"}, s.more...) {
			k, v, _ := strings.Cut(kv, "=")
			if err := s.ns.Sysctl(ctx, k, v); err != nil {
				t.Fatal(err)
			}
		}
		sh(t, ctx, "ip", "-n", s.ns.Name, "link", "set", s.dev, "up")
	}
	// The VRF link: node2's VRF "tenant" <-> router vt1. Where the kernel
	// has no VRF support (CONFIG_NET_VRF), the node's end of the link is
	// itself the device named "tenant", and its address has no route in
	// the main table: the session comes up only if its socket is bound to
	// that device.
	realVRF := exec.CommandContext(ctx, "ip", "-n", n2.NS.Name, "link", "add", "tenant", "type", "vrf", "table", "10").Run() == nil
	nodeEnd := "tenant"
	if realVRF {
		nodeEnd = "vt0"
	}
	sh(t, ctx, "ip", "link", "add", nodeEnd, "netns", n2.NS.Name, "type", "veth", "peer", "name", "vt1", "netns", bed.Router.Name)
	sh(t, ctx, "ip", "-n", bed.Router.Name, "addr", "add", netip.PrefixFrom(tenantRouterIP, 30).String(), "dev", "vt1")
	sh(t, ctx, "ip", "-n", bed.Router.Name, "link", "set", "vt1", "up")
	if realVRF {
		sh(t, ctx, "ip", "-n", n2.NS.Name, "link", "set", "vt0", "master", "tenant")
		sh(t, ctx, "ip", "-n", n2.NS.Name, "addr", "add", netip.PrefixFrom(tenantNodeIP, 30).String(), "dev", "vt0")
		sh(t, ctx, "ip", "-n", n2.NS.Name, "link", "set", "vt0", "up")
		sh(t, ctx, "ip", "-n", n2.NS.Name, "link", "set", "tenant", "up")
	} else {
		t.Logf("this kernel has no VRF device type (CONFIG_NET_VRF): the VRF scenario binds to a plain device named tenant whose address has no route")
		sh(t, ctx, "ip", "-n", n2.NS.Name, "addr", "add", netip.PrefixFrom(tenantNodeIP, 30).String(), "dev", "tenant", "noprefixroute")
		sh(t, ctx, "ip", "-n", n2.NS.Name, "link", "set", "tenant", "up")
	}

	frr := []string{
		"interface un1", " ipv6 nd ra-interval 1", " no ipv6 nd suppress-ra", "exit",
		fmt.Sprintf("router bgp %d", testbed.RouterASN),
		// Passive on node1: FRR dials the node's listen port.
		fmt.Sprintf(" neighbor %s remote-as 64600", n1.IP),
		fmt.Sprintf(" neighbor %s port %d", n1.IP, designsListenPort),
		fmt.Sprintf(" neighbor %s timers 3 9", n1.IP),
		fmt.Sprintf(" neighbor %s timers connect 1", n1.IP),
		// Unnumbered with node1.
		" neighbor un1 interface remote-as external",
		" neighbor un1 timers 3 9",
		// The VRF session with node2.
		fmt.Sprintf(" neighbor %s remote-as 64600", tenantNodeIP),
		fmt.Sprintf(" neighbor %s timers 3 9", tenantNodeIP),
		" address-family ipv4 unicast",
		fmt.Sprintf("  neighbor %s activate", n1.IP),
		"  neighbor un1 activate",
		fmt.Sprintf("  neighbor %s activate", tenantNodeIP),
		" exit-address-family",
		" address-family ipv6 unicast",
		fmt.Sprintf("  neighbor %s activate", n1.IP),
		"  neighbor un1 activate",
		"  neighbor NODES activate",
		" exit-address-family",
	}
	if err := bed.Router.Configure(ctx, frr...); err != nil {
		t.Fatal(err)
	}
	// BIRD: iBGP with node2 (AS 64600), dialling its listen port; and a
	// session it dials to node1, which has no BGPPeer for it.
	birdConf := fmt.Sprintf(`router id %[1]s;
protocol device {}
protocol bgp n2 {
  local %[1]s as 64600;
  neighbor %[2]s port %[4]d as 64600;
  direct;
  hold time 9; connect retry time 1; error wait time 1, 5;
  ipv4 { import all; export none; };
}
protocol bgp n1 {
  local %[1]s as %[5]d;
  neighbor %[3]s port %[4]d as 64600;
  hold time 9; connect retry time 1; error wait time 1, 5;
  ipv4 { import all; export none; };
}
`, testbed.BIRDFabricIP, n2.IP, n1.IP, designsListenPort, testbed.BIRDASN)
	bird, err := bed.StartBIRD(ctx, birdConf)
	if err != nil {
		t.Fatal(err)
	}

	apply(t, bed, fmt.Sprintf(`
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: designs}
spec: {addresses: ["203.0.113.160/28", "2001:db8:203::a0/124"], autoAssign: false}
---
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: unnumbered}
spec: {addresses: ["203.0.113.176/28", "2001:db8:203::b0/124"], autoAssign: false}
---
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: tenant}
spec: {addresses: ["203.0.113.192/28"], autoAssign: false}
---
apiVersion: herald.io/v1beta1
kind: BGPAdvertisement
metadata: {name: designs}
spec: {ipAddressPools: [designs], peers: [passive-frr, dyn-frr, dyn-bird]}
---
apiVersion: herald.io/v1beta1
kind: BGPAdvertisement
metadata: {name: unnumbered}
spec: {ipAddressPools: [unnumbered], peers: [unnumbered]}
---
apiVersion: herald.io/v1beta1
kind: BGPAdvertisement
metadata: {name: tenant}
spec: {ipAddressPools: [tenant], peers: [tenant]}
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: passive-frr}
spec: {myASN: 64600, peerASN: %[1]d, peerAddress: %[2]s, passive: true, holdTime: 9s,
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node1}}]}
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: unnumbered}
spec: {myASN: 64600, dynamicASN: external, interface: un0, holdTime: 9s, connectTime: 1s,
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node1}}]}
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: dyn-frr}
spec: {myASN: 64600, dynamicASN: external, peerAddress: %[2]s, holdTime: 9s, connectTime: 1s,
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node2}}]}
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: dyn-bird}
spec: {myASN: 64600, dynamicASN: internal, peerAddress: %[3]s, passive: true, holdTime: 9s,
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node2}}]}
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: tenant}
spec: {myASN: 64600, peerASN: %[1]d, peerAddress: %[4]s, vrf: tenant, holdTime: 9s, connectTime: 1s,
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node2}}]}
`, testbed.RouterASN, testbed.RouterFabricIP, testbed.BIRDFabricIP, tenantRouterIP))
	for _, n := range bed.Nodes {
		patchLabels(t, ctx, bed, n.Name, map[string]any{"kubernetes.io/hostname": n.Name})
	}
	startController(t, bed, "controller")
	b := &bgpBed{Bed: bed, t: t, speakers: map[string]*testbed.Process{}, starts: map[string]int{}}
	if b.speakerBin, err = bed.HeraldBinary(ctx, "speaker"); err != nil {
		t.Fatal(err)
	}
	for _, n := range bed.Nodes {
		b.startSpeaker(ctx, n, "--bgp-listen-port", fmt.Sprint(designsListenPort))
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range bed.Processes() {
			if strings.HasPrefix(p.Name, "speaker-") {
				if data, err := os.ReadFile(p.Log); err == nil {
					var keep []string
					for _, l := range strings.Split(string(data), "\n") {
						if !strings.Contains(l, `"level":"DEBUG"`) && strings.Contains(l, "BGP") {
							keep = append(keep, l)
						}
					}
					t.Logf("%s log, BGP lines (tail):\n%s", p.Name, tail(strings.Join(keep, "\n"), 30))
				}
			}
		}
		out, _ := bed.Router.Vtysh(context.Background(), "show bgp summary", "show ipv6 neighbors")
		t.Logf("FRR:\n%s", out)
		out, _ = bird.Birdc(context.Background(), "show protocols all")
		t.Logf("BIRD:\n%s", out)
		b.logSessionStates(context.Background())
	})

	t.Run("Passive", func(t *testing.T) {
		b := b.with(t)
		sum := b.established(false, 60*time.Second, n1.IP.String())
		t.Logf("FRR dialled node1:%d: %+v", designsListenPort, sum[n1.IP.String()])
		eventually(t, 30*time.Second, "BIRD's session to node2's listen port (passive, dynamicASN internal)", func() (bool, string) {
			_, info, err := bird.ProtocolState(ctx, "n2")
			return err == nil && info == "Established", info
		})
		// BIRD dials node1 too, which has no BGPPeer for it: refused.
		never(t, 5*time.Second, "BIRD's session to node1, which has no peer for it", func() (bool, string) {
			_, info, _ := bird.ProtocolState(ctx, "n1")
			return info == "Established", info
		})
		_, info, _ := bird.ProtocolState(ctx, "n1")
		t.Logf("BIRD -> node1 (no BGPPeer): %s", info)
	})

	t.Run("DynamicASN", func(t *testing.T) {
		b := b.with(t)
		sum := b.established(false, 60*time.Second, n2.IP.String())
		if nb := sum[n2.IP.String()]; nb.RemoteAS != 64600 {
			t.Errorf("FRR sees node2 with AS %d", nb.RemoteAS)
		}
		ips := b.serviceIPs(ctx, testbed.ServiceSpec{Name: "designs", Pods: append(slices.Clone(n1.Pods), n2.Pods...), Mutate: func(s *corev1.Service) {
			s.Annotations = map[string]string{"herald.io/address-pool": "designs"}
		}}, 1)
		// eBGP from node2 (AS path 64600), and from node1's passive session.
		eventually(t, 30*time.Second, "FRR has the designs prefix from node1 and node2", func() (bool, string) {
			paths, err := b.rib(ctx, host(ips[0]))
			var from []string
			for _, p := range paths {
				from = append(from, p.Peer.PeerID+"/"+p.Peer.Type)
			}
			slices.Sort(from)
			return err == nil && slices.Contains(from, n1.IP.String()+"/external") && slices.Contains(from, n2.IP.String()+"/external"), fmt.Sprint(from, err)
		})
		// iBGP to BIRD (dynamicASN internal).
		eventually(t, 30*time.Second, "BIRD has the designs prefix over iBGP from node2", func() (bool, string) {
			n, err := bird.RoutesFrom(ctx, host(ips[0]), "n2")
			return err == nil && n == 1, fmt.Sprint(n, err)
		})
		out, _ := bird.Birdc(ctx, "show route "+host(ips[0]).String()+" all")
		if !strings.Contains(out, "BGP.as_path: \n") && !strings.Contains(out, "BGP.as_path:\n") && !strings.Contains(out, "BGP.as_path: ") {
			t.Logf("BIRD route: %s", out)
		}
		if strings.Contains(out, "BGP.as_path: 64600") {
			t.Errorf("BIRD got an AS path over iBGP: %s", out)
		}
		// The unnumbered and VRF pools' prefixes are not sent to these peers.
		for _, p := range []string{"203.0.113.176/28", "203.0.113.192/28"} {
			if n, _ := bird.RoutesFrom(ctx, netip.MustParsePrefix(p), "n2"); n != 0 {
				t.Errorf("BIRD has %s", p)
			}
		}
	})

	var unnumberedIPs []netip.Addr
	t.Run("Unnumbered", func(t *testing.T) {
		b := b.with(t)
		eventually(t, 60*time.Second, "FRR's unnumbered session with node1", func() (bool, string) {
			var nb map[string]map[string]any
			if err := b.Router.JSON(ctx, "show bgp neighbors un1 json", &nb); err != nil {
				return false, err.Error()
			}
			st := fmt.Sprint(nb["un1"]["bgpState"])
			return st == "Established", st
		})
		unnumberedIPs = b.serviceIPs(ctx, testbed.ServiceSpec{Name: "unnumbered", Pods: n1.Pods, DualStack: true, Mutate: func(s *corev1.Service) {
			s.Annotations = map[string]string{"herald.io/address-pool": "unnumbered"}
		}}, 2)
		for _, ip := range unnumberedIPs {
			var last string
			eventually(t, 30*time.Second, "kernel route to "+ip.String()+" over the unnumbered link with a link-local next hop", func() (bool, string) {
				gw, dev, raw := linkRoute(ctx, b.Router.NS, host(ip))
				last = raw
				return gw.IsLinkLocalUnicast() && dev == "un1", raw
			})
			t.Logf("router: %s", last)
		}
		// Only node1's unnumbered session carries the pool.
		paths, _ := b.rib(ctx, host(unnumberedIPs[0]))
		if len(paths) != 1 {
			t.Errorf("paths to %s: %+v, want the unnumbered one only", unnumberedIPs[0], paths)
		}
		for _, ip := range unnumberedIPs {
			eventually(t, 30*time.Second, "client behind the router reaches "+ip.String()+" over the unnumbered link", func() (bool, string) {
				rctx, c := context.WithTimeout(ctx, 2*time.Second)
				defer c()
				r, err := b.ClientExt.Get(rctx, testbed.HostPort(ip, 80))
				return err == nil && r.Pod == n1.Pods[0].Name, fmt.Sprint(r, err)
			})
			t.Logf("client behind the router reached %s at %s over the unnumbered link", n1.Pods[0].Name, ip)
		}
	})

	t.Run("VRF", func(t *testing.T) {
		b := b.with(t)
		b.established(false, 60*time.Second, tenantNodeIP.String())
		ips := b.serviceIPs(ctx, testbed.ServiceSpec{Name: "tenant", Pods: n2.Pods, Mutate: func(s *corev1.Service) {
			s.Annotations = map[string]string{"herald.io/address-pool": "tenant"}
		}}, 1)
		eventually(t, 30*time.Second, "FRR has the tenant prefix from the VRF session only", func() (bool, string) {
			paths, err := b.rib(ctx, host(ips[0]))
			var from []string
			for _, p := range paths {
				from = append(from, p.Peer.PeerID)
			}
			return err == nil && slices.Equal(from, []string{tenantNodeIP.String()}), fmt.Sprint(from, err)
		})
		never(t, 3*time.Second, "BIRD has the tenant prefix", func() (bool, string) {
			n, _ := bird.RoutesFrom(ctx, host(ips[0]), "n2")
			return n != 0, fmt.Sprint(n)
		})
		// The session's socket is bound to the device: ss shows the
		// local address with the device ("198.18.40.1%tenant:PORT").
		out, _ := n2.Output(ctx, "ss", "-tnH", "state", "established", "dst", tenantRouterIP.String())
		if !strings.Contains(string(out), tenantNodeIP.String()+"%tenant:") {
			t.Errorf("node2's session to %s: %q", tenantRouterIP, out)
		}
		t.Logf("node2 socket: %s", strings.TrimSpace(string(out)))
	})

	// BIRD 2 as the unnumbered router: its radv protocol advertises it on
	// the link (router lifetime 0), and it accepts the node's session on
	// any link-local address of the interface (dynamic BGP, neighbor
	// range), with the extended next hop for IPv4.
	t.Run("UnnumberedBIRD", func(t *testing.T) {
		b := b.with(t)
		sh(t, ctx, "ip", "link", "add", "un2", "netns", n2.NS.Name, "type", "veth", "peer", "name", "un3", "netns", bird.NS.Name)
		for _, s := range []struct {
			ns  testbed.NS
			dev string
		}{{n2.NS, "un2"}, {bird.NS, "un3"}} {
			for _, kv := range []string{"net.ipv6.conf." + s.dev + ".accept_dad=0", "net.ipv6.conf." + s.dev + ".accept_ra=2"} {
				k, v, _ := strings.Cut(kv, "=")
				if err := s.ns.Sysctl(ctx, k, v); err != nil {
					t.Fatal(err)
				}
			}
			sh(t, ctx, "ip", "-n", s.ns.Name, "link", "set", s.dev, "up")
		}
		if err := bird.Reconfigure(ctx, birdConf+fmt.Sprintf(`
protocol radv {
  interface "un3" { min ra interval 3; max ra interval 4; default lifetime 0; };
}
protocol bgp bun {
  local as %d;
  neighbor range fe80::/10 as 64600;
  interface "un3";
  dynamic name "bun";
  hold time 9;
  ipv4 { import all; export none; extended next hop on; };
  ipv6 { import all; export none; };
}
`, testbed.BIRDASN)); err != nil {
			t.Fatal(err)
		}
		apply(t, bed, fmt.Sprintf(`
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: bird-unnumbered}
spec: {addresses: ["203.0.113.208/28", "2001:db8:203::d0/124"], autoAssign: false}
---
apiVersion: herald.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bird-unnumbered}
spec: {ipAddressPools: [bird-unnumbered], peers: [bird-unnumbered]}
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: bird-unnumbered}
spec: {myASN: 64600, peerASN: %d, interface: un2, holdTime: 9s, connectTime: 1s,
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node2}}]}
`, testbed.BIRDASN))
		ips := b.serviceIPs(ctx, testbed.ServiceSpec{Name: "bird-unnumbered", Pods: n2.Pods, DualStack: true, Mutate: func(s *corev1.Service) {
			s.Annotations = map[string]string{"herald.io/address-pool": "bird-unnumbered"}
		}}, 2)
		for _, ip := range ips {
			eventually(t, 60*time.Second, "BIRD's route to "+ip.String()+" over un3 with a link-local next hop", func() (bool, string) {
				out, err := bird.Birdc(ctx, "show route "+host(ip).String())
				return err == nil && strings.Contains(out, "via fe80::") && strings.Contains(out, "on un3"), out
			})
			out, _ := bird.Birdc(ctx, "show route "+host(ip).String())
			t.Logf("BIRD: %s", strings.TrimSpace(out))
		}
	})

	t.Run("LatencyUnnumbered", func(t *testing.T) {
		if len(unnumberedIPs) == 0 {
			t.Skip("no unnumbered session")
		}
		b := b.with(t)
		// The controller writes each Service's status; the clock starts
		// when the test sees it (polled every 5 ms).
		measure := func(what, pool, from string) time.Duration {
			var ds []time.Duration
			for i := range 8 {
				name := fmt.Sprintf("lat-%s-%d", pool, i)
				if _, err := b.BackendService(ctx, testbed.ServiceSpec{Name: name, Pods: n1.Pods, Mutate: func(s *corev1.Service) {
					s.Annotations = map[string]string{"herald.io/address-pool": pool}
				}}); err != nil {
					t.Fatal(err)
				}
				var ip netip.Addr
				for deadline := time.Now().Add(20 * time.Second); !ip.IsValid(); time.Sleep(5 * time.Millisecond) {
					svc, err := b.Client.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
					if err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
						ip = netip.MustParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s got no IP", name)
					}
				}
				start := time.Now()
				for {
					paths, _ := b.rib(ctx, host(ip))
					if slices.ContainsFunc(paths, func(p ribPath) bool { return strings.Contains(p.Peer.PeerID, from) }) {
						break
					}
					if time.Since(start) > 10*time.Second {
						t.Fatalf("%s not in FRR's RIB from %q after 10s: %+v", ip, from, paths)
					}
					time.Sleep(2 * time.Millisecond)
				}
				ds = append(ds, time.Since(start))
			}
			slices.Sort(ds)
			t.Logf("FIGURE status seen -> prefix in FRR's RIB from node1, %s session, %d Services one by one: median %v, min %v, max %v (vtysh polling adds ~10 ms)",
				what, len(ds), median(ds).Round(time.Millisecond), ds[0].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
			return median(ds)
		}
		measure("numbered (passive)", "designs", n1.IP.String())
		// The unnumbered pool goes to the unnumbered session only.
		if m := measure("unnumbered", "unnumbered", ""); m > 2*time.Second {
			t.Errorf("unnumbered median %v, want < 2s", m)
		}
	})
}

// sh runs a command in the root namespace (ip -n ... for the bed's).
func sh(t *testing.T, ctx context.Context, argv ...string) {
	t.Helper()
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// never checks that cond stays false for d.
func never(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if ok, detail := cond(); ok {
			t.Fatalf("unexpectedly: %s (%s)", what, detail)
		}
	}
}

func patchLabels(t *testing.T, ctx context.Context, bed *testbed.Bed, node string, labels map[string]any) {
	t.Helper()
	b := &bgpBed{Bed: bed, t: t}
	b.label(ctx, node, labels)
}

// linkRoute returns the gateway and device of ns's kernel route to p, and
// the route as `ip -j route` prints it. An IPv4 route over an IPv6 next
// hop (RFC 8950) has "via": {"family": "inet6", "host": ...} instead of
// "gateway".
func linkRoute(ctx context.Context, ns testbed.NS, p netip.Prefix) (netip.Addr, string, string) {
	fam := "-4"
	if p.Addr().Is6() {
		fam = "-6"
	}
	out, err := ns.Output(ctx, "ip", "-j", fam, "route", "show", p.String())
	if err != nil {
		return netip.Addr{}, "", err.Error()
	}
	var routes []struct {
		Gateway string `json:"gateway"`
		Via     struct {
			Host string `json:"host"`
		} `json:"via"`
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal(out, &routes); err != nil || len(routes) == 0 {
		return netip.Addr{}, "", string(out)
	}
	r := routes[0]
	gw := r.Gateway
	if gw == "" {
		gw = r.Via.Host
	}
	a, _ := netip.ParseAddr(gw)
	return a, r.Dev, strings.TrimSpace(string(out))
}
