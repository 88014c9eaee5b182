package allocator

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"go4.org/netipx"

	"github.com/heraldlb/herald/internal/config"
)

// byteReader hands out fuzz input; it returns zeros once the input ends.
type byteReader struct{ b []byte }

func (r *byteReader) next() int {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return int(v)
}

func (r *byteReader) pick(n int) int { return r.next() % n }

// fuzzSegments are disjoint pieces of address space that pools are built
// from; they cross /24 boundaries to exercise avoidBuggyIPs.
var fuzzSegments = []netipx.IPRange{
	netipx.MustParseIPRange("10.0.0.250-10.0.1.5"),
	netipx.MustParseIPRange("10.0.1.6-10.0.1.9"),
	netipx.MustParseIPRange("10.0.2.0-10.0.2.3"),
	netipx.MustParseIPRange("10.0.2.254-10.0.3.1"),
	netipx.MustParseIPRange("2001:db8::-2001:db8::7"),
	netipx.MustParseIPRange("2001:db8::8-2001:db8::b"),
	netipx.MustParseIPRange("2001:db8::fe-2001:db8::101"),
}

var fuzzPoolNames = []string{"a", "b", "c", "d"}

// fuzzAddr returns an address from the segments or just outside them.
func fuzzAddr(r *byteReader) netip.Addr {
	seg := fuzzSegments[r.pick(len(fuzzSegments))]
	a := seg.From()
	for range r.pick(14) {
		a = a.Next()
	}
	return a
}

func fuzzPools(r *byteReader) []*config.Pool {
	var ranges [4][]netipx.IPRange
	for _, seg := range fuzzSegments {
		if i := r.pick(5); i < 4 {
			ranges[i] = append(ranges[i], seg)
		}
	}
	var out []*config.Pool
	for i, name := range fuzzPoolNames {
		opts := r.next()
		if opts&1 != 0 {
			continue // pool absent
		}
		var b netipx.IPSetBuilder
		for _, rg := range ranges[i] {
			b.AddRange(rg)
		}
		set, _ := b.IPSet()
		p := &config.Pool{Name: name, Set: set, AutoAssign: opts&2 == 0, AvoidBuggyIPs: opts&4 != 0}
		for _, rg := range set.Ranges() {
			if rg.From().Is4() {
				p.V4 = append(p.V4, rg)
			} else {
				p.V6 = append(p.V6, rg)
			}
		}
		if opts&8 != 0 {
			p.Namespaces = []string{"n1"}
		}
		if opts&16 != 0 {
			p.Priority, p.HasPriority = int32(opts>>5), true
		}
		out = append(out, p)
	}
	// Input order must not matter.
	if r.next()&1 != 0 {
		slices.Reverse(out)
	}
	return out
}

func fuzzRequest(r *byteReader) Request {
	n := r.pick(6)
	req := Request{
		Key:          fmt.Sprintf("n%d/s%d", n%2, n),
		Namespace:    fmt.Sprintf("n%d", n%2),
		Families:     [][]config.Family{v4, v6, v46, v64, nil}[r.pick(5)],
		FamilyPolicy: FamilyPolicy(r.pick(3)),
		SharingKey:   []string{"", "k", "k", "j"}[r.pick(4)],
		BackendKey:   []string{"", "", "x"}[r.pick(3)],
	}
	switch r.pick(4) {
	case 1:
		req.RequestedIPs = []netip.Addr{fuzzAddr(r)}
	case 2:
		req.RequestedIPs = []netip.Addr{fuzzAddr(r), fuzzAddr(r)}
	}
	if r.pick(4) == 0 {
		req.Pool = []string{"a", "b", "c", "d", "zz"}[r.pick(5)]
	}
	bits := r.next()
	for i, p := range []Port{{"TCP", 80}, {"TCP", 443}, {"UDP", 53}, {"", 53}} {
		if bits&(1<<i) != 0 {
			req.Ports = append(req.Ports, p)
		}
	}
	return req
}

// snapshot is every Service's addresses, to compare states.
func snapshot(al *Allocator) map[string]string {
	al.mu.Lock()
	defer al.mu.Unlock()
	out := map[string]string{}
	for k, s := range al.services {
		out[k] = fmt.Sprint(s.ips)
	}
	return out
}

func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 1})
	f.Add([]byte{6, 1, 1, 1, 2, 2, 3, 3, 4, 4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 4, 2, 1, 1, 1, 1, 1, 5, 5, 5, 6, 0, 3, 2, 1, 4})
	f.Fuzz(runFuzzAllocator)
}

func runFuzzAllocator(t *testing.T, data []byte) {
	{
		r := &byteReader{b: data}
		al := New()
		al.SetConfig(fuzzPools(r))
		last := map[string]Request{} // each Service's last successful Allocate
		for step := 0; len(r.b) > 0 && step < 200; step++ {
			before := snapshot(al)
			switch op := r.pick(8); op {
			case 0, 1, 2, 3:
				req := fuzzRequest(r)
				got, err := al.Allocate(req)
				if err != nil {
					if after := snapshot(al); !maps.Equal(before, after) {
						t.Fatalf("failed Allocate(%+v) changed the state: %v -> %v", req, before, after)
					}
					break
				}
				checkResult(t, al, req, got)
				last[req.Key] = req
				checkInvariants(t, al)
				again, err := al.Allocate(req)
				if err != nil || !slices.Equal(again.IPs, got.IPs) {
					t.Fatalf("Allocate(%+v) again = %v, %v; first %v", req, again.IPs, err, got.IPs)
				}
			case 4:
				req := fuzzRequest(r)
				ips := []netip.Addr{fuzzAddr(r)}
				if r.pick(2) == 0 {
					ips = append(ips, fuzzAddr(r))
				}
				got, err := al.Assign(req, ips)
				if err != nil {
					if after := snapshot(al); !maps.Equal(before, after) {
						t.Fatalf("failed Assign changed the state")
					}
					break
				}
				if !slices.Equal(got.IPs, ips) {
					t.Fatalf("Assign(%v) = %v", ips, got.IPs)
				}
				delete(last, req.Key)
			case 5:
				key := fuzzRequest(r).Key
				al.Release(key)
				delete(last, key)
				if _, ok := al.Get(key); ok {
					t.Fatalf("%s still holds addresses after Release", key)
				}
			case 6:
				rep := al.SetConfig(fuzzPools(r))
				if after := snapshot(al); !maps.Equal(before, after) {
					t.Fatalf("SetConfig moved addresses: %v -> %v", before, after)
				}
				if !slices.Equal(rep.OutOfPool, al.OutOfPool()) {
					t.Fatalf("report %v, OutOfPool %v", rep.OutOfPool, al.OutOfPool())
				}
			case 7:
				// Allocate every Service again with its last request, as
				// after a restart or a pool change: what still fits stays.
				for _, k := range slices.Sorted(maps.Keys(last)) {
					req := last[k]
					prev, _ := al.Get(k)
					got, err := al.Allocate(req)
					if err != nil {
						if now, _ := al.Get(k); !slices.Equal(now.IPs, prev.IPs) {
							t.Fatalf("failed Allocate moved %s", k)
						}
						continue
					}
					checkResult(t, al, req, got)
					if req.Pool != "" {
						continue
					}
					for _, ip := range prev.IPs {
						if !slices.Contains(got.IPs, ip) {
							t.Fatalf("%s moved from %v to %v with the same request", k, prev.IPs, got.IPs)
						}
					}
				}
			}
			checkInvariants(t, al)
			for _, k := range al.OutOfPool() {
				got, _ := al.Get(k)
				if !got.OutOfPool() {
					t.Fatalf("%s reported out of pool but holds %v in %q", k, got.IPs, got.Pools)
				}
			}
		}
	}
}

// checkResult checks that got is a valid answer to req.
func checkResult(t *testing.T, al *Allocator, req Request, got Allocation) {
	t.Helper()
	q, err := newRequest(&req)
	if err != nil {
		t.Fatalf("Allocate accepted an invalid request %+v: %v", req, err)
	}
	if len(q.ips) > 0 && !slices.Equal(got.IPs, q.ips) {
		t.Fatalf("requested %v, got %v", q.ips, got.IPs)
	}
	var fams []config.Family
	for i, ip := range got.IPs {
		fams = append(fams, config.FamilyOf(ip))
		if req.Pool != "" && got.Pools[i] != "" && got.Pools[i] != req.Pool {
			t.Fatalf("asked for pool %q, got %s from %q", req.Pool, ip, got.Pools[i])
		}
		if h := al.Holders(ip); !slices.Contains(h, req.Key) {
			t.Fatalf("%s is not listed as a holder of %s", req.Key, ip)
		}
	}
	ok := false
	switch req.FamilyPolicy {
	case SingleStack:
		ok = slices.Equal(fams, q.want[:1])
	case RequireDualStack:
		ok = slices.Equal(fams, q.want)
	case PreferDualStack:
		ok = len(fams) > 0 && len(fams) <= len(q.want) && (len(fams) == 1 || slices.Equal(fams, q.want))
		ok = ok && slices.Contains(q.want, fams[0])
	}
	if !ok {
		t.Fatalf("%s with families %v: got %v", req.FamilyPolicy, q.want, got.IPs)
	}
}

// FuzzIntervalSet checks the tree against a map.
func FuzzIntervalSet(f *testing.F) {
	f.Add([]byte{1, 2, 3, 2, 1, 0, 5, 4, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s intervalSet
		model := map[netip.Addr]bool{}
		base := netip.MustParseAddr("10.0.0.0")
		for i := 0; i+1 < len(data); i += 2 {
			a := base
			for range int(data[i+1]) % 64 {
				a = a.Next()
			}
			if data[i]&1 == 0 {
				if s.add(a) == model[a] {
					t.Fatalf("add(%s) disagrees with the model", a)
				}
				model[a] = true
			} else {
				if s.remove(a) != model[a] {
					t.Fatalf("remove(%s) disagrees with the model", a)
				}
				delete(model, a)
			}
			var n int
			var prev netip.Addr
			s.each(func(lo, hi netip.Addr) {
				if prev.IsValid() && !prev.Next().Less(lo) {
					t.Fatalf("intervals touch at %s", lo)
				}
				for x := lo; !hi.Less(x); x = x.Next() {
					if !model[x] {
						t.Fatalf("%s in the set, not in the model", x)
					}
					n++
				}
				prev = hi
			})
			if n != len(model) {
				t.Fatalf("set has %d addresses, model %d", n, len(model))
			}
			checkAVL(t, s.root)
		}
	})
}
