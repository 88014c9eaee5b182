package testbed

import (
	"context"
	"fmt"
	"net/netip"

	"golang.org/x/sync/errgroup"
)

// buildNetwork creates the fabric, nodes, pods, router and clients. The
// fabric namespace and the transit link exist already (claim).
func (b *Bed) buildNetwork(ctx context.Context) error {
	f := b.Fabric
	steps := [][]string{
		{"ip", "-n", f.Name, "link", "set", "lo", "up"},
		{"ip", "-n", f.Name, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"ip", "-n", f.Name, "addr", "add", netip.PrefixFrom(FabricGateway, 24).String(), "dev", "br0"},
		{"ip", "-n", f.Name, "link", "set", "br0", "up"},
		{"ip", "-n", f.Name, "addr", "add", netip.PrefixFrom(b.fabricAddr, 30).String(), "dev", "root"},
		{"ip", "-n", f.Name, "link", "set", "root", "up"},
		{"ip", "netns", "exec", f.Name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		// Nodes reach the API server through the fabric namespace, which
		// masquerades them: the root namespace needs no route into the bed.
		{"ip", "netns", "exec", f.Name, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "root", "-j", "MASQUERADE"},
	}
	if b.opts.DualStack {
		steps = append(steps, []string{"ip", "-n", f.Name, "addr", "add", netip.PrefixFrom(FabricGateway6, 64).String(), "dev", "br0", "nodad"})
	}
	if err := runAll(ctx, steps); err != nil {
		return fmt.Errorf("fabric: %w", err)
	}

	for i := 1; i <= b.opts.Nodes; i++ {
		n := &Node{
			Name:  fmt.Sprintf("node%d", i),
			Index: i,
			IP:    NodeIP(i),
			bed:   b,
		}
		n.NS = b.addNS(n.Name)
		if b.opts.DualStack {
			n.IP6 = NodeIP6(i)
		}
		for j := 1; j <= b.opts.PodsPerNode; j++ {
			p := &Pod{Name: fmt.Sprintf("%s-pod%d", n.Name, j), Node: n, Index: j, IP: PodIP(i, j), hostIf: fmt.Sprintf("pod%d", j)}
			if b.opts.DualStack {
				p.IP6 = PodIP6(i, j)
			}
			p.NS = b.addNS(p.Name)
			n.Pods = append(n.Pods, p)
		}
		b.Nodes = append(b.Nodes, n)
	}
	b.ClientL2 = &Client{NS: b.addNS("client-l2"), IP: ClientL2IP}
	if b.opts.Router {
		b.Router = &Router{NS: b.addNS("router"), IP: RouterFabricIP, bed: b}
		b.ClientExt = &Client{NS: b.addNS("client-ext"), IP: ClientExternalIP}
		if b.opts.DualStack {
			b.Router.IP6 = RouterFabricIP6
			b.ClientExt.IP6 = ClientExternalIP6
		}
	}
	if b.opts.DualStack {
		b.ClientL2.IP6 = ClientL2IP6
	}
	if err := b.saveState(); err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, n := range b.Nodes {
		g.Go(func() error { return n.plumb(gctx) })
	}
	g.Go(func() error {
		gw := FabricGateway
		if b.Router != nil {
			gw = RouterFabricIP
		}
		c := b.ClientL2
		if err := b.attachToFabric(gctx, c.NS, "client", c.IP, c.IP6); err != nil {
			return err
		}
		steps := [][]string{{"ip", "-n", c.Name, "route", "add", "default", "via", gw.String()}}
		if c.IP6.IsValid() && b.Router != nil {
			steps = append(steps, []string{"ip", "-n", c.Name, "-6", "route", "add", "default", "via", RouterFabricIP6.String()})
		}
		return runAll(gctx, steps)
	})
	if b.Router != nil {
		g.Go(func() error { return b.Router.plumb(gctx) })
	}
	return g.Wait()
}

// attachToFabric creates ns, and a veth whose "eth0" end is in ns and whose
// other end (port) is on the fabric bridge.
func (b *Bed) attachToFabric(ctx context.Context, ns NS, port string, ip, ip6 netip.Addr) error {
	steps := [][]string{
		{"ip", "netns", "add", ns.Name},
		{"ip", "link", "add", "eth0", "netns", ns.Name, "type", "veth", "peer", "name", port, "netns", b.Fabric.Name},
		{"ip", "-n", b.Fabric.Name, "link", "set", port, "master", "br0", "up"},
		{"ip", "-n", ns.Name, "link", "set", "lo", "up"},
		{"ip", "-n", ns.Name, "addr", "add", netip.PrefixFrom(ip, 24).String(), "dev", "eth0"},
	}
	if ip6.IsValid() {
		steps = append(steps, []string{"ip", "-n", ns.Name, "addr", "add", netip.PrefixFrom(ip6, 64).String(), "dev", "eth0", "nodad"})
	}
	steps = append(steps, []string{"ip", "-n", ns.Name, "link", "set", "eth0", "up"})
	return runAll(ctx, steps)
}

func runAll(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if _, err := run(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}
