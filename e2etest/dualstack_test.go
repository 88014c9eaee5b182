package e2etest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// TestDualStackNFTables runs kube-proxy in nftables mode on a dual-stack bed
// and reaches a dual-stack Service's LB IPs of both families, from the L2
// client (static routes via node1) and from behind the router (static routes
// via node2).
func TestDualStackNFTables(t *testing.T) {
	needRoot(t)
	bed := testbed.Start(t, testbed.Options{Nodes: 2, Router: true, DualStack: true, ProxyMode: testbed.ProxyNFTables})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods := []*testbed.Pod{bed.Nodes[0].Pods[0], bed.Nodes[1].Pods[0]}
	svc, err := bed.BackendService(ctx, testbed.ServiceSpec{Name: "web6", Pods: pods, DualStack: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("service cluster IPs %v, want one per family", svc.Spec.ClusterIPs)
	}
	v4, v6 := netip.MustParseAddr("198.18.0.201"), netip.MustParseAddr("2001:db8:18::201")
	ext6 := netip.MustParseAddr("2001:db8:203::10")
	if _, err := bed.SetLoadBalancerIngress(ctx, "default", "web6", v4, v6, ext6); err != nil {
		t.Fatal(err)
	}
	mustRun := func(ns testbed.NS, argv ...string) {
		t.Helper()
		if _, err := ns.Run(ctx, argv...); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(bed.ClientL2.NS, "ip", "route", "add", v4.String()+"/32", "via", bed.Nodes[0].IP.String())
	mustRun(bed.ClientL2.NS, "ip", "-6", "route", "add", v6.String()+"/128", "via", bed.Nodes[0].IP6.String())
	if err := bed.Router.Configure(ctx, "ipv6 route "+ext6.String()+"/128 "+bed.Nodes[1].IP6.String()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from testbed.NS
		addr netip.Addr
	}{{bed.ClientL2.NS, v4}, {bed.ClientL2.NS, v6}, {bed.ClientExt.NS, ext6}} {
		start := time.Now()
		var r testbed.Reply
		for time.Since(start) < 30*time.Second {
			if r, err = c.from.Get(ctx, testbed.HostPort(c.addr, 80)); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("%s -> %s: %v", c.from.Name, c.addr, err)
			continue
		}
		t.Logf("%s -> %s: %s answered after %v, saw client %s", c.from.Name, c.addr, r.Pod, time.Since(start).Round(time.Millisecond), r.ClientIP())
	}
}
