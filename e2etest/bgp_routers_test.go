package e2etest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// TestBGPRouters runs the speaker against two router implementations at
// once, FRR (198.18.0.2) and BIRD 2 (198.18.0.3), both with BFD and
// graceful restart, on one 2-node bed. It checks what a network team
// would check on its routers: a speaker restart (a rollout) keeps the
// routes; SIGTERM and a peer change say "Administrative Shutdown" with a
// message; a password change is one event with its cause, and a wrong
// password is explained; a router that sends routes gets none accepted
// and only its own session is closed.
func TestBGPRouters(t *testing.T) {
	needRoot(t)
	bed := testbed.Start(t, testbed.Options{Nodes: 2, PodsPerNode: 1, Router: true})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	n1, n2 := bed.Nodes[0], bed.Nodes[1]

	secret := make([]byte, 32)
	rand.Read(secret)
	if _, err := bed.Client.CoreV1().Secrets(testbed.HeraldNamespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "herald-memberlist"}, Data: map[string][]byte{"secretkey": secret},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// FRR: explicit neighbours (see startBGP for why not the dynamic
	// ones), graceful restart, BFD 1s x 3. (BFD runs on Go timers in the
	// speaker: with 6 engineers' tests on 2 CPUs, load averages of 50 and
	// more make 300ms x 3 flap; the restart below outlasts 3s anyway.)
	frr := []string{"bfd", " profile fast", "  receive-interval 1000", "  transmit-interval 1000", "  detect-multiplier 3", " exit", "exit",
		fmt.Sprintf("router bgp %d", testbed.RouterASN), " bgp graceful-restart"}
	for _, n := range bed.Nodes {
		frr = append(frr, fmt.Sprintf(" neighbor %s peer-group NODES", n.IP))
	}
	// check-control-plane-failure: a BFD down while a neighbour is in
	// graceful restart (its TCP session closed without a NOTIFICATION)
	// is part of the restart, not a failure. Without it FRR drops the
	// stale routes as soon as BFD goes down, AdminDown or not.
	frr = append(frr, " neighbor NODES bfd", " neighbor NODES bfd profile fast", " neighbor NODES bfd check-control-plane-failure")
	if err := bed.Router.Configure(ctx, frr...); err != nil {
		t.Fatal(err)
	}
	bird, err := bed.StartBIRD(ctx, birdConfig(bed, 0))
	if err != nil {
		t.Fatal(err)
	}
	apply(t, bed, fmt.Sprintf(`
apiVersion: herald.io/v1beta1
kind: IPAddressPool
metadata: {name: routers}
spec: {addresses: ["203.0.113.128/28"]}
---
apiVersion: herald.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routers}
spec: {ipAddressPools: [routers]}
---
apiVersion: herald.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 1000, transmitInterval: 1000, detectMultiplier: 3}
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: frr}
spec: {myASN: 64600, peerASN: %d, peerAddress: %s, holdTime: 9s, connectTime: 1s, bfdProfile: fast,
  enableGracefulRestart: true, gracefulRestartTime: 60s}
---
apiVersion: herald.io/v1beta1
kind: BGPPeer
metadata: {name: bird}
spec: {myASN: 64600, peerASN: %d, peerAddress: %s, holdTime: 9s, connectTime: 1s, bfdProfile: fast,
  enableGracefulRestart: true, gracefulRestartTime: 60s}
`, testbed.RouterASN, testbed.RouterFabricIP, testbed.BIRDASN, testbed.BIRDFabricIP))
	startController(t, bed, "controller")
	speakerBin, err := bed.HeraldBinary(ctx, "speaker")
	if err != nil {
		t.Fatal(err)
	}
	speakers := map[string]*testbed.Process{}
	starts := map[string]int{}
	startSpeaker := func(n *testbed.Node) {
		t.Helper()
		starts[n.Name]++
		p, err := n.Start(ctx, fmt.Sprintf("speaker-%s-%d", n.Name, starts[n.Name]), speakerBin,
			"--kubeconfig", bed.SpeakerKubeconfig, "--log-level", "debug", "--bgp-status-interval", "2s",
			"--bgp-max-received-prefixes", "1000")
		if err != nil {
			t.Fatal(err)
		}
		speakers[n.Name] = p
	}
	for _, n := range bed.Nodes {
		startSpeaker(n)
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
						if !strings.Contains(l, `"level":"DEBUG"`) && (strings.Contains(l, "BGP") || strings.Contains(l, "BFD")) {
							keep = append(keep, l)
						}
					}
					t.Logf("%s log, BGP and BFD lines (tail):\n%s", p.Name, tail(strings.Join(keep, "\n"), 40))
				}
			}
		}
		out, _ := bed.Router.Vtysh(context.Background(), "show bgp summary", "show bfd peers brief")
		t.Logf("FRR:\n%s", out)
		out, _ = bird.Birdc(context.Background(), "show protocols all")
		t.Logf("BIRD:\n%s", out)
	})
	rb := &bgpBed{Bed: bed, t: t}

	// Both routers see both nodes, with BFD up.
	birdUp := func(n *testbed.Node) (bool, string) {
		st, info, err := bird.ProtocolState(ctx, birdProto(n))
		return err == nil && st == "up" && strings.Contains(info, "Established"), fmt.Sprint(st, " ", info, " ", err)
	}
	rb.established(false, 60*time.Second, n1.IP.String(), n2.IP.String())
	for _, n := range bed.Nodes {
		eventually(t, 60*time.Second, "BIRD session with "+n.Name, func() (bool, string) { return birdUp(n) })
		for _, peer := range []string{"frr", "bird"} {
			rb.waitSessionState(n.Name+"-"+peer, 30*time.Second, func(st map[string]any) bool {
				return st["state"] == "Established" && st["bfdState"] == "Up"
			})
		}
	}
	ips := rb.serviceIPs(ctx, testbed.ServiceSpec{Name: "web", Pods: append(append([]*testbed.Pod{}, n1.Pods...), n2.Pods...)}, 1)
	prefix := host(ips[0])
	rb.waitNextHops(prefix, 15*time.Second, n1.IP.String(), n2.IP.String())
	eventually(t, 15*time.Second, "BIRD has the prefix from both nodes", func() (bool, string) {
		a, _ := bird.RoutesFrom(ctx, prefix, birdProto(n1))
		b, _ := bird.RoutesFrom(ctx, prefix, birdProto(n2))
		return a == 1 && b == 1, fmt.Sprint(a, b)
	})

	// frrHas reports whether FRR's BGP table holds a path for prefix
	// from node n (stale or not).
	frrHas := func(n *testbed.Node) bool {
		paths, err := rb.rib(ctx, prefix)
		if err != nil {
			return true // do not count a vtysh hiccup as a loss
		}
		for _, p := range paths {
			if p.Peer.PeerID == n.IP.String() {
				return true
			}
		}
		return false
	}

	t.Run("GracefulRestartWithBFD", func(t *testing.T) {
		// A rollout: SIGTERM, 5 s down (more than the 3s BFD detection
		// time), a new speaker. Both routers must keep node1's path the whole time.
		var mu sync.Mutex
		var lost []string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if !frrHas(n1) {
					mu.Lock()
					lost = append(lost, "FRR at "+time.Now().Format("15:04:05.000"))
					mu.Unlock()
				}
				if n, err := bird.RoutesFrom(ctx, prefix, birdProto(n1)); err == nil && n == 0 {
					mu.Lock()
					lost = append(lost, "BIRD at "+time.Now().Format("15:04:05.000"))
					mu.Unlock()
				}
			}
		}()
		start := time.Now()
		if err := speakers["node1"].Signal(15); err != nil {
			t.Fatal(err)
		}
		if err := speakers["node1"].Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		startSpeaker(n1)
		rb.established(false, 60*time.Second, n1.IP.String())
		eventually(t, 60*time.Second, "BIRD session with node1 back", func() (bool, string) { return birdUp(n1) })
		rb.waitSessionState("node1-bird", 30*time.Second, func(st map[string]any) bool { return st["bfdState"] == "Up" })
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		t.Logf("FIGURE graceful restart with BFD: speaker restarted, sessions back after %v", time.Since(start).Round(time.Millisecond))
		if len(lost) > 0 {
			t.Errorf("node1's path was missing %d times during the restart: %v", len(lost), lost[:min(len(lost), 5)])
		}
		out, _ := bed.Router.Vtysh(ctx, "show bfd peer "+n1.IP.String())
		t.Logf("FRR's BFD session with node1 after the restart:\n%s", out)
	})

	t.Run("AdministrativeShutdown", func(t *testing.T) {
		// A change of the peer: one session reset, with a Cease /
		// Administrative Shutdown that names it; then SIGTERM without
		// graceful restart: Administrative Shutdown, not Peer
		// De-configured.
		patchPeer(t, bed, "frr", `{"spec":{"enableGracefulRestart":false,"gracefulRestartTime":null}}`)
		waitNodeEvent(t, bed, "node2", "BGPSessionDown", "BGPPeer frr changed (gracefulRestart)")
		rb.established(false, 30*time.Second, n1.IP.String(), n2.IP.String())
		// FRR's "last reset" of the neighbour is overwritten when the new
		// session comes up, so it is only logged here; the SIGTERM below
		// leaves it in place.
		t.Logf("FRR after the peer change: %s", frrLastNotification(ctx, bed, n2.IP))
		var msg string
		if err := speakers["node2"].Signal(15); err != nil {
			t.Fatal(err)
		}
		if err := speakers["node2"].Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		// FRR 8.4 overwrites the neighbour's last reset with "BFD down
		// received" when the AdminDown that follows the NOTIFICATION
		// arrives, so its JSON cannot show the NOTIFICATION; the unit test
		// TestShutdownWithdrawsAndCeases checks the subcode on the wire.
		time.Sleep(time.Second)
		msg = frrLastNotification(ctx, bed, n2.IP)
		t.Logf("FRR after SIGTERM: %s", msg)
		startSpeaker(n2)
		rb.established(false, 60*time.Second, n2.IP.String())
	})

	t.Run("PasswordChange", func(t *testing.T) {
		for _, n := range bed.Nodes {
			eventually(t, 60*time.Second, "BIRD session with "+n.Name, func() (bool, string) { return birdUp(n) })
		}
		patchPeer(t, bed, "bird", `{"spec":{"password":"not-birds-password"}}`)
		for _, n := range bed.Nodes {
			waitNodeEvent(t, bed, n.Name, "BGPSessionDown", "BGPPeer bird changed (password)")
		}
		// BIRD has no password: the node's SYNs carry an MD5 option BIRD's
		// kernel drops. The state object and one event explain it.
		rb.waitSessionState("node1-bird", 40*time.Second, func(st map[string]any) bool {
			return st["state"] != "Established" && strings.Contains(fmt.Sprint(st["lastError"]), "TCP-MD5 password is configured")
		})
		waitNodeEvent(t, bed, "node1", "BGPSessionNotEstablished", "TCP-MD5 password is configured")
		list, err := bed.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Node,involvedObject.name=node1,reason=BGPSessionDown",
		})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range list.Items {
			if strings.Contains(e.Message, "changed (password)") {
				n += int(max(e.Count, 1))
			}
		}
		if n != 1 {
			t.Errorf("%d BGPSessionDown events for the password change on node1, want 1", n)
		}
		patchPeer(t, bed, "bird", `{"spec":{"password":null}}`)
		for _, n := range bed.Nodes {
			eventually(t, 60*time.Second, "BIRD session with "+n.Name+" back", func() (bool, string) { return birdUp(n) })
		}
	})

	t.Run("RouterSendsRoutes", func(t *testing.T) {
		// BIRD sends 1,500 prefixes to every node, more than the guard's
		// 1,000: each node closes its BIRD session with Cease / maximum
		// number of prefixes and says why; the FRR sessions are untouched.
		for _, n := range bed.Nodes {
			eventually(t, 60*time.Second, "BIRD session with "+n.Name, func() (bool, string) { return birdUp(n) })
		}
		before, _ := bed.Router.BGPSummary(ctx, false)
		if err := bird.Reconfigure(ctx, birdConfig(bed, 1500)); err != nil {
			t.Fatal(err)
		}
		// BIRD restarts its sessions (and BFD) when it reloads a changed
		// protocol, so a node may see that reset first and come back after
		// the flood: at least one node sees the guard.
		eventually(t, 40*time.Second, "a BGPSessionDown event naming the prefix guard", func() (bool, string) {
			list, err := bed.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "reason=BGPSessionDown"})
			if err != nil {
				return false, err.Error()
			}
			for _, e := range list.Items {
				if strings.Contains(e.Message, "the router sent more than 1000 ipv4-unicast prefixes") {
					t.Logf("event on %s: %s", e.InvolvedObject.Name, e.Message)
					return true, ""
				}
			}
			return false, fmt.Sprint(len(list.Items), " events")
		})
		after, _ := bed.Router.BGPSummary(ctx, false)
		for _, n := range bed.Nodes {
			ip := n.IP.String()
			if after[ip].State != "Established" || after[ip].ConnectionsUp != before[ip].ConnectionsUp {
				t.Errorf("FRR session with %s disturbed: %+v -> %+v", n.Name, before[ip], after[ip])
			}
		}
		if !frrHas(n1) || !frrHas(n2) {
			t.Error("the prefix left FRR")
		}
		rb.logSessionStates(ctx)
		if err := bird.Reconfigure(ctx, birdConfig(bed, 0)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PeersRemovedWithdraw", func(t *testing.T) {
		// Removing every BGPPeer stops each node's BGP server for good:
		// the routes are withdrawn and a Cease sent, graceful restart or
		// not (the bird peer has it, with 60 s). Neither router may keep
		// a stale path to a node that no longer announces. First the
		// BIRD sessions come back from the prefix guard, which a change of
		// the peer lifts.
		// A path BIRD kept as stale from a session that is down would pass
		// for one: the sessions must be up too, or the withdrawal has no
		// session to travel on.
		patchPeer(t, bed, "bird", `{"spec":{"connectTime":"2s"}}`)
		eventually(t, 60*time.Second, "BIRD has the prefix from both nodes over established sessions", func() (bool, string) {
			a, _ := bird.RoutesFrom(ctx, prefix, birdProto(n1))
			b, _ := bird.RoutesFrom(ctx, prefix, birdProto(n2))
			up1, st1 := birdUp(n1)
			up2, st2 := birdUp(n2)
			return a == 1 && b == 1 && up1 && up2, fmt.Sprint(a, " ", b, "; ", st1, "; ", st2)
		})
		rb.established(false, 30*time.Second, n1.IP.String(), n2.IP.String())
		ri, err := bed.Resource(schema.GroupVersionKind{Group: "herald.io", Version: "v1beta1", Kind: "BGPPeer"}, "")
		if err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		for _, name := range []string{"frr", "bird"} {
			if err := ri.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 15*time.Second, "no router keeps a path from the nodes (graceful-restart time 60 s)", func() (bool, string) {
			// birdc fails with "Network not found" when it has no route.
			absent := func(err error) bool { return err == nil || strings.Contains(err.Error(), "Network not found") }
			a, errA := bird.RoutesFrom(ctx, prefix, birdProto(n1))
			b, errB := bird.RoutesFrom(ctx, prefix, birdProto(n2))
			paths, errF := rb.rib(ctx, prefix)
			return absent(errA) && absent(errB) && errF == nil && a == 0 && b == 0 && len(paths) == 0,
				fmt.Sprintf("BIRD %d %d, FRR %d paths (%v %v %v)", a, b, len(paths), errA, errB, errF)
		})
		t.Logf("FIGURE every BGPPeer removed: both routers dropped the nodes' paths %v later", time.Since(begin).Round(time.Millisecond))
	})
}

// birdProto is the name of BIRD's BGP protocol for node n.
func birdProto(n *testbed.Node) string { return "node_" + n.Name }

// birdConfig is BIRD's configuration: one BGP protocol per node with
// graceful restart and BFD (1s x 3), importing what the nodes send;
// "bfd graceful" makes a BFD down start a graceful restart (BIRD, like
// FRR, otherwise reads an AdminDown as a failure and flushes the routes);
// with send > 0, also a static protocol of that many /24s exported to the
// nodes.
func birdConfig(bed *testbed.Bed, send int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "router id %s;\nprotocol device {}\n", testbed.BIRDFabricIP)
	s.WriteString("protocol bfd { interface \"eth0\" { min rx interval 1000 ms; min tx interval 1000 ms; multiplier 3; }; }\n")
	if send > 0 {
		s.WriteString("protocol static flood { ipv4;\n")
		for i := range send {
			fmt.Fprintf(&s, " route 10.%d.%d.0/24 blackhole;\n", 100+i/256, i%256)
		}
		s.WriteString("}\n")
	}
	export := "none"
	if send > 0 {
		export = "where proto = \"flood\""
	}
	for _, n := range bed.Nodes {
		fmt.Fprintf(&s, `protocol bgp %s {
  local %s as %d;
  neighbor %s as 64600;
  hold time 9; connect retry time 1; error wait time 1, 5;
  graceful restart on;
  bfd graceful;
  ipv4 { import all; export %s; };
}
`, birdProto(n), testbed.BIRDFabricIP, testbed.BIRDASN, n.IP, export)
	}
	return s.String()
}

// frrLastNotification returns what FRR says about the last NOTIFICATION
// it received from neighbor ip.
func frrLastNotification(ctx context.Context, bed *testbed.Bed, ip netip.Addr) string {
	var nb map[string]map[string]any
	if err := bed.Router.JSON(ctx, "show bgp neighbors "+ip.String()+" json", &nb); err != nil {
		return err.Error()
	}
	m := nb[ip.String()]
	var parts []string
	for k, v := range m {
		if strings.HasPrefix(k, "last") {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}
