package layer2

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// fakePacketConn is an in-memory net.PacketConn: the test pushes frames to
// read and collects the frames written.
type fakePacketConn struct {
	in     chan []byte
	mu     sync.Mutex
	out    [][]byte
	closed chan struct{}
	once   sync.Once
}

func newFakePacketConn() *fakePacketConn {
	return &fakePacketConn{in: make(chan []byte, 16), closed: make(chan struct{})}
}

func (c *fakePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-c.in:
		return copy(b, f), nil, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakePacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, append([]byte(nil), b...))
	return len(b), nil
}

func (c *fakePacketConn) written() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.out...)
}

func (c *fakePacketConn) reset() {
	c.mu.Lock()
	c.out = nil
	c.mu.Unlock()
}

func (c *fakePacketConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *fakePacketConn) LocalAddr() net.Addr                { return nil }
func (c *fakePacketConn) SetDeadline(t time.Time) error      { return nil }
func (c *fakePacketConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fakePacketConn) SetWriteDeadline(t time.Time) error { return nil }

// fakeNDPConn is an in-memory NDPConn.
type fakeNDPConn struct {
	in     chan ndpIn
	mu     sync.Mutex
	out    []ndpOut
	groups map[netip.Addr]bool
	closed chan struct{}
	once   sync.Once
}

type ndpIn struct {
	b   []byte
	cm  *ipv6.ControlMessage
	src netip.Addr
}

type ndpOut struct {
	m   ndp.Message
	dst netip.Addr
}

func newFakeNDPConn() *fakeNDPConn {
	return &fakeNDPConn{in: make(chan ndpIn, 16), groups: map[netip.Addr]bool{}, closed: make(chan struct{})}
}

func (c *fakeNDPConn) ReadRaw(b []byte) (int, *ipv6.ControlMessage, netip.Addr, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.cm, p.src, nil
	case <-c.closed:
		return 0, nil, netip.Addr{}, os.ErrClosed
	}
}

func (c *fakeNDPConn) WriteTo(m ndp.Message, _ *ipv6.ControlMessage, dst netip.Addr) error {
	// Marshal like the real conn does, so invalid messages fail here too.
	if _, err := ndp.MarshalMessage(m); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, ndpOut{m, dst})
	return nil
}

func (c *fakeNDPConn) JoinGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups[g] = true
	return nil
}

func (c *fakeNDPConn) LeaveGroup(g netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.groups, g)
	return nil
}

func (c *fakeNDPConn) joined() map[netip.Addr]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[netip.Addr]bool{}
	for g := range c.groups {
		m[g] = true
	}
	return m
}

func (c *fakeNDPConn) written() []ndpOut {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ndpOut(nil), c.out...)
}

func (c *fakeNDPConn) reset() {
	c.mu.Lock()
	c.out = nil
	c.mu.Unlock()
}

func (c *fakeNDPConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// discardNDP drops what is written.
type discardNDP struct{ *fakeNDPConn }

func (discardNDP) WriteTo(ndp.Message, *ipv6.ControlMessage, netip.Addr) error { return nil }
