package layer2

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// etherTypeARP is ARP's EtherType, for the raw socket.
const etherTypeARP = 0x0806

// readBuffer is the receive buffer asked for the raw sockets, so that a
// burst of frames (a flood of garbage from a hostile neighbour) does not
// crowd out the real requests. The kernel caps it at net.core.rmem_max.
const readBuffer = 4 << 20

// setReadBuffer raises conn's receive buffer, best effort: the default
// still works, only less well under a flood.
func setReadBuffer(conn *packet.Conn) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer)
	})
}

// ARPResponder answers ARP requests on one interface for the IPv4
// addresses it owns, and sends gratuitous ARP when it takes one over.
type ARPResponder struct {
	ifi   net.Interface
	conn  net.PacketConn
	owned *ipSet
	stats *Stats
	log   *slog.Logger
	burst *burster
	count int
	// rejects counts the malformed frames the socket's filter drops; nil
	// for a conn from NewARPResponder.
	rejects *rejectCounter
}

// ListenARP opens a raw packet socket for ARP on ifi (it needs CAP_NET_RAW)
// and returns a responder on it. A kernel filter on the socket lets only
// well-formed requests through; a second socket counts the malformed frames
// it drops (see filter.go).
func ListenARP(ifi *net.Interface, o Options) (*ARPResponder, error) {
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: assemble(arpFilter.responderFilter())})
	if err != nil {
		return nil, fmt.Errorf("interface %s: open ARP socket: %w", ifi.Name, err)
	}
	setReadBuffer(conn)
	rejects, err := listenRejects(ifi, etherTypeARP, arpFilter)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	r, err := NewARPResponder(ifi, conn, o)
	if err != nil {
		_ = conn.Close()
		rejects.close()
		return nil, err
	}
	r.rejects = rejects
	return r, nil
}

// NewARPResponder returns a responder that reads and writes Ethernet frames
// through conn, as if attached to ifi. Frames are written to a
// *packet.Addr holding the destination MAC. The responder owns conn and
// closes it when Run returns.
func NewARPResponder(ifi *net.Interface, conn net.PacketConn, o Options) (*ARPResponder, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s: ARP needs a 6-byte MAC address, have %q", ifi.Name, ifi.HardwareAddr)
	}
	o = o.withDefaults()
	r := &ARPResponder{
		ifi:   *ifi,
		conn:  conn,
		owned: newIPSet(),
		stats: o.Stats,
		log:   o.Logger.With(slog.String("interface", ifi.Name), slog.String("protocol", "arp")),
		count: o.GratuitousCount,
	}
	r.burst = newBurster(o, r.gratuitous, r.owned.list)
	return r, nil
}

// Add makes the responder answer for ip and, if it did not already, starts
// a gratuitous ARP burst. It reports whether ip was added; IPv6 addresses
// are refused.
func (r *ARPResponder) Add(ip netip.Addr) bool {
	if !ip.Is4() || !r.owned.add(ip) {
		return false
	}
	r.burst.schedule(ip, r.count)
	return true
}

// Reannounce starts a gratuitous ARP burst for every owned IP.
func (r *ARPResponder) Reannounce() {
	for _, ip := range r.owned.list() {
		r.burst.schedule(ip, r.count)
	}
}

// Remove stops answering for ip.
func (r *ARPResponder) Remove(ip netip.Addr) {
	r.owned.remove(ip)
	r.burst.cancel(ip)
}

// Owns reports whether the responder answers for ip.
func (r *ARPResponder) Owns(ip netip.Addr) bool { return r.owned.has(ip) }

// Run answers requests until ctx is done or the connection fails, then
// closes the connection. It returns nil when ctx ended it.
func (r *ARPResponder) Run(ctx context.Context) error {
	buf := make([]byte, 1500)
	defer r.rejects.start(ctx, r.stats)()
	return serve(ctx, r.conn, r.burst, "ARP", r.ifi.Name, func() error {
		n, _, err := r.conn.ReadFrom(buf)
		if err == nil {
			r.handle(buf[:n])
		}
		return err
	})
}

// handle processes one received frame and reports whether it replied.
// It must accept any bytes without panicking.
func (r *ARPResponder) handle(b []byte) bool {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		r.stats.Malformed.Add(1)
		return false
	}
	if f.EtherType != ethernet.EtherTypeARP {
		return false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		r.stats.Malformed.Add(1)
		return false
	}
	if p.Operation != arp.OperationRequest {
		return false
	}
	r.stats.ARPRequests.Add(1)
	if !p.TargetIP.Is4() || !r.owned.has(p.TargetIP) {
		return false
	}
	if bytes.Equal(p.SenderHardwareAddr, r.ifi.HardwareAddr) || bytes.Equal(f.Source, r.ifi.HardwareAddr) {
		return false // our own
	}
	if len(p.SenderHardwareAddr) != 6 || len(f.Source) != 6 || !p.SenderIP.Is4() {
		r.stats.Malformed.Add(1)
		return false
	}
	reply, err := arp.NewPacket(arp.OperationReply, r.ifi.HardwareAddr, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
	if err != nil {
		r.stats.Malformed.Add(1)
		return false
	}
	// Reply to the frame's source, which is where the asker listens even
	// when it fills in another sender address (a proxy, a bridge).
	if err := r.write(reply, f.Source); err != nil {
		r.stats.SendErrors.Add(1)
		r.log.Warn("ARP reply failed", slog.String("ip", p.TargetIP.String()), slog.Any("error", err))
		return false
	}
	r.stats.ARPReplies.Add(1)
	return true
}

// gratuitous announces ip with an ARP request and an ARP reply, both
// broadcast with sender and target IP set to ip: hosts and switches differ
// in which one they heed.
func (r *ARPResponder) gratuitous(ip netip.Addr) {
	if !r.owned.has(ip) {
		return
	}
	for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
		p, err := arp.NewPacket(op, r.ifi.HardwareAddr, ip, ethernet.Broadcast, ip)
		if err == nil {
			err = r.write(p, ethernet.Broadcast)
		}
		if err != nil {
			r.stats.SendErrors.Add(1)
			r.log.Warn("gratuitous ARP failed", slog.String("ip", ip.String()), slog.Any("error", err))
			continue
		}
		r.stats.GratuitousARP.Add(1)
	}
}

func (r *ARPResponder) write(p *arp.Packet, dst net.HardwareAddr) error {
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	f := ethernet.Frame{
		Destination: dst,
		Source:      r.ifi.HardwareAddr,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	fb, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	if err := r.conn.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	_, err = r.conn.WriteTo(fb, &packet.Addr{HardwareAddr: dst})
	return err
}
