package layer2

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
)

// discardConn is a PacketConn that drops what is written.
type discardConn struct{ fakePacketConn }

func (*discardConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }

// ownedIPs returns n IPv4 addresses in 198.18.0.0/15 and n IPv6 in
// 2001:db8::/32, the first of each being ownedV4 and ownedV6.
func ownedIPs(n int) (v4, v6 []netip.Addr) {
	a4, a6 := ownedV4, ownedV6
	for range n {
		v4 = append(v4, a4)
		v6 = append(v6, a6)
		a4, a6 = a4.Next(), a6.Next()
	}
	return v4, v6
}

func benchARP(b *testing.B, owned int) {
	conn := &discardConn{*newFakePacketConn()}
	ifi := testIfi
	r, err := NewARPResponder(&ifi, conn, Options{GratuitousCount: -1})
	if err != nil {
		b.Fatal(err)
	}
	v4, _ := ownedIPs(owned)
	for _, ip := range v4 {
		r.Add(ip)
	}
	// Ask for the last IP added, and for one not owned, alternately.
	hit := arpFrame(b, arp.OperationRequest, theirMAC, askerV4, v4[len(v4)-1])
	miss := arpFrame(b, arp.OperationRequest, theirMAC, askerV4, netip.MustParseAddr("198.19.255.1"))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i&1 == 0 {
			if !r.handle(hit) {
				b.Fatal("no reply")
			}
		} else if r.handle(miss) {
			b.Fatal("replied for an IP not owned")
		}
		i++
	}
}

func benchNDP(b *testing.B, owned int) {
	conn := newFakeNDPConn()
	ifi := testIfi
	r, err := NewNDPResponder(&ifi, &discardNDP{conn}, Options{GratuitousCount: -1})
	if err != nil {
		b.Fatal(err)
	}
	_, v6 := ownedIPs(owned)
	for _, ip := range v6 {
		if _, err := r.Add(ip); err != nil {
			b.Fatal(err)
		}
	}
	hit := nsBytes(b, v6[len(v6)-1])
	b.ReportAllocs()
	for b.Loop() {
		if !r.handle(hit, nil, askerV6) {
			b.Fatal("no reply")
		}
	}
}

// BenchmarkARPHandle measures the handling of one ARP request (half for an
// owned IP, half not) with 10 and 10,000 owned IPs.
func BenchmarkARPHandle(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("owned=%d", n), func(b *testing.B) { benchARP(b, n) })
	}
}

// BenchmarkNDPHandle measures the handling of one neighbour solicitation
// for an owned IP with 10 and 10,000 owned IPs.
func BenchmarkNDPHandle(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("owned=%d", n), func(b *testing.B) { benchNDP(b, n) })
	}
}

// TestManyIPsAnswerAsFast checks that per-packet cost does not grow with
// the number of owned IPs. The bound is generous (3x) because CI machines
// are noisy; the benchmarks give the figures.
func TestManyIPsAnswerAsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	for _, proto := range []struct {
		name string
		f    func(*testing.B, int)
	}{{"ARP", benchARP}, {"NDP", benchNDP}} {
		per := map[int]time.Duration{}
		for _, n := range []int{10, 10000} {
			// The best of three runs filters out the noise of a busy machine.
			for range 3 {
				res := testing.Benchmark(func(b *testing.B) { proto.f(b, n) })
				if d := time.Duration(res.NsPerOp()); per[n] == 0 || d < per[n] {
					per[n] = d
				}
			}
			t.Logf("%s with %5d owned IPs: %v per packet", proto.name, n, per[n])
		}
		if per[10000] > 3*per[10]+time.Microsecond {
			t.Errorf("%s: %v per packet with 10,000 IPs vs %v with 10", proto.name, per[10000], per[10])
		}
	}
}
