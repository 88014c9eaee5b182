package allocator

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/heraldlb/herald/internal/config"
)

// TestPins checks the rule that the API is the truth for held addresses:
// an address a Service shows in its status is never given to another
// Service until that one is seen to release it.
func TestPins(t *testing.T) {
	ip := netip.MustParseAddr
	req := func(key string) Request {
		return Request{Key: key, Namespace: "ns", Families: []config.Family{config.IPv4}}
	}
	shared := func(key, sk string) Request {
		r := req(key)
		r.SharingKey = sk
		r.Ports = []Port{{Protocol: "TCP", Port: 80}}
		return r
	}
	tests := []struct {
		desc string
		run  func(t *testing.T, al *Allocator)
	}{
		{desc: "a pinned address is not handed out", run: func(t *testing.T, al *Allocator) {
			al.Pin(req("ns/a"), 10, []netip.Addr{ip("10.0.0.1")})
			got := mustAllocate(t, al, req("ns/b"))
			if got.IPs[0] == ip("10.0.0.1") {
				t.Fatalf("b got %s, which a still shows", got.IPs[0])
			}
		}},
		{desc: "moving a Service keeps its old address until the API shows the move", run: func(t *testing.T, al *Allocator) {
			a := req("ns/a")
			first := mustAllocate(t, al, a)
			al.Pin(a, 10, first.IPs)
			a.RequestedIPs = []netip.Addr{ip("10.0.0.3")} // the user asks for another address
			mustAllocate(t, al, a)
			if got := mustAllocate(t, al, req("ns/b")); got.IPs[0] == first.IPs[0] {
				t.Fatalf("b got %s while a's status still shows it", got.IPs[0])
			}
			al.Pin(a, 11, []netip.Addr{ip("10.0.0.3")}) // the write landed
			al.Release("ns/b")
			if got := mustAllocate(t, al, req("ns/c")); got.IPs[0] != first.IPs[0] {
				t.Fatalf("c got %s, want the released %s", got.IPs[0], first.IPs[0])
			}
		}},
		{desc: "a stale event never unpins", run: func(t *testing.T, al *Allocator) {
			al.Pin(req("ns/a"), 20, []netip.Addr{ip("10.0.0.1")})
			al.Pin(req("ns/a"), 19, nil)
			if got := al.Pinned("ns/a"); len(got) != 1 {
				t.Fatalf("pinned = %v after an older event", got)
			}
			al.Unpin("ns/a")
			if got := mustAllocate(t, al, req("ns/b")); got.IPs[0] != ip("10.0.0.1") {
				t.Fatalf("b got %s, want 10.0.0.1 once a is deleted", got.IPs[0])
			}
		}},
		{desc: "the allocator's holder keeps an address that another Service also shows", run: func(t *testing.T, al *Allocator) {
			a := mustAllocate(t, al, req("ns/a"))
			al.Pin(req("ns/b"), 5, a.IPs) // a former leader wrote it to b too
			if got := mustAllocate(t, al, req("ns/a")); got.IPs[0] != a.IPs[0] {
				t.Fatalf("a moved from %s to %s", a.IPs[0], got.IPs[0])
			}
			if got := mustAllocate(t, al, req("ns/b")); got.IPs[0] == a.IPs[0] {
				t.Fatalf("b was given a's address %s", got.IPs[0])
			}
		}},
		{desc: "restoring what the API shows is not blocked by another pin of it", run: func(t *testing.T, al *Allocator) {
			al.Pin(req("ns/a"), 1, []netip.Addr{ip("10.0.0.1")})
			al.Pin(req("ns/b"), 2, []netip.Addr{ip("10.0.0.1")})
			if _, err := al.Assign(req("ns/a"), []netip.Addr{ip("10.0.0.1")}); err != nil {
				t.Fatalf("assign a: %v", err)
			}
			if _, err := al.Assign(req("ns/b"), []netip.Addr{ip("10.0.0.1")}); err == nil {
				t.Fatal("b restored the address a holds")
			}
		}},
		{desc: "a pin shares under the sharing rules", run: func(t *testing.T, al *Allocator) {
			al.Pin(shared("ns/a", "k"), 1, []netip.Addr{ip("10.0.0.1")})
			b := shared("ns/b", "k")
			b.Ports = []Port{{Protocol: "TCP", Port: 443}}
			b.RequestedIPs = []netip.Addr{ip("10.0.0.1")}
			if _, err := al.Allocate(b); err != nil {
				t.Fatalf("b cannot share with a's pin: %v", err)
			}
			c := shared("ns/c", "k") // same port 80: may not share
			c.RequestedIPs = []netip.Addr{ip("10.0.0.1")}
			if _, err := al.Allocate(c); err == nil {
				t.Fatal("c shares port 80 with a's pinned address")
			}
		}},
		{desc: "pinned addresses count as assigned", run: func(t *testing.T, al *Allocator) {
			al.Pin(req("ns/a"), 1, []netip.Addr{ip("10.0.0.1")})
			al.Pin(req("ns/b"), 1, []netip.Addr{ip("10.0.0.2")})
			s, _ := al.Stats("p")
			if got, _ := s.IPv4.Assigned.Uint64(); got != 2 {
				t.Fatalf("assigned = %d, want 2", got)
			}
			al.Pin(req("ns/a"), 2, nil)
			s, _ = al.Stats("p")
			if got, _ := s.IPv4.Assigned.Uint64(); got != 1 {
				t.Fatalf("assigned = %d after a released, want 1", got)
			}
			if h := al.Holders(ip("10.0.0.2")); !slices.Equal(h, []string{"ns/b"}) {
				t.Fatalf("holders = %v", h)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			al := New()
			al.SetConfig([]*config.Pool{mkPool("p", []string{"10.0.0.1-10.0.0.4"})})
			tc.run(t, al)
		})
	}
}

func mustAllocate(t *testing.T, al *Allocator, r Request) Allocation {
	t.Helper()
	a, err := al.Allocate(r)
	if err != nil || len(a.IPs) == 0 {
		t.Fatalf("allocate %s: %v %v", r.Key, a, err)
	}
	return a
}
