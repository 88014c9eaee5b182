package bgp

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestBFDPacketRoundTrip(t *testing.T) {
	p := bfdPacket{diag: bfdDiagAdminDown, state: bfdWireAdminDown, poll: true, detectMult: 3, myDisc: 7, yourDis: 9, desiredMinTx: 300000, requiredMinRx: 250000}
	b := p.marshal()
	if b[0] != 0x27 || b[1] != 0x20 || b[3] != 24 {
		t.Errorf("header bytes % x", b[:4])
	}
	q, err := parseBFD(b)
	if err != nil {
		t.Fatal(err)
	}
	if *q != p {
		t.Errorf("round trip: %+v, want %+v", *q, p)
	}
}

func TestBFDPacketRejects(t *testing.T) {
	good := bfdPacket{state: bfdWireUp, detectMult: 3, myDisc: 1, yourDis: 2}
	for _, tc := range []struct {
		desc string
		mut  func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:20] }},
		{"version 0", func(b []byte) []byte { b[0] &^= 0xe0; return b }},
		{"length beyond packet", func(b []byte) []byte { b[3] = 40; return b }},
		{"authentication", func(b []byte) []byte { b[1] |= bfdFlagAuthentication; return b }},
		{"multipoint", func(b []byte) []byte { b[1] |= bfdFlagMultipoint; return b }},
		{"detect multiplier 0", func(b []byte) []byte { b[2] = 0; return b }},
		{"my discriminator 0", func(b []byte) []byte { clear(b[4:8]); return b }},
		{"your discriminator 0 in Up", func(b []byte) []byte { clear(b[8:12]); return b }},
	} {
		if _, err := parseBFD(tc.mut(good.marshal())); err == nil {
			t.Errorf("%s: accepted", tc.desc)
		}
	}
}

// TestBFDSessionStates drives one session's receive rules (RFC 5880
// 6.8.6) without sockets: Down -> Init -> Up on the three-way handshake,
// a remote Down is a failure, a remote AdminDown is not, nor is the Down
// of a session the router restarted (a new discriminator), and the detection
// time follows the negotiated intervals.
func TestBFDSessionStates(t *testing.T) {
	var changes []bfdChange
	srv := &bfdServer{onChange: func(c bfdChange) { changes = append(changes, c) }}
	ss := &bfdSession{srv: srv, cfg: BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond}, myDisc: 5, state: BFDDown}
	rx := func(state uint8, desiredTx time.Duration) bool {
		return ss.receive(&bfdPacket{state: state, detectMult: 3, myDisc: 77, yourDis: 5,
			desiredMinTx: uint32(desiredTx / time.Microsecond), requiredMinRx: 300000})
	}
	if !rx(bfdWireDown, time.Second) || ss.current() != BFDInit {
		t.Fatalf("remote Down from Down: %v", ss.current())
	}
	if ss.detectTime() != 3*time.Second {
		t.Errorf("detect time %v, want 3 x the remote's slower 1s", ss.detectTime())
	}
	if !rx(bfdWireUp, 300*time.Millisecond) || ss.current() != BFDUp {
		t.Fatalf("remote Up from Init: %v", ss.current())
	}
	if ss.detectTime() != 900*time.Millisecond {
		t.Errorf("detect time %v, want 900ms", ss.detectTime())
	}
	rx(bfdWireAdminDown, 300*time.Millisecond)
	if ss.current() != BFDDown || changes[len(changes)-1].failure {
		t.Errorf("remote AdminDown: %v, failure %v; want Down, not a failure (RFC 5882 3.2)", ss.current(), changes[len(changes)-1].failure)
	}
	rx(bfdWireDown, 300*time.Millisecond)
	rx(bfdWireUp, 300*time.Millisecond)
	if ss.current() != BFDUp {
		t.Fatalf("back up: %v", ss.current())
	}
	rx(bfdWireDown, 300*time.Millisecond)
	if c := changes[len(changes)-1]; ss.current() != BFDDown || !c.failure || c.reason == "" {
		t.Errorf("remote Down from Up: %v, %+v; want a failure with a reason", ss.current(), c)
	}
	// The router restarts its end (a new discriminator, Your
	// Discriminator zero): its Down starts a new session, the path did not
	// fail, and the BGP session must not be reset for it.
	rx(bfdWireDown, 300*time.Millisecond)
	rx(bfdWireUp, 300*time.Millisecond)
	if ss.current() != BFDUp {
		t.Fatalf("back up: %v", ss.current())
	}
	ss.receive(&bfdPacket{state: bfdWireDown, detectMult: 3, myDisc: 78, desiredMinTx: 1000000, requiredMinRx: 300000})
	if c := changes[len(changes)-1]; ss.current() != BFDDown || c.failure {
		t.Errorf("Down from the router's restarted session: %v, %+v; want Down, not a failure", ss.current(), c)
	}
	ss.receive(&bfdPacket{state: bfdWireDown, detectMult: 3, myDisc: 78, desiredMinTx: 1000000, requiredMinRx: 300000})
	if ss.current() != BFDInit {
		t.Errorf("the restarted session's next Down: %v, want Init", ss.current())
	}
	ss.multihop = false
	if ss.ttlOK(254) || !ss.ttlOK(255) {
		t.Error("single hop must accept TTL 255 only")
	}
	ss.multihop, ss.cfg.MinimumTTL = true, 250
	if ss.ttlOK(249) || !ss.ttlOK(250) {
		t.Error("multihop must accept TTL >= minimumTtl only")
	}
}

// TestBFDFasterIntervalTakesEffectNow: when the router lowers its required
// receive interval (FRR polls from its slow 1 s to its configured interval
// as its session comes up), the next packet goes out within the new
// interval, not at the slow one already scheduled: FRR's detection time
// (3 x 300 ms) otherwise expired right after the session came up.
func TestBFDFasterIntervalTakesEffectNow(t *testing.T) {
	router, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	conn, err := net.DialUDP("udp4", nil, router.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	srv := newBFDServer(slog.New(slog.DiscardHandler), func(bfdChange) {})
	ss := &bfdSession{srv: srv, peer: netip.MustParseAddr("127.0.0.1"), myDisc: 5, state: BFDDown,
		cfg: BFD{ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 100 * time.Millisecond},
		rx:  make(chan bfdRx, 8), stop: make(chan chan struct{}), conn: conn}
	srv.wg.Add(1)
	go ss.run()
	defer ss.halt()
	next := func() (*bfdPacket, time.Time) {
		t.Helper()
		buf := make([]byte, 128)
		_ = router.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := router.Read(buf)
		if err != nil {
			t.Fatalf("no BFD packet: %v", err)
		}
		p, err := parseBFD(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		return p, time.Now()
	}
	// The router, Down, asks for one packet a second.
	slow := uint32(time.Second / time.Microsecond)
	ss.rx <- bfdRx{p: &bfdPacket{state: bfdWireDown, detectMult: 3, myDisc: 77, desiredMinTx: slow, requiredMinRx: slow}, ttl: -1}
	next() // the packet scheduled before the router spoke
	_, at := next()
	// Right after a packet at the slow rate, the router comes up and asks
	// for 100 ms.
	fast := uint32(100 * time.Millisecond / time.Microsecond)
	ss.rx <- bfdRx{p: &bfdPacket{state: bfdWireUp, poll: true, detectMult: 3, myDisc: 77, yourDis: 5, desiredMinTx: fast, requiredMinRx: fast}, ttl: -1}
	for {
		p, got := next()
		if p.final {
			continue // the answer to the poll
		}
		if gap := got.Sub(at); gap > 500*time.Millisecond {
			t.Errorf("next packet %v after the last one: the router asked for 100 ms, the session kept its 1 s schedule", gap.Round(time.Millisecond))
		}
		break
	}
}
