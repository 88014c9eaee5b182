package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Config is what a Speaker needs before its first session.
type Config struct {
	// RouterID is the BGP identifier of the server; it must be IPv4. GoBGP
	// has one router ID per server, so every session of the speaker uses
	// this one.
	RouterID netip.Addr
	// ASN is the server's global autonomous system number, and the local
	// ASN of every Peer whose MyASN is zero.
	ASN uint32
	// ListenPort is the TCP port to accept BGP connections on. Zero (the
	// default) means do not listen: the speaker only dials out, so it can
	// coexist with another BGP daemon that owns port 179.
	ListenPort uint16
	// ListenAddresses are the addresses to listen on when ListenPort is
	// set. Empty means every address.
	ListenAddresses []netip.Addr
	// MaxReceivedPrefixes is the most prefixes a peer may send, per
	// family, before the speaker closes that session with a Cease /
	// Maximum Number of Prefixes Reached NOTIFICATION (RFC 4486). The
	// speaker imports no route (its import policy rejects everything), but
	// GoBGP keeps what a peer sends in that peer's Adj-RIB-In: the guard
	// bounds the memory a misconfigured or hostile router can take. Zero
	// means DefaultMaxReceivedPrefixes.
	MaxReceivedPrefixes uint32
	// OnSessionEvent, if set, is called for every session state change,
	// in order, from a goroutine owned by the Speaker. It must not block
	// for long: it delays the next events (never BGP itself).
	OnSessionEvent func(SessionEvent)
}

// DefaultMaxReceivedPrefixes is Config.MaxReceivedPrefixes when zero. A
// router may well send back the Service prefixes it learned from the other
// nodes (every eBGP design with one AS per node does), so the default
// leaves room for large clusters and still stops a full Internet table.
const DefaultMaxReceivedPrefixes = 200000

// DefaultGracefulRestartTime is Peer.GracefulRestartTime when zero: the
// restart time FRR and BIRD use by default.
const DefaultGracefulRestartTime = 120 * time.Second

// maxGracefulRestartTime is the largest restart time the capability can
// carry (12 bits of seconds, RFC 4724 section 3).
const maxGracefulRestartTime = 4095 * time.Second

func (c Config) validate() error {
	if !c.RouterID.Is4() {
		return fmt.Errorf("router ID %v: must be an IPv4 address", c.RouterID)
	}
	if c.ASN == 0 {
		return errors.New("ASN: must not be zero")
	}
	return nil
}

// Peer is one BGP session the speaker opens to a router. The Speaker
// identifies a peer by Name; two peers must not share an Address.
type Peer struct {
	// Name identifies the peer in status, events, logs and
	// Advertisement.Peers (the BGPPeer object's name).
	Name string
	// MyASN is the local ASN of this session; zero means Config.ASN.
	MyASN uint32
	// PeerASN is the router's ASN. Equal to the local ASN makes the session
	// iBGP. Zero with DynamicASN set.
	PeerASN uint32
	// DynamicASN, instead of PeerASN, takes the router's ASN from its OPEN
	// message: DynamicInternal accepts the local ASN only, DynamicExternal
	// any other (a router that opens with the local ASN is reset).
	DynamicASN DynamicASN
	// Address is the router's address. Invalid (zero) with Interface set.
	Address netip.Addr
	// Interface, instead of Address, peers over this interface (BGP
	// unnumbered): the router's address is the one IPv6 link-local
	// neighbour of the interface in the kernel's neighbour table, found
	// when the peer is added; the session runs between link-local
	// addresses, and the paths of both families carry the node's
	// link-local address as next hop (IPv4 ones by RFC 8950), so
	// NextHopIPv4 and NextHopIPv6 are ignored.
	Interface string
	// Passive waits for the router to connect instead of dialling it; it
	// needs Config.ListenPort.
	Passive bool
	// VRF, if set, binds the session's socket to the VRF device of that
	// name (SO_BINDTODEVICE), so the session runs in that VRF.
	VRF string
	// Port is the router's TCP port; zero means 179.
	Port uint16
	// SourceAddress is the local address to dial from; invalid (zero)
	// lets the kernel choose.
	SourceAddress netip.Addr
	// HoldTime is the proposed hold time, in whole seconds; zero means
	// GoBGP's default, 90s.
	HoldTime time.Duration
	// KeepaliveTime is the keepalive interval, in whole seconds; zero means
	// a third of the hold time.
	KeepaliveTime time.Duration
	// ConnectTime is the interval between connection attempts, in whole
	// seconds; zero means GoBGP's default, 120s.
	ConnectTime time.Duration
	// Password, if set, turns on TCP-MD5 (RFC 2385) with this key.
	Password string
	// EBGPMultiHopTTL, if non-zero, allows an eBGP peer that many hops away
	// (BGPPeer.ebgpMultiHop maps to 255).
	EBGPMultiHopTTL uint8
	// GracefulRestart announces the graceful-restart capability (RFC 4724)
	// for both families; Shutdown then closes the session without a
	// NOTIFICATION so the router keeps the routes as stale.
	GracefulRestart bool
	// GracefulRestartTime is the restart time announced with the
	// graceful-restart capability: how long the router keeps the stale
	// routes while the session is down. Whole seconds, at most 4095s; zero
	// means DefaultGracefulRestartTime.
	GracefulRestartTime time.Duration
	// DisableMP limits the session to the address family of Address: the
	// prefixes of the other family are not sent on it.
	DisableMP bool
	// BFD, if set, runs a BFD session with the peer.
	BFD *BFD
	// NextHopIPv4 and NextHopIPv6, if set, are the next hops of this
	// session's IPv4 and IPv6 paths that have no next hop of their own.
	// Set the one of the other family than Address (the node's address of
	// that family); by default it is derived from the session's local
	// address, which does not work across families.
	NextHopIPv4, NextHopIPv6 netip.Addr
}

// BFD configures a BFD session (RFC 5880) alongside a BGP session, run by
// the Speaker's own BFD (see bfd.go), not GoBGP's. It runs on Go timers in
// the speaker process: at 100 ms x 3 GoBGP's flapped now and then on a
// 2-CPU test machine under heavy load, while 300 ms x 3 held; prefer
// 300 ms or more on busy nodes.
type BFD struct {
	// ReceiveInterval is the minimum interval between received control
	// packets; zero means 1s (GoBGP's default). Microsecond resolution.
	ReceiveInterval time.Duration
	// TransmitInterval is the desired interval between sent control
	// packets; zero means 1s.
	TransmitInterval time.Duration
	// DetectMultiplier is the number of missed packets that declares the
	// session down; zero means 3.
	DetectMultiplier uint8
	// PassiveMode waits for the router's first packet before sending.
	PassiveMode bool
	// MinimumTTL is the lowest TTL accepted on received packets of a
	// multihop session (a peer with EBGPMultiHopTTL); zero means 1.
	// Single-hop sessions accept TTL 255 only (RFC 5881 section 5).
	MinimumTTL uint8
	// Port is the peer's BFD UDP port; zero means 3784 (RFC 5881).
	Port uint16
}

// DynamicASN is the kind of router ASN a peer without PeerASN accepts.
type DynamicASN string

// The values of Peer.DynamicASN.
const (
	DynamicInternal DynamicASN = "internal"
	DynamicExternal DynamicASN = "external"
)

func (p *Peer) validate() error {
	if p.Name == "" {
		return errors.New("name: must not be empty")
	}
	if p.Address.IsValid() == (p.Interface != "") {
		return errors.New("address, interface: set exactly one")
	}
	switch {
	case p.PeerASN != 0 && p.DynamicASN != "":
		return errors.New("peerASN, dynamicASN: set exactly one")
	case p.PeerASN == 0 && p.DynamicASN == "":
		return errors.New("peerASN: must not be zero")
	case p.DynamicASN != "" && p.DynamicASN != DynamicInternal && p.DynamicASN != DynamicExternal:
		return fmt.Errorf("dynamicASN %q: must be internal or external", p.DynamicASN)
	}
	if p.Interface != "" && (p.SourceAddress.IsValid() || p.EBGPMultiHopTTL > 0 || p.BFD != nil) {
		return errors.New("interface: sourceAddress, ebgpMultiHop and BFD are not supported on an unnumbered session")
	}
	if p.VRF != "" && p.BFD != nil {
		return errors.New("vrf: BFD is not supported in a VRF")
	}
	if p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Unmap().Is4() {
		return fmt.Errorf("sourceAddress %v: not of the family of address %v", p.SourceAddress, p.Address)
	}
	if p.NextHopIPv4.IsValid() && !p.NextHopIPv4.Is4() {
		return fmt.Errorf("nextHopIPv4 %v: not an IPv4 address", p.NextHopIPv4)
	}
	if p.NextHopIPv6.IsValid() && (!p.NextHopIPv6.Is6() || p.NextHopIPv6.Is4In6()) {
		return fmt.Errorf("nextHopIPv6 %v: not an IPv6 address", p.NextHopIPv6)
	}
	if p.HoldTime != 0 && p.HoldTime < 3*time.Second {
		return fmt.Errorf("holdTime %v: must be at least 3s", p.HoldTime)
	}
	if p.KeepaliveTime != 0 && p.HoldTime != 0 && p.KeepaliveTime > p.HoldTime {
		return fmt.Errorf("keepaliveTime %v: must not exceed holdTime %v", p.KeepaliveTime, p.HoldTime)
	}
	if p.GracefulRestartTime < 0 || p.GracefulRestartTime > maxGracefulRestartTime {
		return fmt.Errorf("gracefulRestartTime %v: must be within 0..%v", p.GracefulRestartTime, maxGracefulRestartTime)
	}
	if b := p.BFD; b != nil {
		if b.ReceiveInterval < 0 || b.TransmitInterval < 0 {
			return errors.New("bfd intervals: must not be negative")
		}
	}
	return nil
}

// equal reports whether two peer configurations are the same.
func (p *Peer) equal(q *Peer) bool {
	if (p.BFD == nil) != (q.BFD == nil) || (p.BFD != nil && *p.BFD != *q.BFD) {
		return false
	}
	a, b := *p, *q
	a.BFD, b.BFD = nil, nil
	return a == b
}

// Advertisement is one prefix the speaker announces.
type Advertisement struct {
	// Prefix is announced after masking (netip.Prefix.Masked), so the
	// caller may pass the service IP with the aggregation length as is:
	// 203.0.113.7/24 announces 203.0.113.0/24.
	Prefix netip.Prefix
	// NextHop, if set, is the next hop sent for this prefix to every peer.
	// Unset means the session's local address (or the Peer's NextHopIPv4 /
	// NextHopIPv6).
	NextHop netip.Addr
	// Communities are standard communities (RFC 1997), each ASN<<16|value.
	Communities []uint32
	// LargeCommunities are large communities (RFC 8092).
	LargeCommunities []LargeCommunity
	// LocalPref is the LOCAL_PREF sent to iBGP peers; zero means not set
	// (iBGP peers then get 100). It is never sent to eBGP peers.
	LocalPref uint32
	// Peers restricts the announcement to the peers of these names. Empty
	// means every peer.
	Peers []string
}

// LargeCommunity is a BGP large community (RFC 8092).
type LargeCommunity struct {
	// GlobalAdmin is the ASN of the community's owner.
	GlobalAdmin uint32
	// LocalData1 and LocalData2 are the owner's values.
	LocalData1, LocalData2 uint32
}

// String returns the canonical "global:local1:local2" form.
func (c LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", c.GlobalAdmin, c.LocalData1, c.LocalData2)
}

func compareLarge(a, b LargeCommunity) int {
	switch {
	case a.GlobalAdmin != b.GlobalAdmin:
		return cmpU32(a.GlobalAdmin, b.GlobalAdmin)
	case a.LocalData1 != b.LocalData1:
		return cmpU32(a.LocalData1, b.LocalData1)
	default:
		return cmpU32(a.LocalData2, b.LocalData2)
	}
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// route is the normalised, comparable form of the advertisements of one
// prefix: what the speaker has put, or wants to put, into GoBGP's RIB.
type route struct {
	prefix    netip.Prefix
	nextHop   netip.Addr
	comms     []uint32         // sorted, unique
	large     []LargeCommunity // sorted, unique
	localPref uint32
	peers     []string // sorted, unique; nil means every peer
}

func (r *route) equal(o *route) bool {
	return r.prefix == o.prefix && r.nextHop == o.nextHop && r.localPref == o.localPref &&
		slices.Equal(r.comms, o.comms) && slices.Equal(r.large, o.large) && slices.Equal(r.peers, o.peers)
}

// routesFrom normalises and merges advertisements by masked prefix. The
// advertisements of one prefix merge into one path, as GoBGP holds one
// local path per prefix: communities and large communities are united,
// the highest local preference wins, and the peer sets are united (an
// unrestricted advertisement makes the prefix unrestricted). Different
// next hops for one prefix are an error.
func routesFrom(ads []Advertisement) (map[netip.Prefix]*route, error) {
	out := make(map[netip.Prefix]*route, len(ads))
	var errs []error
	for i := range ads {
		a := &ads[i]
		if !a.Prefix.IsValid() {
			errs = append(errs, fmt.Errorf("advertisement %d: invalid prefix", i))
			continue
		}
		addr := a.Prefix.Addr()
		if addr.Zone() != "" {
			errs = append(errs, fmt.Errorf("prefix %v: zoned address", a.Prefix))
			continue
		}
		p := a.Prefix.Masked()
		if addr.Is4In6() {
			if a.Prefix.Bits() < 96 {
				errs = append(errs, fmt.Errorf("prefix %v: IPv4-mapped prefix shorter than /96", a.Prefix))
				continue
			}
			p = netip.PrefixFrom(addr.Unmap(), a.Prefix.Bits()-96).Masked()
		}
		nh := a.NextHop.Unmap()
		if nh.IsValid() && nh.Is4() != p.Addr().Is4() && p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("prefix %v: IPv6 next hop %v for an IPv4 prefix", p, a.NextHop))
			continue
		}
		r, ok := out[p]
		if !ok {
			r = &route{prefix: p, nextHop: nh, localPref: a.LocalPref}
			if len(a.Peers) == 0 {
				r.peers = nil
			} else {
				r.peers = []string{}
			}
			out[p] = r
		} else if r.nextHop != nh {
			errs = append(errs, fmt.Errorf("prefix %v: conflicting next hops %v and %v", p, r.nextHop, nh))
			continue
		}
		r.comms = append(r.comms, a.Communities...)
		r.large = append(r.large, a.LargeCommunities...)
		r.localPref = max(r.localPref, a.LocalPref)
		if len(a.Peers) == 0 {
			r.peers = nil
		} else if r.peers != nil {
			r.peers = append(r.peers, a.Peers...)
		}
	}
	for _, r := range out {
		slices.Sort(r.comms)
		r.comms = slices.Compact(r.comms)
		slices.SortFunc(r.large, compareLarge)
		r.large = slices.Compact(r.large)
		if r.peers != nil {
			slices.Sort(r.peers)
			r.peers = slices.Compact(r.peers)
		}
	}
	return out, errors.Join(errs...)
}
