package e2etest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// TestLoadBalancerPath checks the data path Herald relies on: a Service whose
// LB status an admin patched by hand is served by kube-proxy on any node, once
// the network delivers the LB IP to that node (here a static route, where
// Herald would answer ARP or advertise a route).
func TestLoadBalancerPath(t *testing.T) {
	needRoot(t)
	bed := testbed.Start(t, testbed.Options{Nodes: 3, PodsPerNode: 1, Router: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var pods []*testbed.Pod
	for _, n := range bed.Nodes {
		pods = append(pods, n.Pods...)
	}
	svc, err := bed.BackendService(ctx, testbed.ServiceSpec{Name: "web", Pods: pods})
	if err != nil {
		t.Fatal(err)
	}
	l2IP := testbed.L2PoolFirst
	bgpIP := netip.MustParseAddr("203.0.113.10")
	if _, err := bed.SetLoadBalancerIngress(ctx, "default", "web", l2IP, bgpIP); err != nil {
		t.Fatal(err)
	}
	clusterIP := netip.MustParseAddr(svc.Spec.ClusterIP)

	// Each path is checked until it works (kube-proxy syncs within a second
	// or so), then its first-success time is reported.
	check := func(t *testing.T, from testbed.NS, addr string, want int) {
		t.Helper()
		start := time.Now()
		var last error
		seen := map[string]bool{}
		for time.Since(start) < 30*time.Second && len(seen) < want {
			r, err := from.Get(ctx, addr)
			if err != nil {
				last = err
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if len(seen) == 0 {
				t.Logf("%s -> %s: first answer after %v from %s (client seen as %s)", from.Name, addr, time.Since(start).Round(time.Millisecond), r.Pod, r.ClientIP())
			}
			seen[r.Pod] = true
		}
		if len(seen) == 0 {
			t.Fatalf("%s -> %s: no answer in 30s: %v", from.Name, addr, last)
		}
		t.Logf("%s -> %s: answered by %d of %d pods", from.Name, addr, len(seen), want)
	}

	t.Run("PodDirect", func(t *testing.T) {
		check(t, bed.Nodes[1].NS, testbed.HostPort(pods[0].IP, testbed.PodPort), 1)
	})
	t.Run("ClusterIP", func(t *testing.T) {
		check(t, bed.Nodes[0].NS, testbed.HostPort(clusterIP, 80), len(pods))
	})
	t.Run("L2Client", func(t *testing.T) {
		// Stand in for the speaker's ARP answer: a static route on the client.
		if _, err := bed.ClientL2.Run(ctx, "ip", "route", "add", l2IP.String()+"/32", "via", bed.Nodes[0].IP.String()); err != nil {
			t.Fatal(err)
		}
		check(t, bed.ClientL2.NS, testbed.HostPort(l2IP, 80), len(pods))
	})
	t.Run("ExternalClientViaRouter", func(t *testing.T) {
		if err := bed.Router.Configure(ctx, "ip route "+bgpIP.String()+"/32 "+bed.Nodes[2].IP.String()); err != nil {
			t.Fatal(err)
		}
		check(t, bed.ClientExt.NS, testbed.HostPort(bgpIP, 80), len(pods))
	})
	t.Run("Neighbors", func(t *testing.T) {
		nb, err := bed.ClientL2.Neighbors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, n := range nb {
			if n.Dst != bed.Nodes[0].IP.String() || n.LLAddr == "" {
				continue
			}
			found = true
			owner, err := bed.NodeByMAC(ctx, n.LLAddr)
			if err != nil {
				t.Fatal(err)
			}
			if owner != bed.Nodes[0] {
				t.Errorf("neighbour %s at %s belongs to %v, want node1", n.Dst, n.LLAddr, owner)
			}
		}
		if !found {
			t.Errorf("client-l2 neighbour table has no entry for node1 %s: %+v", bed.Nodes[0].IP, nb)
		}
	})
	t.Run("ProbeOutage", func(t *testing.T) {
		// Cut node1's cable while probing through it: the probe must report
		// one outage that ends when the cable is back.
		p := testbed.Probe(ctx, bed.ClientL2.NS, testbed.HostPort(l2IP, 80), 50*time.Millisecond, 200*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		if err := bed.Nodes[0].LinkDown(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := bed.Nodes[0].LinkUp(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		r := p.Stop()
		t.Logf("probes sent %d, failed %d, outages %d, longest %v, by pod %v", r.Sent, r.Failed, len(r.Outages), r.LongestOutage().Round(time.Millisecond), r.ByPod)
		if len(r.Outages) != 1 || r.Outages[0].Open {
			t.Fatalf("want one closed outage, got %+v", r.Outages)
		}
		if d := r.LongestOutage(); d < 800*time.Millisecond || d > 5*time.Second {
			t.Errorf("outage %v, want about 1s", d)
		}
	})
}

// TestRouterBGP starts two GoBGP speakers (Debian gobgpd) in node namespaces,
// announcing the same prefix to the FRR router, and checks the sessions and
// the ECMP route through FRR's JSON state and the router's kernel table.
func TestRouterBGP(t *testing.T) {
	needRoot(t)
	bed := testbed.Start(t, testbed.Options{Nodes: 2, Router: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := netip.MustParsePrefix("203.0.113.20/32")
	start := time.Now()
	for _, n := range bed.Nodes {
		conf := filepath.Join(t.TempDir(), "gobgpd.toml")
		err := os.WriteFile(conf, []byte(fmt.Sprintf(`[global.config]
  as = %d
  router-id = "%s"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "%s"
    peer-as = %d
`, 64600+n.Index, n.IP, testbed.RouterFabricIP, testbed.RouterASN)), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Start(ctx, "gobgpd-"+n.Name, "gobgpd", "-f", conf, "-p", "--api-hosts=127.0.0.1:50051", "--pprof-disable"); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range bed.Nodes {
		var err error
		for i := 0; i < 50; i++ {
			if _, err = n.Run(ctx, "gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib", "add", prefix.String(), "-a", "ipv4"); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var routes []testbed.KernelRoute
	deadline := time.Now().Add(60 * time.Second)
	for {
		peers, err := bed.Router.BGPSummary(ctx, false)
		established := 0
		for _, p := range peers {
			if p.State == "Established" {
				established++
			}
		}
		routes, _ = bed.Router.Routes(ctx, prefix)
		if err == nil && established == len(bed.Nodes) && len(routes) == 1 && len(routes[0].NextHops()) == len(bed.Nodes) {
			t.Logf("%d BGP sessions established and ECMP route %s via %v installed after %v", established, prefix, routes[0].NextHops(), time.Since(start).Round(time.Millisecond))
			for addr, p := range peers {
				t.Logf("peer %s: AS %d %s, %d prefixes received", addr, p.RemoteAS, p.State, p.PfxRcd)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ECMP route after 60s: peers %+v (err %v), routes %+v", peers, err, routes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var rib map[string]any
	if err := bed.Router.JSON(ctx, "show bgp ipv4 unicast "+prefix.String()+" json", &rib); err != nil {
		t.Fatal(err)
	}
	if paths, _ := rib["paths"].([]any); len(paths) != len(bed.Nodes) {
		t.Errorf("router has %d paths for %s, want %d", len(paths), prefix, len(bed.Nodes))
	}
}
