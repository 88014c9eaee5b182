package layer2

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// FuzzARPHandle feeds arbitrary frames to the ARP handler: it must never
// panic, and must only ever reply for an owned IP.
func FuzzARPHandle(f *testing.F) {
	f.Add(arpFrame(f, arp.OperationRequest, theirMAC, askerV4, ownedV4))
	f.Add(arpFrame(f, arp.OperationRequest, theirMAC, askerV4, otherV4))
	f.Add(arpFrame(f, arp.OperationReply, theirMAC, askerV4, ownedV4))
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, conn := newTestARP(t, Options{GratuitousCount: -1})
		r.Add(ownedV4)
		if r.handle(b) {
			out := conn.written()
			if len(out) != 1 {
				t.Fatalf("replied with %d frames", len(out))
			}
		}
	})
}

// FuzzNDPHandle feeds arbitrary ICMPv6 messages to the NDP handler.
func FuzzNDPHandle(f *testing.F) {
	f.Add(nsBytes(f, ownedV6), uint8(255), askerV6.AsSlice())
	f.Add(nsBytes(f, ownedV6, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: theirMAC}), uint8(0), netip.IPv6Unspecified().AsSlice())
	f.Add(nsBytes(f, otherV6), uint8(64), []byte{1, 2, 3, 4})
	f.Add([]byte{135, 0, 0, 0}, uint8(255), []byte{})
	f.Fuzz(func(t *testing.T, b []byte, hop uint8, src []byte) {
		r, conn := newTestNDP(t, Options{GratuitousCount: -1})
		if _, err := r.Add(ownedV6); err != nil {
			t.Fatal(err)
		}
		addr, _ := netip.AddrFromSlice(src)
		if r.handle(b, &ipv6.ControlMessage{HopLimit: int(hop)}, addr) {
			out := conn.written()
			if len(out) != 1 || out[0].m.(*ndp.NeighborAdvertisement).TargetAddress != ownedV6 {
				t.Fatalf("bad reply %+v", out)
			}
		}
	})
}
