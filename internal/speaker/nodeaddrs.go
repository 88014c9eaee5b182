package speaker

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// nodeAddressSetter is the part of the layer 2 announcer that keeps the
// nodes' addresses out of what it answers for.
type nodeAddressSetter interface {
	SetNodeAddresses(addrs []netip.Addr)
}

// nodeAddresses returns every node's InternalIPs and ExternalIPs: the layer
// 2 announcer never answers for them, whatever a Service's status says.
func nodeAddresses(nodes corelisters.NodeLister) []netip.Addr {
	list, err := nodes.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, n := range list {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				out = append(out, ip)
			}
		}
	}
	return out
}
