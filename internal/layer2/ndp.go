package layer2

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// NDPConn is the part of *ndp.Conn an NDPResponder uses; it is the seam
// where tests inject packets.
type NDPConn interface {
	// ReadRaw reads one ICMPv6 message and returns its length, control
	// message (may be nil) and source address.
	ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error)
	// WriteTo sends m to dst; a nil cm uses the connection's defaults.
	WriteTo(m ndp.Message, cm *ipv6.ControlMessage, dst netip.Addr) error
	// JoinGroup joins the multicast group on the connection's interface.
	JoinGroup(group netip.Addr) error
	// LeaveGroup leaves the multicast group.
	LeaveGroup(group netip.Addr) error
	// Close closes the connection, unblocking ReadRaw.
	Close() error
}

var _ NDPConn = (*ndp.Conn)(nil)

// allNodes is the all-nodes multicast address, ff02::1.
var allNodes = netip.MustParseAddr("ff02::1")

// NDPResponder answers neighbour solicitations on one interface for the
// IPv6 addresses it owns, joining each one's solicited-node multicast group
// while it owns it, and sends unsolicited neighbour advertisements when it
// takes one over.
type NDPResponder struct {
	ifi   net.Interface
	conn  NDPConn
	owned *ipSet
	stats *Stats
	log   *slog.Logger
	burst *burster
	count int
	// rejects counts the malformed solicitations the socket's filter
	// drops; nil for a conn from NewNDPResponder.
	rejects *rejectCounter

	// groups counts the owned IPs per solicited-node group: IPs that share
	// their low 24 bits share a group, which is left with the last of them.
	gmu    sync.Mutex
	groups map[netip.Addr]int
}

// ListenNDP opens a raw packet socket on ifi that receives every neighbour
// solicitation, multicast or unicast (see rawNDPConn for why an ICMPv6
// socket is not enough), plus an ICMPv6 socket on ifi's link-local address
// to join the solicited-node multicast groups; it needs CAP_NET_RAW. The
// interface must have a link-local address, in any position among its
// addresses; it is the source of the advertisements.
func ListenNDP(ifi *net.Interface, o Options) (*NDPResponder, error) {
	conn, err := listenRawNDP(ifi)
	if err != nil {
		return nil, err
	}
	r, err := NewNDPResponder(ifi, conn, o)
	if err != nil {
		_ = conn.Close()
		conn.rejects.close()
		return nil, err
	}
	r.rejects = conn.rejects
	return r, nil
}

// NewNDPResponder returns a responder using conn, as if attached to ifi.
// The responder owns conn and closes it when Run returns.
func NewNDPResponder(ifi *net.Interface, conn NDPConn, o Options) (*NDPResponder, error) {
	if len(ifi.HardwareAddr) == 0 {
		return nil, fmt.Errorf("interface %s: NDP needs a link-layer address", ifi.Name)
	}
	o = o.withDefaults()
	r := &NDPResponder{
		ifi:    *ifi,
		conn:   conn,
		owned:  newIPSet(),
		stats:  o.Stats,
		log:    o.Logger.With(slog.String("interface", ifi.Name), slog.String("protocol", "ndp")),
		count:  o.GratuitousCount,
		groups: make(map[netip.Addr]int),
	}
	r.burst = newBurster(o, r.unsolicited, r.owned.list)
	return r, nil
}

// Add makes the responder answer for ip, joining its solicited-node
// multicast group, and, if it did not already, starts an unsolicited
// advertisement burst. It reports whether ip was added; an error means the
// group could not be joined, and ip is not added.
func (r *NDPResponder) Add(ip netip.Addr) (bool, error) {
	ip = ip.WithZone("")
	if !ip.Is6() || ip.Is4In6() {
		return false, fmt.Errorf("%s is not an IPv6 address", ip)
	}
	if r.owned.has(ip) {
		return false, nil
	}
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return false, fmt.Errorf("solicited-node group of %s: %w", ip, err)
	}
	r.gmu.Lock()
	if r.groups[group] == 0 {
		if err := r.conn.JoinGroup(group); err != nil {
			r.gmu.Unlock()
			return false, fmt.Errorf("interface %s: join %s for %s: %w", r.ifi.Name, group, ip, err)
		}
	}
	r.groups[group]++
	r.gmu.Unlock()
	if !r.owned.add(ip) {
		r.releaseGroup(group)
		return false, nil
	}
	r.burst.schedule(ip, r.count)
	return true, nil
}

// Reannounce starts an unsolicited advertisement burst for every owned IP.
func (r *NDPResponder) Reannounce() {
	for _, ip := range r.owned.list() {
		r.burst.schedule(ip, r.count)
	}
}

// Remove stops answering for ip and leaves its solicited-node group if no
// other owned IP needs it.
func (r *NDPResponder) Remove(ip netip.Addr) {
	ip = ip.WithZone("")
	if !r.owned.remove(ip) {
		return
	}
	r.burst.cancel(ip)
	if group, err := ndp.SolicitedNodeMulticast(ip); err == nil {
		r.releaseGroup(group)
	}
}

func (r *NDPResponder) releaseGroup(group netip.Addr) {
	r.gmu.Lock()
	defer r.gmu.Unlock()
	r.groups[group]--
	if r.groups[group] > 0 {
		return
	}
	delete(r.groups, group)
	if err := r.conn.LeaveGroup(group); err != nil {
		r.log.Warn("leave solicited-node group failed", slog.String("group", group.String()), slog.Any("error", err))
	}
}

// Owns reports whether the responder answers for ip.
func (r *NDPResponder) Owns(ip netip.Addr) bool { return r.owned.has(ip.WithZone("")) }

// Run answers solicitations until ctx is done or the connection fails,
// then closes the connection. It returns nil when ctx ended it.
func (r *NDPResponder) Run(ctx context.Context) error {
	mtu := r.ifi.MTU
	if mtu < 1280 {
		mtu = 1500
	}
	buf := make([]byte, mtu)
	defer r.rejects.start(ctx, r.stats)()
	return serve(ctx, r.conn, r.burst, "NDP", r.ifi.Name, func() error {
		n, cm, src, err := r.conn.ReadRaw(buf)
		if err == nil {
			r.handle(buf[:n], cm, src)
		}
		return err
	})
}

// handle processes one received ICMPv6 message and reports whether it
// replied. It must accept any bytes without panicking.
func (r *NDPResponder) handle(b []byte, cm *ipv6.ControlMessage, src netip.Addr) bool {
	m, err := ndp.ParseMessage(b)
	if err != nil {
		r.stats.Malformed.Add(1)
		return false
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok {
		return false
	}
	// RFC 4861 7.1.1: a solicitation that crossed a router is forged.
	if cm != nil && cm.HopLimit != 0 && cm.HopLimit != ndp.HopLimit {
		r.stats.Malformed.Add(1)
		return false
	}
	r.stats.NDPSolicitations.Add(1)
	target := ns.TargetAddress.WithZone("")
	if !r.owned.has(target) {
		return false
	}
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source && string(lla.Addr) == string(r.ifi.HardwareAddr) {
			return false // our own
		}
	}
	na := &ndp.NeighborAdvertisement{
		Solicited:     true,
		Override:      true,
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: r.ifi.HardwareAddr}},
	}
	dst := src.WithZone("")
	if !dst.IsValid() || dst.IsUnspecified() {
		// RFC 4861 7.2.4: answer duplicate address detection to all nodes.
		na.Solicited = false
		dst = allNodes
	}
	if err := r.conn.WriteTo(na, nil, dst); err != nil {
		r.stats.SendErrors.Add(1)
		r.log.Warn("neighbour advertisement failed", slog.String("ip", target.String()), slog.Any("error", err))
		return false
	}
	r.stats.NDPAdvertisements.Add(1)
	return true
}

// unsolicited announces ip to all nodes with the override flag, so that
// neighbours replace a cached MAC (RFC 4861 7.2.6).
func (r *NDPResponder) unsolicited(ip netip.Addr) {
	if !r.owned.has(ip) {
		return
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: r.ifi.HardwareAddr}},
	}
	if err := r.conn.WriteTo(na, nil, allNodes); err != nil {
		r.stats.SendErrors.Add(1)
		r.log.Warn("unsolicited neighbour advertisement failed", slog.String("ip", ip.String()), slog.Any("error", err))
		return
	}
	r.stats.UnsolicitedNA.Add(1)
}
