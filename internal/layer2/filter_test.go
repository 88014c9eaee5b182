package layer2

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
)

// verdict runs a filter on a frame as the kernel would.
func verdict(t *testing.T, ins []bpf.Instruction, frame []byte) int {
	t.Helper()
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	n, err := vm.Run(frame)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// nsFrame wraps an ICMPv6 message in IPv6 and Ethernet, from theirMAC.
func nsFrame(body []byte, hop byte) []byte {
	return icmpv6Frame(ourMAC, theirMAC, askerV6, body, hop)
}

// icmpv6Frame wraps an ICMPv6 message in IPv6 (from srcIP, to nowhere) and
// Ethernet.
func icmpv6Frame(dst, src net.HardwareAddr, srcIP netip.Addr, body []byte, hop byte) []byte {
	f := make([]byte, offICMPv6+len(body))
	copy(f[0:6], dst)
	copy(f[6:12], src)
	binary.BigEndian.PutUint16(f[12:14], etherTypeIPv6)
	ip := f[ethHeaderLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(body)))
	ip[6] = protocolICMPv6
	ip[7] = hop
	s := srcIP.As16()
	copy(ip[8:24], s[:])
	copy(f[offICMPv6:], body)
	return f
}

// mutants returns frames made from good ones: truncated, extended, with
// random bytes past the Ethernet header (the socket is bound to the
// EtherType, so the kernel never hands it another), plus the flood's own
// garbage of that EtherType.
func mutants(rng *rand.Rand, good [][]byte, etherType uint16, n int) [][]byte {
	frames := append([][]byte(nil), good...)
	for _, g := range malformedFrames(rng, theirMAC, ourMAC, 256) {
		if binary.BigEndian.Uint16(g[12:14]) == etherType {
			frames = append(frames, g)
		}
	}
	for range n {
		f := append([]byte(nil), good[rng.IntN(len(good))]...)
		switch rng.IntN(4) {
		case 0:
			f = f[:ethHeaderLen+rng.IntN(len(f)-ethHeaderLen+1)]
		case 1:
			for range 1 + rng.IntN(8) {
				f = append(f, byte(rng.IntN(3))) // zeros are the interesting bytes
			}
		default:
			for range 1 + rng.IntN(3) {
				i := ethHeaderLen + rng.IntN(len(f)-ethHeaderLen)
				if rng.IntN(2) == 0 {
					f[i] = byte(rng.Uint32())
				} else {
					f[i] = []byte{0, 1, 4, 6, 16, 24, 26, 64, 135, 255}[rng.IntN(10)]
				}
			}
		}
		frames = append(frames, f)
	}
	return frames
}

// TestFilters checks the kernel filters against the responders' own
// parsing, frame by frame: the responder's filter and the reject counter's
// never both take a frame; every frame the responder would count as
// malformed without a filter is counted once with them (by the reject
// counter, or by the responder if its filter lets the frame through); and
// every frame it would answer still reaches it and is answered.
func TestFilters(t *testing.T) {
	for _, spec := range []filterSpec{arpFilter, ndpFilter} {
		assemble(spec.responderFilter()) // panics if the kernel would refuse it
		assemble(spec.rejectFilter())
	}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(t *testing.T, f []byte, spec filterSpec, handle func(f []byte, s *Stats) bool) {
		t.Helper()
		resp, rej := verdict(t, spec.responderFilter(), f), verdict(t, spec.rejectFilter(), f)
		if resp > 0 && rej > 0 {
			t.Fatalf("both filters accept % x", f)
		}
		base := verdict(t, filterSpec{base: spec.base}.responderFilter(), f) > 0
		var ref, got Stats
		refReplied := base && handle(f, &ref)
		replied := false
		if rej > 0 {
			got.Malformed.Add(1)
		}
		if resp > 0 {
			replied = handle(f, &got)
		}
		refBad, gotBad := ref.Malformed.Load(), got.Malformed.Load()
		if gotBad > 1 || (refBad > 0 && gotBad != 1) {
			t.Fatalf("malformed count %d with the filters, %d without, for % x", gotBad, refBad, f)
		}
		if refReplied != replied {
			t.Fatalf("replied %v with the filters, %v without, for % x", replied, refReplied, f)
		}
	}

	t.Run("ARP", func(t *testing.T) {
		good := [][]byte{
			arpFrame(t, arp.OperationRequest, theirMAC, askerV4, ownedV4),
			arpFrame(t, arp.OperationRequest, theirMAC, askerV4, otherV4),
			arpFrame(t, arp.OperationReply, theirMAC, askerV4, ownedV4),
		}
		handle := func(f []byte, s *Stats) bool {
			ifi := testIfi
			r, err := NewARPResponder(&ifi, &discardConn{*newFakePacketConn()}, Options{GratuitousCount: -1, Stats: s})
			if err != nil {
				t.Fatal(err)
			}
			r.Add(ownedV4)
			return r.handle(f)
		}
		if verdict(t, arpFilter.responderFilter(), good[0]) == 0 {
			t.Fatal("the filter drops a request")
		}
		for _, f := range mutants(rng, good, etherTypeARP, 20000) {
			check(t, f, arpFilter, handle)
		}
	})
	t.Run("NDP", func(t *testing.T) {
		srcLLA := &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: theirMAC}
		zeroOpt := append(nsBytes(t, ownedV6), 1, 0, 0, 0, 0, 0, 0, 0)
		twoOpts := append(nsBytes(t, ownedV6, srcLLA), 1, 0, 0, 0, 0, 0, 0, 0)
		good := [][]byte{
			nsFrame(nsBytes(t, ownedV6, srcLLA), 255),
			nsFrame(nsBytes(t, ownedV6), 255),
			nsFrame(nsBytes(t, otherV6, srcLLA), 255),
			nsFrame(nsBytes(t, ownedV6, srcLLA), 64),
			nsFrame(zeroOpt, 255),
			nsFrame(twoOpts, 255),
		}
		handle := func(f []byte, s *Stats) bool {
			r, _ := newTestNDP(t, Options{GratuitousCount: -1, Stats: s})
			if _, err := r.Add(ownedV6); err != nil {
				t.Fatal(err)
			}
			body, hop, src, ok := solicitationOf(f, ourMAC)
			if hop == 0 {
				// A forged hop limit, like any but 255: in a control
				// message, 0 means unknown.
				hop = 1
			}
			return ok && r.handle(body, &ipv6.ControlMessage{HopLimit: hop}, src)
		}
		if verdict(t, ndpFilter.responderFilter(), good[0]) == 0 {
			t.Fatal("the filter drops a solicitation")
		}
		if verdict(t, ndpFilter.rejectFilter(), good[4]) == 0 {
			t.Fatal("the reject counter misses a zero-length option")
		}
		for _, f := range mutants(rng, good, etherTypeIPv6, 20000) {
			check(t, f, ndpFilter, handle)
		}
	})
}
