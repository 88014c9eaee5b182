package layer2

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

var (
	ownedV6  = netip.MustParseAddr("2001:db8::200")
	otherV6  = netip.MustParseAddr("2001:db8::201")
	askerV6  = netip.MustParseAddr("fe80::2")
	twinV6   = netip.MustParseAddr("2001:db8:1::200") // same solicited-node group as ownedV6
	ownedSNM = netip.MustParseAddr("ff02::1:ff00:200")
)

func nsBytes(t testing.TB, target netip.Addr, opts ...ndp.Option) []byte {
	t.Helper()
	b, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: target, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestNDP(t testing.TB, o Options) (*NDPResponder, *fakeNDPConn) {
	t.Helper()
	conn := newFakeNDPConn()
	ifi := testIfi
	r, err := NewNDPResponder(&ifi, conn, o)
	if err != nil {
		t.Fatal(err)
	}
	return r, conn
}

func TestNDPHandle(t *testing.T) {
	srcLLA := &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: theirMAC}
	tests := []struct {
		desc          string
		b             func(t *testing.T) []byte
		cm            *ipv6.ControlMessage
		src           netip.Addr
		wantDst       netip.Addr // invalid: no reply
		wantSolicited bool
	}{
		{desc: "solicitation for owned IP", b: func(t *testing.T) []byte { return nsBytes(t, ownedV6, srcLLA) }, src: askerV6, wantDst: askerV6, wantSolicited: true},
		{desc: "hop limit 255", b: func(t *testing.T) []byte { return nsBytes(t, ownedV6, srcLLA) }, cm: &ipv6.ControlMessage{HopLimit: 255}, src: askerV6, wantDst: askerV6, wantSolicited: true},
		{desc: "DAD from ::", b: func(t *testing.T) []byte { return nsBytes(t, ownedV6) }, src: netip.IPv6Unspecified(), wantDst: allNodes},
		{desc: "routed (hop limit 64)", b: func(t *testing.T) []byte { return nsBytes(t, ownedV6, srcLLA) }, cm: &ipv6.ControlMessage{HopLimit: 64}, src: askerV6},
		{desc: "other target", b: func(t *testing.T) []byte { return nsBytes(t, otherV6, srcLLA) }, src: askerV6},
		{desc: "our own solicitation", b: func(t *testing.T) []byte {
			return nsBytes(t, ownedV6, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ourMAC})
		}, src: askerV6},
		{desc: "advertisement, not solicitation", b: func(t *testing.T) []byte {
			b, _ := ndp.MarshalMessage(&ndp.NeighborAdvertisement{TargetAddress: ownedV6})
			return b
		}, src: askerV6},
		{desc: "empty", b: func(*testing.T) []byte { return nil }, src: askerV6},
		{desc: "truncated", b: func(t *testing.T) []byte { return nsBytes(t, ownedV6)[:10] }, src: askerV6},
		{desc: "bad option length", b: func(t *testing.T) []byte { return append(nsBytes(t, ownedV6), 1, 0) }, src: askerV6},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r, conn := newTestNDP(t, Options{GratuitousCount: -1})
			if _, err := r.Add(ownedV6); err != nil {
				t.Fatal(err)
			}
			replied := r.handle(tc.b(t), tc.cm, tc.src)
			out := conn.written()
			if !tc.wantDst.IsValid() {
				if replied || len(out) != 0 {
					t.Fatalf("replied %v, wrote %d messages; want none", replied, len(out))
				}
				return
			}
			if !replied || len(out) != 1 {
				t.Fatalf("replied %v, wrote %d messages; want 1", replied, len(out))
			}
			na, ok := out[0].m.(*ndp.NeighborAdvertisement)
			if !ok || out[0].dst != tc.wantDst || na.TargetAddress != ownedV6 || !na.Override || na.Solicited != tc.wantSolicited {
				t.Fatalf("bad reply to %s: %+v", out[0].dst, out[0].m)
			}
			lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
			if !ok || lla.Direction != ndp.Target || lla.Addr.String() != ourMAC.String() {
				t.Fatalf("bad target link-layer option %+v", na.Options)
			}
		})
	}
}

func TestNDPGroups(t *testing.T) {
	r, conn := newTestNDP(t, Options{GratuitousCount: -1})
	steps := []struct {
		desc  string
		do    func() error
		wantG bool
	}{
		{desc: "add joins the group", do: func() error { _, err := r.Add(ownedV6); return err }, wantG: true},
		{desc: "add of an IP sharing the group", do: func() error { _, err := r.Add(twinV6); return err }, wantG: true},
		{desc: "remove one: group kept for the other", do: func() error { r.Remove(ownedV6); return nil }, wantG: true},
		{desc: "remove twice is harmless", do: func() error { r.Remove(ownedV6); return nil }, wantG: true},
		{desc: "remove the last: group left", do: func() error { r.Remove(twinV6); return nil }, wantG: false},
		{desc: "IPv4 refused", do: func() error {
			if _, err := r.Add(ownedV4); err == nil {
				t.Fatal("IPv4 accepted")
			}
			return nil
		}, wantG: false},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.desc, err)
		}
		if got := conn.joined()[ownedSNM]; got != s.wantG {
			t.Fatalf("%s: joined %v, want %v (groups %v)", s.desc, got, s.wantG, conn.joined())
		}
	}
}

func TestNDPUnsolicited(t *testing.T) {
	stats := new(Stats)
	r, conn := newTestNDP(t, Options{GratuitousCount: 2, GratuitousInterval: 10 * time.Millisecond, Stats: stats})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	if _, err := r.Add(ownedV6); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stats.UnsolicitedNA.Load() == 2 }, "2 unsolicited NAs")
	for _, o := range conn.written() {
		na := o.m.(*ndp.NeighborAdvertisement)
		if o.dst != allNodes || na.Solicited || !na.Override || na.TargetAddress != ownedV6 {
			t.Fatalf("bad unsolicited NA to %s: %+v", o.dst, na)
		}
	}
	conn.reset()
	conn.in <- ndpIn{b: nsBytes(t, ownedV6), src: askerV6}
	waitFor(t, func() bool { return stats.NDPAdvertisements.Load() == 1 }, "a solicited NA")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
