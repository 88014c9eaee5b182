package testbed

import (
	"fmt"
	"net/netip"
)

// The address plan. Inside the bed's namespaces the addresses are the same in
// every run, since namespaces are isolated; only the transit link between the
// root namespace and the fabric uses a per-run /30 (see Slot).
var (
	// FabricPrefix is the shared L2 segment of the nodes, router and L2 client.
	FabricPrefix = netip.MustParsePrefix("198.18.0.0/24")
	// FabricPrefix6 is the IPv6 prefix of the L2 segment (dual stack only).
	FabricPrefix6 = netip.MustParsePrefix("2001:db8:18::/64")
	// FabricGateway is the fabric namespace's own address on the bridge; it
	// routes (and masquerades) node traffic to the API server.
	FabricGateway  = netip.MustParseAddr("198.18.0.1")
	FabricGateway6 = netip.MustParseAddr("2001:db8:18::1")
	// RouterFabricIP is the FRR router's address on the fabric.
	RouterFabricIP  = netip.MustParseAddr("198.18.0.2")
	RouterFabricIP6 = netip.MustParseAddr("2001:db8:18::2")
	// ClientL2IP is the address of the client on the L2 segment.
	ClientL2IP  = netip.MustParseAddr("198.18.0.100")
	ClientL2IP6 = netip.MustParseAddr("2001:db8:18::100")
	// L2PoolRange is the range tests use for L2 LoadBalancer IPs: on the
	// fabric, unused by any host.
	L2PoolFirst  = netip.MustParseAddr("198.18.0.200")
	L2PoolLast   = netip.MustParseAddr("198.18.0.250")
	L2PoolFirst6 = netip.MustParseAddr("2001:db8:18::200")
	L2PoolLast6  = netip.MustParseAddr("2001:db8:18::250")
	// BGPPoolPrefix is the range tests use for BGP-advertised IPs.
	BGPPoolPrefix  = netip.MustParsePrefix("203.0.113.0/24")
	BGPPoolPrefix6 = netip.MustParsePrefix("2001:db8:203::/64")
	// ExternalPrefix is the client network behind the router.
	ExternalPrefix  = netip.MustParsePrefix("198.51.100.0/24")
	ExternalPrefix6 = netip.MustParsePrefix("2001:db8:51::/64")
	// RouterExternalIP is the router's address on the client network.
	RouterExternalIP  = netip.MustParseAddr("198.51.100.1")
	RouterExternalIP6 = netip.MustParseAddr("2001:db8:51::1")
	// ClientExternalIP is the address of the client behind the router.
	ClientExternalIP  = netip.MustParseAddr("198.51.100.10")
	ClientExternalIP6 = netip.MustParseAddr("2001:db8:51::10")
	// ServiceCIDR and ServiceCIDR6 are the cluster IP ranges.
	ServiceCIDR  = netip.MustParsePrefix("198.19.0.0/16")
	ServiceCIDR6 = netip.MustParsePrefix("2001:db8:19::/108")
	// TransitPrefix holds the per-run /30 links between root and fabric.
	TransitPrefix = netip.MustParsePrefix("198.18.254.0/24")

	// ReservedRanges are every range the bed uses. None of them may overlap a
	// route of the root namespace that does not belong to another bed.
	ReservedRanges = []netip.Prefix{
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
)

// RouterASN is the FRR router's AS number.
const RouterASN = 64512

// maxSlots is the number of /30 transit links in TransitPrefix.
const maxSlots = 64

// NodeIP returns the fabric address of node i (1-based).
func NodeIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}) }

// NodeIP6 returns the fabric IPv6 address of node i (1-based).
func NodeIP6(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:18::%d", 10+i))
}

// PodCIDR returns the pod range of node i (1-based).
func PodCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(16 + i), 0}), 24)
}

// PodCIDR6 returns the IPv6 pod range of node i (1-based).
func PodCIDR6(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("2001:db8:1:%d::/64", i))
}

// PodIP returns the address of pod j (1-based) on node i.
func PodIP(i, j int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(16 + i), byte(10 + j)})
}

// PodIP6 returns the IPv6 address of pod j (1-based) on node i.
func PodIP6(i, j int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:1:%d::%d", i, 10+j))
}

// transitAddrs returns the root and fabric ends of the transit /30 of slot s.
func transitAddrs(s int) (root, fabric netip.Addr) {
	b := TransitPrefix.Addr().As4()
	b[3] = byte(4*s + 1)
	root = netip.AddrFrom4(b)
	b[3] = byte(4*s + 2)
	return root, netip.AddrFrom4(b)
}

func transitPrefix(s int) netip.Prefix {
	root, _ := transitAddrs(s)
	return netip.PrefixFrom(root, 30).Masked()
}
