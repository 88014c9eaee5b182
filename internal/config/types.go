package config

import (
	"net/netip"
	"slices"
	"time"

	"go4.org/netipx"
	"k8s.io/apimachinery/pkg/labels"
)

// Family is an IP address family.
type Family int

// The two address families Herald handles.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// FamilyOf returns the family of addr. IPv4-mapped IPv6 addresses count as IPv4.
func FamilyOf(addr netip.Addr) Family {
	if addr.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Pool is one validated IPAddressPool.
type Pool struct {
	// Name is the IPAddressPool's name.
	Name string
	// V4 and V6 hold the pool's addresses as sorted, non-overlapping,
	// non-adjacent ranges of one family each.
	V4, V6 []netipx.IPRange
	// Set holds every address of the pool, for membership tests.
	Set *netipx.IPSet
	// AutoAssign is false when the pool only serves Services that ask for it
	// (by pool name or by IP).
	AutoAssign bool
	// AvoidBuggyIPs skips addresses that end in .0 or .255.
	AvoidBuggyIPs bool
	// Priority orders pools that select a Service; lower wins. Only
	// meaningful when HasPriority is true: a pool without one comes last.
	Priority    int32
	HasPriority bool
	// Namespaces, NamespaceSelectors and ServiceSelectors restrict the pool to
	// some Services. A Service matches when its namespace is in Namespaces or
	// matches one of NamespaceSelectors (if either is set), and its labels
	// match one of ServiceSelectors (if set).
	Namespaces         []string
	NamespaceSelectors []labels.Selector
	ServiceSelectors   []labels.Selector
	// Labels are the pool's own labels, for ipAddressPoolSelectors.
	Labels map[string]string

	// written holds the ranges as the object lists them when reserved
	// addresses were taken out of V4 and V6 (see Input.Reserved); nil
	// otherwise.
	written *[2][]netipx.IPRange

	// widest holds the shortest prefix among the IPv4 and the IPv6 ranges,
	// to check aggregation lengths against.
	widest [2]netip.Prefix
}

// Ranges returns the pool's ranges of family f.
func (p *Pool) Ranges(f Family) []netipx.IPRange {
	if f == IPv6 {
		return p.V6
	}
	return p.V4
}

// Contains reports whether addr is one of the pool's addresses.
func (p *Pool) Contains(addr netip.Addr) bool {
	return p.Set != nil && p.Set.Contains(addr.Unmap())
}

// HasSelectors reports whether the pool restricts the Services it serves.
func (p *Pool) HasSelectors() bool {
	return len(p.Namespaces) > 0 || len(p.NamespaceSelectors) > 0 || len(p.ServiceSelectors) > 0
}

// Selects reports whether the pool's serviceAllocation selects a Service in
// namespace ns (whose labels are nsLabels) that has labels svcLabels. A pool
// without selectors selects every Service.
func (p *Pool) Selects(ns string, nsLabels, svcLabels map[string]string) bool {
	if len(p.Namespaces) > 0 || len(p.NamespaceSelectors) > 0 {
		ok := slices.Contains(p.Namespaces, ns)
		for _, s := range p.NamespaceSelectors {
			if ok {
				break
			}
			ok = s.Matches(labels.Set(nsLabels))
		}
		if !ok {
			return false
		}
	}
	if len(p.ServiceSelectors) > 0 {
		for _, s := range p.ServiceSelectors {
			if s.Matches(labels.Set(svcLabels)) {
				return true
			}
		}
		return false
	}
	return true
}

// L2Advertisement is one validated L2Advertisement.
type L2Advertisement struct {
	Name string
	// Pools are the names of the pools it announces, sorted.
	Pools []string
	// NodeSelectors limit the announcing nodes; empty selects all.
	NodeSelectors []labels.Selector
	// PreferredNodeSelectors select the nodes preferred among the
	// eligible ones; empty prefers none.
	PreferredNodeSelectors []labels.Selector
	// Interfaces limit the interfaces; empty means every suitable one.
	Interfaces []string
	// ServiceSelectors limit the Services; empty selects all.
	ServiceSelectors []labels.Selector
}

// BGPAdvertisement is one validated BGPAdvertisement.
type BGPAdvertisement struct {
	Name string
	// Pools are the names of the pools it advertises, sorted.
	Pools []string
	// AggregationLength and AggregationLengthV6 are the advertised prefix
	// lengths per family.
	AggregationLength, AggregationLengthV6 int
	// LocalPref is sent to iBGP peers when HasLocalPref is true.
	LocalPref    uint32
	HasLocalPref bool
	// Communities are resolved (aliases replaced by values), sorted and
	// deduplicated.
	Communities []Community
	// Peers restricts the BGPPeers advertised to, by name; empty means all.
	Peers []string
	// NodeSelectors and ServiceSelectors limit nodes and Services; empty
	// selects all.
	NodeSelectors    []labels.Selector
	ServiceSelectors []labels.Selector
}

// Peer is one validated BGPPeer with defaults applied.
type Peer struct {
	Name            string
	MyASN, PeerASN  uint32
	Address         netip.Addr
	Port            uint16
	SourceAddress   netip.Addr // invalid (zero) when unset
	HoldTime        time.Duration
	KeepaliveTime   time.Duration
	ConnectTime     time.Duration
	RouterID        netip.Addr // invalid (zero) when unset: the node's IPv4
	NodeSelectors   []labels.Selector
	Password        string // resolved from PasswordSecret when set
	BFD             *BFDProfile
	EBGPMultiHop    bool
	GracefulRestart bool
	// GracefulRestartTime is the announced restart time (default 120s).
	GracefulRestartTime time.Duration
	// DisableMP limits the session to its own address family.
	DisableMP bool
	// DynamicASN is DynamicInternal or DynamicExternal when the router's
	// ASN is taken from its OPEN message (PeerASN is then zero); empty
	// with a fixed PeerASN.
	DynamicASN string
	// Interface is the node interface of an unnumbered session (Address
	// is then invalid): the session runs over IPv6 link-local addresses.
	Interface string
	// Passive waits for the router to open the session.
	Passive bool
	// VRF is the node VRF device the session's socket is bound to; empty
	// means the default VRF.
	VRF string
}

// The values of Peer.DynamicASN.
const (
	DynamicInternal = "internal"
	DynamicExternal = "external"
)

// IBGP reports whether the session is internal (same ASN on both ends).
func (p *Peer) IBGP() bool {
	if p.DynamicASN != "" {
		return p.DynamicASN == DynamicInternal
	}
	return p.MyASN == p.PeerASN
}

// BFDProfile is one BFDProfile with defaults applied.
type BFDProfile struct {
	Name             string
	ReceiveInterval  time.Duration
	TransmitInterval time.Duration
	DetectMultiplier uint8
	PassiveMode      bool
	MinimumTTL       uint8
}

// Config is one immutable, validated snapshot of Herald's configuration.
// Every slice is sorted by name; nothing in it may be modified.
type Config struct {
	Pools             []*Pool
	L2Advertisements  []*L2Advertisement
	BGPAdvertisements []*BGPAdvertisement
	Peers             []*Peer
	BFDProfiles       []*BFDProfile
	// Communities maps alias names to values.
	Communities map[string]Community

	poolByName map[string]*Pool
	// index holds every pool range sorted by first address, for PoolOf.
	index []poolRange
}

type poolRange struct {
	r    netipx.IPRange
	pool *Pool
}

// Pool returns the pool named name, or nil.
func (c *Config) Pool(name string) *Pool {
	if c == nil {
		return nil
	}
	return c.poolByName[name]
}

// PoolOf returns the pool that holds addr, or nil, in O(log ranges).
func (c *Config) PoolOf(addr netip.Addr) *Pool {
	if c == nil {
		return nil
	}
	addr = addr.Unmap()
	// The first range that starts after addr; the one before may hold it.
	i, _ := slices.BinarySearchFunc(c.index, addr, func(pr poolRange, a netip.Addr) int {
		if a.Less(pr.r.From()) {
			return 1
		}
		return -1
	})
	if i > 0 && c.index[i-1].r.Contains(addr) {
		return c.index[i-1].pool
	}
	return nil
}
