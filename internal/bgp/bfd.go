package bgp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Herald runs its own BFD (RFC 5880 asynchronous mode, single hop per RFC
// 5881 and multihop per RFC 5883) instead of GoBGP's, because GoBGP v4's
// falls silent when it stops (a router then reads a graceful restart as a
// failure and drops the stale routes), cannot wait for the router to speak
// first (passive mode), does not check the TTL of what it receives, and
// reports every BFD failure as an administrative reset. This one sends
// AdminDown (diagnostic 7) when a session is stopped, supports passive
// mode, enforces the TTL rules (255 on single-hop sessions, at least
// MinimumTTL on multihop ones) and says why a session went down.

// BFD UDP ports (RFC 5881, RFC 5883).
const (
	bfdPortSingleHop = 3784
	bfdPortMultiHop  = 4784
)

// BFD states on the wire (RFC 5880 section 4.1).
const (
	bfdWireAdminDown = 0
	bfdWireDown      = 1
	bfdWireInit      = 2
	bfdWireUp        = 3
)

// BFD diagnostics (RFC 5880 section 4.1).
const (
	bfdDiagNone           = 0
	bfdDiagDetectExpired  = 1
	bfdDiagNeighborDown   = 3
	bfdDiagAdminDown      = 7
	bfdPacketLen          = 24
	bfdFlagPoll           = 0x20
	bfdFlagFinal          = 0x10
	bfdFlagMultipoint     = 0x01
	bfdFlagAuthentication = 0x04
)

// bfdDiagName names a diagnostic code (RFC 5880 section 4.1).
func bfdDiagName(d uint8) string {
	names := []string{"none", "control detection time expired", "echo function failed", "neighbor signaled session down",
		"forwarding plane reset", "path down", "concatenated path down", "administratively down", "reverse concatenated path down"}
	if int(d) < len(names) {
		return fmt.Sprintf("%d, %s", d, names[d])
	}
	return fmt.Sprintf("%d", d)
}

// bfdPacket is a BFD control packet without authentication.
type bfdPacket struct {
	diag, state     uint8
	poll, final     bool
	detectMult      uint8
	myDisc, yourDis uint32
	desiredMinTx    uint32 // microseconds
	requiredMinRx   uint32 // microseconds
}

func (p *bfdPacket) marshal() []byte {
	b := make([]byte, bfdPacketLen)
	b[0] = 1<<5 | p.diag&0x1f
	b[1] = p.state << 6
	if p.poll {
		b[1] |= bfdFlagPoll
	}
	if p.final {
		b[1] |= bfdFlagFinal
	}
	b[2] = p.detectMult
	b[3] = bfdPacketLen
	binary.BigEndian.PutUint32(b[4:], p.myDisc)
	binary.BigEndian.PutUint32(b[8:], p.yourDis)
	binary.BigEndian.PutUint32(b[12:], p.desiredMinTx)
	binary.BigEndian.PutUint32(b[16:], p.requiredMinRx)
	// Required Min Echo RX Interval 0: this end does not loop echo packets.
	return b
}

// parseBFD checks a received packet as RFC 5880 section 6.8.6 asks, up to
// the session lookup.
func parseBFD(b []byte) (*bfdPacket, error) {
	if len(b) < bfdPacketLen {
		return nil, errors.New("short packet")
	}
	if b[0]>>5 != 1 {
		return nil, fmt.Errorf("version %d", b[0]>>5)
	}
	if l := int(b[3]); l < bfdPacketLen || l > len(b) {
		return nil, fmt.Errorf("length field %d", b[3])
	}
	if b[1]&bfdFlagAuthentication != 0 {
		return nil, errors.New("authentication is not supported")
	}
	if b[1]&bfdFlagMultipoint != 0 {
		return nil, errors.New("multipoint bit set")
	}
	p := &bfdPacket{
		diag:          b[0] & 0x1f,
		state:         b[1] >> 6,
		poll:          b[1]&bfdFlagPoll != 0,
		final:         b[1]&bfdFlagFinal != 0,
		detectMult:    b[2],
		myDisc:        binary.BigEndian.Uint32(b[4:]),
		yourDis:       binary.BigEndian.Uint32(b[8:]),
		desiredMinTx:  binary.BigEndian.Uint32(b[12:]),
		requiredMinRx: binary.BigEndian.Uint32(b[16:]),
	}
	if p.detectMult == 0 {
		return nil, errors.New("detect multiplier 0")
	}
	if p.myDisc == 0 {
		return nil, errors.New("my discriminator 0")
	}
	if p.yourDis == 0 && p.state != bfdWireDown && p.state != bfdWireAdminDown {
		return nil, errors.New("your discriminator 0 in state Init or Up")
	}
	return p, nil
}

// bfdChange reports one state change of a BFD session.
type bfdChange struct {
	peer     netip.Addr
	old, new BFDState
	// failure is set when the session went down from Up for a reason that
	// must reset the BGP session: the detection time expired or the router
	// signalled Down. An AdminDown from the router is not a failure (RFC
	// 5882 section 3.2).
	failure bool
	reason  string
}

// bfdServer owns the BFD sessions of one Speaker: one listening socket
// per family and port, and one goroutine per session.
type bfdServer struct {
	log      *slog.Logger
	onChange func(bfdChange) // called from session goroutines; must not block long

	mu        sync.Mutex
	sessions  map[netip.Addr]*bfdSession
	byDisc    map[uint32]*bfdSession
	listeners map[string]net.PacketConn // "udp4/3784" -> socket
	wg        sync.WaitGroup
	closed    bool
}

func newBFDServer(log *slog.Logger, onChange func(bfdChange)) *bfdServer {
	return &bfdServer{
		log: log, onChange: onChange,
		sessions: map[netip.Addr]*bfdSession{}, byDisc: map[uint32]*bfdSession{},
		listeners: map[string]net.PacketConn{},
	}
}

// bfdSession is one BFD session; its fields below the line are owned by
// its goroutine.
type bfdSession struct {
	srv      *bfdServer
	peer     netip.Addr
	port     uint16
	local    netip.Addr
	multihop bool
	cfg      BFD
	myDisc   uint32
	rx       chan bfdRx
	stop     chan chan struct{}
	conn     *net.UDPConn

	mu    sync.Mutex // guards state for readers
	state BFDState

	// Owned by run.
	remoteDisc   uint32
	remoteState  uint8
	remoteMinRx  time.Duration
	remoteMinTx  time.Duration
	remoteMult   uint8
	diag         uint8
	heard        bool // a packet arrived: passive sessions start sending
	lastReceived time.Time
}

type bfdRx struct {
	p   *bfdPacket
	ttl int
}

func (b *BFD) rxInterval() time.Duration {
	if b.ReceiveInterval > 0 {
		return b.ReceiveInterval
	}
	return time.Second
}

func (b *BFD) txInterval() time.Duration {
	if b.TransmitInterval > 0 {
		return b.TransmitInterval
	}
	return time.Second
}

func (b *BFD) multiplier() uint8 {
	if b.DetectMultiplier > 0 {
		return b.DetectMultiplier
	}
	return 3
}

// add starts a session with peer. local, if valid, is the source address;
// multihop selects RFC 5883 (port 4784, TTL at least cfg.MinimumTTL)
// instead of RFC 5881 (port 3784, TTL 255).
func (s *bfdServer) add(peer, local netip.Addr, multihop bool, cfg BFD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("bfd: stopped")
	}
	if _, ok := s.sessions[peer]; ok {
		return fmt.Errorf("bfd: session with %v exists", peer)
	}
	lport := uint16(bfdPortSingleHop)
	if multihop {
		lport = bfdPortMultiHop
	}
	if err := s.listenLocked(peer.Is4(), lport); err != nil {
		return err
	}
	port := cfg.Port
	if port == 0 {
		port = lport
	}
	conn, err := dialBFD(peer, local, port)
	if err != nil {
		return err
	}
	var disc uint32
	for disc == 0 || s.byDisc[disc] != nil {
		disc = rand.Uint32()
	}
	ss := &bfdSession{
		srv: s, peer: peer, port: port, local: local, multihop: multihop, cfg: cfg, myDisc: disc,
		rx: make(chan bfdRx, 8), stop: make(chan chan struct{}), conn: conn, state: BFDDown,
	}
	s.sessions[peer] = ss
	s.byDisc[disc] = ss
	s.wg.Add(1)
	go ss.run()
	return nil
}

// remove stops the session with peer, sending AdminDown first.
func (s *bfdServer) remove(peer netip.Addr) {
	s.mu.Lock()
	ss := s.sessions[peer]
	if ss != nil {
		delete(s.sessions, peer)
		delete(s.byDisc, ss.myDisc)
	}
	s.mu.Unlock()
	if ss != nil {
		ss.halt()
	}
}

// stopAll sends AdminDown on every session and stops them and the
// listeners. It is idempotent.
func (s *bfdServer) stopAll() {
	s.mu.Lock()
	s.closed = true
	sessions := s.sessions
	s.sessions, s.byDisc = map[netip.Addr]*bfdSession{}, map[uint32]*bfdSession{}
	listeners := s.listeners
	s.listeners = map[string]net.PacketConn{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, ss := range sessions {
		wg.Add(1)
		go func() { defer wg.Done(); ss.halt() }()
	}
	wg.Wait()
	for _, l := range listeners {
		// Closing ends serve's read; a close error on a UDP socket we
		// are discarding leaves nothing to do.
		_ = l.Close()
	}
	s.wg.Wait()
}

// state returns the local state of the session with peer.
func (s *bfdServer) state(peer netip.Addr) (BFDState, bool) {
	s.mu.Lock()
	ss := s.sessions[peer]
	s.mu.Unlock()
	if ss == nil {
		return BFDDisabled, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.state, true
}

func (s *bfdServer) listenLocked(v4 bool, port uint16) error {
	network := "udp6"
	if v4 {
		network = "udp4"
	}
	key := fmt.Sprintf("%s/%d", network, port)
	if s.listeners[key] != nil {
		return nil
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), network, fmt.Sprintf(":%d", port))
	if err != nil {
		return fmt.Errorf("bfd: listen on %s port %d: %w", network, port, err)
	}
	var read func([]byte) (int, int, netip.Addr, error)
	if v4 {
		c := ipv4.NewPacketConn(pc)
		if err := c.SetControlMessage(ipv4.FlagTTL, true); err != nil {
			_ = pc.Close() // the setsockopt error is the one to report
			return fmt.Errorf("bfd: IP_RECVTTL: %w", err)
		}
		read = func(b []byte) (int, int, netip.Addr, error) {
			n, cm, src, err := c.ReadFrom(b)
			ttl := -1
			if cm != nil {
				ttl = cm.TTL
			}
			return n, ttl, addrOf(src), err
		}
	} else {
		c := ipv6.NewPacketConn(pc)
		if err := c.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
			_ = pc.Close() // the setsockopt error is the one to report
			return fmt.Errorf("bfd: IPV6_RECVHOPLIMIT: %w", err)
		}
		read = func(b []byte) (int, int, netip.Addr, error) {
			n, cm, src, err := c.ReadFrom(b)
			ttl := -1
			if cm != nil {
				ttl = cm.HopLimit
			}
			return n, ttl, addrOf(src), err
		}
	}
	s.listeners[key] = pc
	s.wg.Add(1)
	go s.serve(read)
	return nil
}

func addrOf(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(u.IP)
		return ip.Unmap().WithZone(u.Zone)
	}
	return netip.Addr{}
}

// serve reads one listening socket until it is closed.
func (s *bfdServer) serve(read func([]byte) (int, int, netip.Addr, error)) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, ttl, src, err := read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p, err := parseBFD(buf[:n])
		if err != nil {
			s.log.Debug("BFD packet dropped", slog.String("from", src.String()), slog.String("error", err.Error()))
			continue
		}
		s.mu.Lock()
		var ss *bfdSession
		if p.yourDis != 0 {
			ss = s.byDisc[p.yourDis]
		} else {
			ss = s.sessions[src.WithZone("")]
			if ss == nil {
				ss = s.sessions[src]
			}
		}
		s.mu.Unlock()
		if ss == nil || (ss.peer.WithZone("") != src.WithZone("")) {
			continue // unknown session, or a discriminator from another address
		}
		select {
		case ss.rx <- bfdRx{p: p, ttl: ttl}:
		default: // the session is behind; BFD tolerates a lost packet
		}
	}
}

// dialBFD opens the sending socket of a session: source port in
// 49152-65535 (RFC 5881 section 4), TTL 255.
func dialBFD(peer, local netip.Addr, port uint16) (*net.UDPConn, error) {
	var lastErr error
	for range 16 {
		la := &net.UDPAddr{Port: 49152 + rand.IntN(65536-49152)}
		if local.IsValid() {
			la.IP = local.AsSlice()
			la.Zone = local.Zone()
		}
		ra := &net.UDPAddr{IP: peer.AsSlice(), Zone: peer.Zone(), Port: int(port)}
		network := "udp6"
		if peer.Is4() {
			network = "udp4"
		}
		c, err := net.DialUDP(network, la, ra)
		if err != nil {
			lastErr = err
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return nil, fmt.Errorf("bfd: dial %v: %w", ra, err)
		}
		if peer.Is4() {
			err = ipv4.NewConn(c).SetTTL(255)
		} else {
			err = ipv6.NewConn(c).SetHopLimit(255)
		}
		if err != nil {
			_ = c.Close() // the TTL error is the one to report
			return nil, fmt.Errorf("bfd: set TTL 255: %w", err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("bfd: no free source port: %w", lastErr)
}

// halt stops the session's goroutine, which sends AdminDown first.
func (ss *bfdSession) halt() {
	done := make(chan struct{})
	ss.stop <- done
	<-done
}

func (ss *bfdSession) setState(st BFDState, failure bool, reason string) {
	ss.mu.Lock()
	old := ss.state
	ss.state = st
	ss.mu.Unlock()
	if old == st {
		return
	}
	ss.srv.onChange(bfdChange{peer: ss.peer, old: old, new: st, failure: failure, reason: reason})
}

func (ss *bfdSession) current() BFDState {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.state
}

// txInterval is the negotiated transmit interval: the larger of ours and
// the router's required receive interval (RFC 5880 section 6.8.2).
func (ss *bfdSession) txInterval() time.Duration {
	return max(ss.cfg.txInterval(), ss.remoteMinRx)
}

// detectTime is the detection time of this end (RFC 5880 section 6.8.4).
func (ss *bfdSession) detectTime() time.Duration {
	return time.Duration(ss.remoteMult) * max(ss.cfg.rxInterval(), ss.remoteMinTx)
}

func jitter(d time.Duration) time.Duration {
	// 75% to 100% of the interval (RFC 5880 section 6.8.7).
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

func (ss *bfdSession) run() {
	defer ss.srv.wg.Done()
	// The session ends here, AdminDown already sent: a close error on
	// its UDP socket leaves nothing to do.
	defer func() { _ = ss.conn.Close() }()
	tx := time.NewTimer(0)
	defer tx.Stop()
	nextTx := time.Now()
	detect := time.NewTimer(time.Hour)
	detect.Stop()
	defer detect.Stop()
	for {
		select {
		case done := <-ss.stop:
			ss.sendAdminDown()
			ss.setState(BFDAdminDown, false, "stopped")
			close(done)
			return
		case <-tx.C:
			if !ss.cfg.PassiveMode || ss.heard {
				ss.send(false)
			}
			d := jitter(ss.txInterval())
			tx.Reset(d)
			nextTx = time.Now().Add(d)
		case <-detect.C:
			if st := ss.current(); st == BFDUp || st == BFDInit {
				ss.diag = bfdDiagDetectExpired
				ss.remoteDisc = 0
				reason := fmt.Sprintf("BFD detection time expired: no BFD packet from the router for %v", ss.detectTime())
				ss.setState(BFDDown, st == BFDUp, reason)
			}
		case r := <-ss.rx:
			if !ss.ttlOK(r.ttl) {
				ss.srv.log.Debug("BFD packet dropped: TTL", slog.String("peer", ss.peer.String()), slog.Int("ttl", r.ttl))
				continue
			}
			if ss.receive(r.p) {
				detect.Reset(ss.detectTime())
			} else {
				detect.Stop()
			}
			// A shorter interval takes effect now, not after the packet
			// already scheduled at the longer one: a router that asks for
			// faster packets as its session comes up (FRR polls from 1 s
			// down to its configured interval) expects the next within
			// its new detection time, and a 1 s wait let FRR's detection
			// time (3 x 300 ms) expire right after the session came up.
			if iv := ss.txInterval(); time.Until(nextTx) > iv {
				d := jitter(iv)
				tx.Reset(d)
				nextTx = time.Now().Add(d)
			}
		}
	}
}

// ttlOK applies RFC 5881 section 5 (single hop: TTL 255, GTSM) and RFC
// 5883 section 5 (multihop: at least the configured minimum).
func (ss *bfdSession) ttlOK(ttl int) bool {
	if ttl < 0 {
		return true // the kernel did not say
	}
	if ss.multihop {
		return ttl >= int(max(ss.cfg.MinimumTTL, 1))
	}
	return ttl == 255
}

// receive runs the reception rules of RFC 5880 section 6.8.6 from the
// session lookup on; it reports whether the detection timer should run.
func (ss *bfdSession) receive(p *bfdPacket) bool {
	ss.heard = true
	ss.lastReceived = time.Now()
	// A router that restarts its end of the session (its BFD daemon
	// restarted, or the session was reconfigured) while packets keep
	// flowing talks with another discriminator: its Down is the start of
	// a new session, not a path that failed. (A path that fails is
	// silence: the detection time expires first and forgets the
	// discriminator.)
	restarted := ss.remoteDisc != 0 && p.myDisc != ss.remoteDisc
	prevDisc := ss.remoteDisc
	ss.remoteDisc = p.myDisc
	ss.remoteState = p.state
	ss.remoteMinRx = time.Duration(p.requiredMinRx) * time.Microsecond
	ss.remoteMinTx = time.Duration(p.desiredMinTx) * time.Microsecond
	ss.remoteMult = p.detectMult
	st := ss.current()
	switch p.state {
	case bfdWireAdminDown:
		if st != BFDDown {
			ss.diag = bfdDiagNeighborDown
			ss.setState(BFDDown, false, "the router's BFD session is administratively down")
		}
	case bfdWireDown:
		switch st {
		case BFDDown:
			ss.diag = bfdDiagNone
			ss.setState(BFDInit, false, "")
		case BFDUp:
			ss.diag = bfdDiagNeighborDown
			if restarted {
				ss.setState(BFDDown, false, fmt.Sprintf("the router restarted its BFD session (discriminator %d, was %d): not a path failure", p.myDisc, prevDisc))
				break
			}
			ss.setState(BFDDown, true, fmt.Sprintf("BFD down: the router signalled its BFD session down (diagnostic %s)", bfdDiagName(p.diag)))
		}
	case bfdWireInit:
		if st == BFDDown || st == BFDInit {
			ss.diag = bfdDiagNone
			ss.setState(BFDUp, false, "")
		}
	case bfdWireUp:
		if st == BFDInit {
			ss.diag = bfdDiagNone
			ss.setState(BFDUp, false, "")
		}
	}
	if p.poll {
		ss.send(true)
	}
	st = ss.current()
	if st == BFDDown && p.state == bfdWireAdminDown {
		ss.remoteDisc = 0
	}
	return st == BFDInit || st == BFDUp
}

func (ss *bfdSession) wireState() uint8 {
	switch ss.current() {
	case BFDUp:
		return bfdWireUp
	case BFDInit:
		return bfdWireInit
	case BFDAdminDown:
		return bfdWireAdminDown
	}
	return bfdWireDown
}

func (ss *bfdSession) send(final bool) {
	p := bfdPacket{
		diag: ss.diag, state: ss.wireState(), final: final,
		detectMult:    ss.cfg.multiplier(),
		myDisc:        ss.myDisc,
		yourDis:       ss.remoteDisc,
		desiredMinTx:  uint32(ss.cfg.txInterval() / time.Microsecond),
		requiredMinRx: uint32(ss.cfg.rxInterval() / time.Microsecond),
	}
	if p.state == bfdWireDown {
		// RFC 5880 6.8.7: Your Discriminator is the remote's once known,
		// but a session that went down sends zero until it hears again.
		p.yourDis = ss.remoteDisc
	}
	_, _ = ss.conn.Write(p.marshal())
}

// sendAdminDown tells the router that this end stops the session on
// purpose (diagnostic 7), so that it does not read the silence that
// follows as a failure. Three packets a few milliseconds apart survive a
// lost one.
func (ss *bfdSession) sendAdminDown() {
	if ss.remoteDisc == 0 && !ss.heard {
		return // the router never spoke: nothing to tell
	}
	p := bfdPacket{
		diag: bfdDiagAdminDown, state: bfdWireAdminDown, detectMult: ss.cfg.multiplier(),
		myDisc: ss.myDisc, yourDis: ss.remoteDisc,
		desiredMinTx:  uint32(ss.cfg.txInterval() / time.Microsecond),
		requiredMinRx: uint32(ss.cfg.rxInterval() / time.Microsecond),
	}
	b := p.marshal()
	for i := range 3 {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		_, _ = ss.conn.Write(b)
	}
}
