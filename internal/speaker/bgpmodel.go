package speaker

import (
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/bgp"
	"github.com/heraldlb/herald/internal/config"
)

// BGPNode is what BGP mode needs of this speaker's own Node.
type BGPNode struct {
	// Name is the node's name.
	Name string
	// Labels are the node's labels, for nodeSelectors.
	Labels map[string]string
	// Excluded is true when the node must not advertise (see [NodeOf]).
	Excluded bool
	// IPv4 and IPv6 are the node's first InternalIP of each family: the
	// default router ID, and the next hop of the family that is not the
	// session's transport.
	IPv4, IPv6 netip.Addr
}

// BGPNodeOf extracts the BGP inputs of a Node.
func BGPNodeOf(n *corev1.Node) BGPNode {
	c := NodeOf(n, nil)
	bn := BGPNode{Name: n.Name, Labels: n.Labels, Excluded: c.Excluded}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		switch {
		case ip.Is4() && !bn.IPv4.IsValid():
			bn.IPv4 = ip
		case ip.Is6() && !bn.IPv6.IsValid():
			bn.IPv6 = ip
		}
	}
	return bn
}

// equal reports whether two BGPNodes give the same peers and advertisements.
func (n BGPNode) equal(o BGPNode) bool {
	return n.Name == o.Name && n.Excluded == o.Excluded && n.IPv4 == o.IPv4 && n.IPv6 == o.IPv6 &&
		labels.Equals(n.Labels, o.Labels)
}

// PeerPlan is the set of sessions one node opens, from one configuration
// snapshot.
type PeerPlan struct {
	// Peers are the sessions, sorted by name.
	Peers []bgp.Peer
	// RouterID is the BGP identifier a new server of the node takes: the
	// routerID of the first selected BGPPeer that sets one, else the
	// node's IPv4. Invalid when neither exists. A running server keeps its
	// router ID while it remains acceptable (see routerIDFor).
	RouterID netip.Addr
	// RouterIDs are the router IDs that peers ask for, by peer name.
	RouterIDs map[string]netip.Addr
	// NodeIPv4 is the node's IPv4 address, the default router ID.
	NodeIPv4 netip.Addr
	// ASN is the server's global ASN: the first peer's myASN. Every
	// session sets its own local ASN, so the global one never forces a
	// restart.
	ASN uint32
	// Problems name the peers that could not be used as asked, by peer.
	Problems map[string]string
}

// PlanPeers returns the sessions node opens: one per BGPPeer whose
// nodeSelectors select it (empty selects every node).
func PlanPeers(cfg *config.Config, node BGPNode) PeerPlan {
	var plan PeerPlan
	if cfg == nil {
		return plan
	}
	for _, p := range cfg.Peers {
		if !matchesAny(p.NodeSelectors, node.Labels) {
			continue
		}
		if p.RouterID.IsValid() {
			if !plan.RouterID.IsValid() {
				plan.RouterID = p.RouterID
			}
			if plan.RouterIDs == nil {
				plan.RouterIDs = map[string]netip.Addr{}
			}
			plan.RouterIDs[p.Name] = p.RouterID
		}
		bp := bgp.Peer{
			Name:                p.Name,
			MyASN:               p.MyASN,
			PeerASN:             p.PeerASN,
			Address:             p.Address,
			Port:                p.Port,
			SourceAddress:       p.SourceAddress,
			HoldTime:            p.HoldTime,
			KeepaliveTime:       p.KeepaliveTime,
			ConnectTime:         p.ConnectTime,
			Password:            p.Password,
			GracefulRestart:     p.GracefulRestart,
			GracefulRestartTime: p.GracefulRestartTime,
			DisableMP:           p.DisableMP,
			DynamicASN:          bgp.DynamicASN(p.DynamicASN),
			Interface:           p.Interface,
			Passive:             p.Passive,
			VRF:                 p.VRF,
			NextHopIPv4:         node.IPv4,
			NextHopIPv6:         node.IPv6,
		}
		if p.EBGPMultiHop {
			bp.EBGPMultiHopTTL = 255
		}
		if b := p.BFD; b != nil {
			bp.BFD = &bgp.BFD{
				ReceiveInterval:  b.ReceiveInterval,
				TransmitInterval: b.TransmitInterval,
				DetectMultiplier: b.DetectMultiplier,
				PassiveMode:      b.PassiveMode,
				MinimumTTL:       b.MinimumTTL,
			}
		}
		if plan.ASN == 0 {
			plan.ASN = p.MyASN
		}
		plan.Peers = append(plan.Peers, bp)
	}
	plan.NodeIPv4 = node.IPv4
	if !plan.RouterID.IsValid() {
		plan.RouterID = node.IPv4
	}
	slices.SortFunc(plan.Peers, func(a, b bgp.Peer) int { return strings.Compare(a.Name, b.Name) })
	return plan
}

// routerIDFor returns the router ID the node's server should have, given
// the one it runs with (invalid when none runs). A running server keeps
// its router ID while a selected peer asks for it, or while it is the
// node's IPv4 and a selected peer sets no routerID (such a peer takes the
// default), so that adding a BGPPeer with another routerID (or removing
// one) restarts no session; otherwise RouterID.
func (p PeerPlan) routerIDFor(current netip.Addr) netip.Addr {
	if current.IsValid() {
		for _, id := range p.RouterIDs {
			if id == current {
				return current
			}
		}
		if current == p.NodeIPv4 && len(p.RouterIDs) < len(p.Peers) {
			return current
		}
	}
	return p.RouterID
}

// PlanAdvertisements returns what node advertises for one group of
// Services that share IPs. An IP is advertised when a BGPAdvertisement
// covers it (its pool, and its serviceSelectors select a member that has
// the IP), selects the node, and the node is not excluded; under
// externalTrafficPolicy: Local, the node must also hold a ready or serving
// endpoint of every member that has the IP. The prefix is the IP masked to
// the advertisement's aggregation length; prefixes are not merged here.
func PlanAdvertisements(cfg *config.Config, node BGPNode, members []*ServiceInfo) []bgp.Advertisement {
	if cfg == nil || node.Excluded || len(cfg.BGPAdvertisements) == 0 {
		return nil
	}
	var ips []netip.Addr
	for _, m := range members {
		ips = append(ips, m.IPs...)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	var out []bgp.Advertisement
	for _, ip := range ips {
		pool := cfg.PoolOf(ip)
		if pool == nil {
			continue
		}
		local := true
		var holders []*ServiceInfo
		for _, m := range members {
			if !slices.Contains(m.IPs, ip) {
				continue
			}
			holders = append(holders, m)
			if m.LocalTraffic && !m.EndpointNodes.Has(node.Name) {
				local = false
			}
		}
		if !local {
			continue
		}
		for _, ad := range cfg.BGPAdvertisements {
			if !slices.Contains(ad.Pools, pool.Name) || !matchesAny(ad.NodeSelectors, node.Labels) {
				continue
			}
			selected := false
			for _, m := range holders {
				if matchesAny(ad.ServiceSelectors, m.Labels) {
					selected = true
					break
				}
			}
			if !selected {
				continue
			}
			out = append(out, advertisementOf(ad, ip))
		}
	}
	return out
}

func advertisementOf(ad *config.BGPAdvertisement, ip netip.Addr) bgp.Advertisement {
	bits := ad.AggregationLength
	if ip.Is6() {
		bits = ad.AggregationLengthV6
	}
	if bits <= 0 || bits > ip.BitLen() {
		bits = ip.BitLen()
	}
	a := bgp.Advertisement{Prefix: netip.PrefixFrom(ip, bits).Masked(), Peers: ad.Peers}
	if ad.HasLocalPref {
		a.LocalPref = ad.LocalPref
	}
	for _, c := range ad.Communities {
		if c.Large {
			a.LargeCommunities = append(a.LargeCommunities, bgp.LargeCommunity{GlobalAdmin: c.Global, LocalData1: c.Local1, LocalData2: c.Local2})
		} else {
			a.Communities = append(a.Communities, c.Standard)
		}
	}
	return a
}

// sameAdvertisements reports whether two plans of one group are equal.
func sameAdvertisements(a, b []bgp.Advertisement) bool {
	return slices.EqualFunc(a, b, func(x, y bgp.Advertisement) bool {
		return x.Prefix == y.Prefix && x.NextHop == y.NextHop && x.LocalPref == y.LocalPref &&
			slices.Equal(x.Communities, y.Communities) && slices.Equal(x.LargeCommunities, y.LargeCommunities) &&
			slices.Equal(x.Peers, y.Peers)
	})
}
