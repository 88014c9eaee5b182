package testbed

import (
	"fmt"
	"strings"
)

// Summary describes a running bed for a person: kubeconfigs, the API
// server, and how to get into each namespace with its addresses.
func (b *Bed) Summary() string {
	var s strings.Builder
	fmt.Fprintf(&s, "test bed %s (run dir %s)\n", b.Prefix, b.RunDir)
	fmt.Fprintf(&s, "  API server:  %s\n", b.APIServerURL)
	fmt.Fprintf(&s, "  kubeconfig:  export KUBECONFIG=%s\n", b.AdminKubeconfig)
	fmt.Fprintf(&s, "  controller:  %s (ServiceAccount %s/%s)\n", b.ControllerKubeconfig, HeraldNamespace, ControllerServiceAccount)
	fmt.Fprintf(&s, "  speaker:     %s (ServiceAccount %s/%s)\n", b.SpeakerKubeconfig, HeraldNamespace, SpeakerServiceAccount)
	fmt.Fprintf(&s, "  L2 pool range for tests: %s-%s; BGP pool: %s\n", L2PoolFirst, L2PoolLast, BGPPoolPrefix)
	s.WriteString("namespaces:\n")
	line := func(what string, ns NS, addrs ...string) {
		var a []string
		for _, x := range addrs {
			if x != "" && x != "invalid IP" {
				a = append(a, x)
			}
		}
		fmt.Fprintf(&s, "  %-18s %-40s %s\n", what, "ip netns exec "+ns.Name+" bash", strings.Join(a, " "))
	}
	line("fabric (br0)", b.Fabric, FabricGateway.String())
	for _, n := range b.Nodes {
		line(n.Name, n.NS, n.IP.String(), n.IP6.String())
		for _, p := range n.Pods {
			line("  "+p.Name, p.NS, p.IP.String(), p.IP6.String())
		}
	}
	if b.Router != nil {
		line("router (FRR)", b.Router.NS, b.Router.IP.String(), b.Router.IP6.String(), RouterExternalIP.String())
		fmt.Fprintf(&s, "  %-18s vtysh --vty_socket %s\n", "", b.Router.Dir)
	}
	line("client-l2", b.ClientL2.NS, b.ClientL2.IP.String(), b.ClientL2.IP6.String())
	if b.ClientExt != nil {
		line("client-ext", b.ClientExt.NS, b.ClientExt.IP.String(), b.ClientExt.IP6.String())
	}
	fmt.Fprintf(&s, "logs: %s/logs\n", b.RunDir)
	return s.String()
}
