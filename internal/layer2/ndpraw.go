package layer2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
)

// Offsets in an Ethernet frame carrying IPv6 without extension headers.
const (
	etherTypeIPv6  = 0x86dd
	ethHeaderLen   = 14
	ipv6HeaderLen  = 40
	offNextHeader  = ethHeaderLen + 6
	offHopLimit    = ethHeaderLen + 7
	offSrc         = ethHeaderLen + 8
	offICMPv6      = ethHeaderLen + ipv6HeaderLen
	protocolICMPv6 = 58
)

// rawNDPConn is an [NDPConn] on a raw packet socket. The kernel hands an
// ICMPv6 socket only the solicitations addressed to one of its own
// addresses or to a multicast group it joined, so it never sees the unicast
// solicitations a client sends to a load-balancer IP (which the node does
// not hold) to confirm a stale neighbour entry: without them, the client's
// entry fails and every such check costs an outage. A packet socket sees
// every frame of the interface; a BPF filter keeps the well-formed
// solicitations, and a second socket counts the malformed ones it drops
// (see filter.go).
//
// Replies are built as whole frames, sent straight to the solicitor's MAC
// (the source of the frame that asked): the kernel does not have to resolve
// the solicitor first, which made the first IPv6 resolution take a second.
// The ICMPv6 socket is kept only to join the solicited-node multicast groups,
// which programs the NIC's multicast filter; it reads nothing.
type rawNDPConn struct {
	ifi    net.Interface
	pc     *packet.Conn
	groups *ndp.Conn
	src    netip.Addr // the interface's link-local address: our NAs' source

	buf []byte // frame buffer, used by ReadRaw only

	// rejects counts the malformed solicitations the filter drops; the
	// responder runs it.
	rejects *rejectCounter

	mu      sync.Mutex
	lastIP  netip.Addr       // source of the last solicitation read
	lastMAC net.HardwareAddr // and the MAC it came from
}

// listenRawNDP opens the packet socket and the group socket on ifi.
func listenRawNDP(ifi *net.Interface) (*rawNDPConn, error) {
	groups, src, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("interface %s: open ICMPv6 socket: %w", ifi.Name, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true) // it only holds group memberships
	if err := groups.SetICMPFilter(&f); err != nil {
		_ = groups.Close()
		return nil, fmt.Errorf("interface %s: set ICMPv6 filter: %w", ifi.Name, err)
	}
	pc, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: assemble(ndpFilter.responderFilter())})
	if err != nil {
		_ = groups.Close()
		return nil, fmt.Errorf("interface %s: open IPv6 packet socket: %w", ifi.Name, err)
	}
	setReadBuffer(pc)
	rejects, err := listenRejects(ifi, etherTypeIPv6, ndpFilter)
	if err != nil {
		_ = groups.Close()
		_ = pc.Close()
		return nil, err
	}
	mtu := ifi.MTU
	if mtu < 1280 {
		mtu = 1500
	}
	return &rawNDPConn{ifi: *ifi, pc: pc, groups: groups, src: src.WithZone(""), buf: make([]byte, mtu+ethHeaderLen), rejects: rejects}, nil
}

// ReadRaw implements [NDPConn]: it returns the ICMPv6 message of the next
// solicitation from another host.
func (c *rawNDPConn) ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error) {
	for {
		n, _, err := c.pc.ReadFrom(c.buf)
		if err != nil {
			return 0, nil, netip.Addr{}, err
		}
		body, hop, src, ok := solicitationOf(c.buf[:n], c.ifi.HardwareAddr)
		if !ok {
			continue // not for us, or our own kernel's frame going out
		}
		c.mu.Lock()
		c.lastIP, c.lastMAC = src, append(c.lastMAC[:0], c.buf[6:12]...)
		c.mu.Unlock()
		return copy(b, body), &ipv6.ControlMessage{HopLimit: hop}, src, nil
	}
}

// solicitationOf returns the ICMPv6 message of an Ethernet frame carrying
// ICMPv6 in IPv6 from a MAC other than own, its hop limit and its source;
// ok is false for any other frame. The message of a frame shorter than its
// IPv6 payload length is empty (malformed).
func solicitationOf(f []byte, own net.HardwareAddr) (body []byte, hop int, src netip.Addr, ok bool) {
	n := len(f)
	if n < offICMPv6 || binary.BigEndian.Uint16(f[12:14]) != etherTypeIPv6 || f[ethHeaderLen]>>4 != 6 ||
		f[offNextHeader] != protocolICMPv6 || string(f[6:12]) == string(own) {
		return nil, 0, netip.Addr{}, false
	}
	plen := int(binary.BigEndian.Uint16(f[ethHeaderLen+4 : ethHeaderLen+6]))
	if plen > n-offICMPv6 {
		plen = 0 // truncated, as the kernel's IPv6 would say: the parser rejects it
	}
	src = netip.AddrFrom16([16]byte(f[offSrc : offSrc+16]))
	return f[offICMPv6 : offICMPv6+plen], int(f[offHopLimit]), src, true
}

// WriteTo implements [NDPConn]. A multicast dst goes to its multicast MAC;
// a unicast dst must be the source of the last solicitation read, and goes
// to the MAC that solicitation came from.
func (c *rawNDPConn) WriteTo(m ndp.Message, _ *ipv6.ControlMessage, dst netip.Addr) error {
	var mac net.HardwareAddr
	if dst.IsMulticast() {
		d := dst.As16()
		mac = net.HardwareAddr{0x33, 0x33, d[12], d[13], d[14], d[15]}
	} else {
		c.mu.Lock()
		if c.lastIP == dst {
			mac = append(net.HardwareAddr(nil), c.lastMAC...)
		}
		c.mu.Unlock()
		if mac == nil {
			return fmt.Errorf("no link-layer address known for %s", dst)
		}
	}
	icmp, err := ndp.MarshalMessageChecksum(m, c.src, dst)
	if err != nil {
		return fmt.Errorf("marshal %T: %w", m, err)
	}
	frame := make([]byte, offICMPv6+len(icmp))
	copy(frame[0:6], mac)
	copy(frame[6:12], c.ifi.HardwareAddr)
	binary.BigEndian.PutUint16(frame[12:14], etherTypeIPv6)
	ip := frame[ethHeaderLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6] = protocolICMPv6
	ip[7] = ndp.HopLimit
	s, d := c.src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	copy(frame[offICMPv6:], icmp)
	if _, err := c.pc.WriteTo(frame, &packet.Addr{HardwareAddr: mac}); err != nil {
		return fmt.Errorf("interface %s: send to %s: %w", c.ifi.Name, dst, err)
	}
	return nil
}

// JoinGroup implements [NDPConn].
func (c *rawNDPConn) JoinGroup(group netip.Addr) error { return c.groups.JoinGroup(group) }

// LeaveGroup implements [NDPConn].
func (c *rawNDPConn) LeaveGroup(group netip.Addr) error { return c.groups.LeaveGroup(group) }

// Close implements [NDPConn].
func (c *rawNDPConn) Close() error {
	return errors.Join(c.pc.Close(), c.groups.Close())
}
