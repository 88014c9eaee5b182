package layer2

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	theirMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	ownedV4  = netip.MustParseAddr("198.18.0.200")
	otherV4  = netip.MustParseAddr("198.18.0.201")
	askerV4  = netip.MustParseAddr("198.18.0.2")
	testIfi  = net.Interface{Index: 7, MTU: 1500, Name: "test0", HardwareAddr: ourMAC}
)

func arpFrame(t testing.TB, op arp.Operation, srcMAC net.HardwareAddr, srcIP netip.Addr, target netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, srcMAC, srcIP, ethernet.Broadcast, target)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := ethernet.Frame{Destination: ethernet.Broadcast, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return fb
}

func newTestARP(t testing.TB, o Options) (*ARPResponder, *fakePacketConn) {
	t.Helper()
	conn := newFakePacketConn()
	ifi := testIfi
	r, err := NewARPResponder(&ifi, conn, o)
	if err != nil {
		t.Fatal(err)
	}
	return r, conn
}

func TestARPHandle(t *testing.T) {
	tests := []struct {
		desc      string
		frame     func(t *testing.T) []byte
		wantReply bool
	}{
		{desc: "request for owned IP", frame: func(t *testing.T) []byte { return arpFrame(t, arp.OperationRequest, theirMAC, askerV4, ownedV4) }, wantReply: true},
		{desc: "probe (sender 0.0.0.0) for owned IP", frame: func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, theirMAC, netip.IPv4Unspecified(), ownedV4)
		}, wantReply: true},
		{desc: "request for another IP", frame: func(t *testing.T) []byte { return arpFrame(t, arp.OperationRequest, theirMAC, askerV4, otherV4) }},
		{desc: "reply for owned IP", frame: func(t *testing.T) []byte { return arpFrame(t, arp.OperationReply, theirMAC, askerV4, ownedV4) }},
		{desc: "our own request", frame: func(t *testing.T) []byte { return arpFrame(t, arp.OperationRequest, ourMAC, ownedV4, ownedV4) }},
		{desc: "empty", frame: func(*testing.T) []byte { return nil }},
		{desc: "truncated", frame: func(t *testing.T) []byte { return arpFrame(t, arp.OperationRequest, theirMAC, askerV4, ownedV4)[:20] }},
		{desc: "not ARP", frame: func(t *testing.T) []byte {
			b := arpFrame(t, arp.OperationRequest, theirMAC, askerV4, ownedV4)
			b[12], b[13] = 0x08, 0x00
			return b
		}},
		{desc: "zero address lengths", frame: func(t *testing.T) []byte {
			b := arpFrame(t, arp.OperationRequest, theirMAC, askerV4, ownedV4)
			b[14+4], b[14+5] = 0, 0
			return b
		}},
		{desc: "short hardware address", frame: func(t *testing.T) []byte {
			b := arpFrame(t, arp.OperationRequest, theirMAC, askerV4, ownedV4)
			b[14+4] = 2
			return b
		}},
		{desc: "garbage", frame: func(*testing.T) []byte { return bytes.Repeat([]byte{0xff}, 60) }},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r, conn := newTestARP(t, Options{GratuitousCount: -1})
			r.Add(ownedV4)
			got := r.handle(tc.frame(t))
			if got != tc.wantReply {
				t.Fatalf("replied = %v, want %v", got, tc.wantReply)
			}
			out := conn.written()
			if !tc.wantReply {
				if len(out) != 0 {
					t.Fatalf("wrote %d frames", len(out))
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("wrote %d frames, want 1", len(out))
			}
			var f ethernet.Frame
			if err := f.UnmarshalBinary(out[0]); err != nil {
				t.Fatal(err)
			}
			var p arp.Packet
			if err := p.UnmarshalBinary(f.Payload); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Destination, theirMAC) || !bytes.Equal(f.Source, ourMAC) ||
				p.Operation != arp.OperationReply || p.SenderIP != ownedV4 ||
				!bytes.Equal(p.SenderHardwareAddr, ourMAC) || !bytes.Equal(p.TargetHardwareAddr, theirMAC) {
				t.Fatalf("bad reply: frame %+v packet %+v", f, p)
			}
			if r.stats.ARPReplies.Load() != 1 {
				t.Fatalf("ARPReplies = %d", r.stats.ARPReplies.Load())
			}
		})
	}
}

func TestARPRunAndGratuitous(t *testing.T) {
	stats := new(Stats)
	r, conn := newTestARP(t, Options{GratuitousCount: 3, GratuitousInterval: 20 * time.Millisecond, Stats: stats})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	start := time.Now()
	if !r.Add(ownedV4) {
		t.Fatal("Add returned false")
	}
	if r.Add(ownedV4) {
		t.Fatal("second Add returned true")
	}
	waitFor(t, func() bool { return stats.GratuitousARP.Load() == 6 }, "3 gratuitous request+reply pairs")
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("burst took %v, want >= 2 intervals", d)
	}
	for _, b := range conn.written() {
		var f ethernet.Frame
		var p arp.Packet
		if err := f.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || p.SenderIP != ownedV4 || p.TargetIP != ownedV4 {
			t.Fatalf("bad gratuitous packet %+v", p)
		}
	}
	conn.reset()

	conn.in <- arpFrame(t, arp.OperationRequest, theirMAC, askerV4, ownedV4)
	waitFor(t, func() bool { return stats.ARPReplies.Load() == 1 }, "a reply")

	r.Remove(ownedV4)
	conn.in <- arpFrame(t, arp.OperationRequest, theirMAC, askerV4, ownedV4)
	waitFor(t, func() bool { return stats.ARPRequests.Load() == 2 }, "the second request")
	if stats.ARPReplies.Load() != 1 {
		t.Fatalf("replied after Remove")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRefresh(t *testing.T) {
	stats := new(Stats)
	r, _ := newTestARP(t, Options{GratuitousCount: -1, RefreshInterval: 20 * time.Millisecond, Stats: stats})
	r.Add(ownedV4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, func() bool { return stats.GratuitousARP.Load() >= 4 }, "two refreshes")
	cancel()
	<-done
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
