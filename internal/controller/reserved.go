package controller

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/config"
)

// reserved lists the cluster's addresses that no pool may hand out: every
// node's InternalIPs (and ExternalIPs), its pod CIDRs, and the Service
// CIDRs. Giving a node's address to a Service would make the speakers
// answer ARP for it and steal the node's traffic.
func (c *Controller) reserved() []config.Reserved {
	var out []config.Reserved
	nodes, _ := c.nodes.List(labels.Everything())
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil {
				continue
			}
			ip = ip.Unmap()
			out = append(out, config.Reserved{Prefix: netip.PrefixFrom(ip, ip.BitLen()), Node: true,
				Why: fmt.Sprintf("%s of node %s", a.Type, n.Name)})
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, s := range cidrs {
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, config.Reserved{Prefix: p.Masked(), Why: "pod CIDR of node " + n.Name})
			}
		}
	}
	if c.svcCIDRs != nil {
		cidrs, _ := c.svcCIDRs.List(labels.Everything())
		for _, sc := range cidrs {
			for _, s := range sc.Spec.CIDRs {
				if p, err := netip.ParsePrefix(s); err == nil {
					out = append(out, config.Reserved{Prefix: p.Masked(), Why: fmt.Sprintf("Service CIDR (ServiceCIDR %s)", sc.Name)})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b config.Reserved) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out
}

// reservedChanged reports whether a Node update changed what it reserves.
func reservedChanged(old, cur any) bool {
	o, ok1 := old.(*corev1.Node)
	n, ok2 := cur.(*corev1.Node)
	if !ok1 || !ok2 {
		return true
	}
	return !slices.Equal(o.Status.Addresses, n.Status.Addresses) || !slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs) || o.Spec.PodCIDR != n.Spec.PodCIDR
}
