package allocator

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/heraldlb/herald/internal/config"
)

// checkInvariants recounts everything the Allocator keeps from its
// addresses in use, by brute force where pools are small enough.
func checkInvariants(t testing.TB, al *Allocator) {
	t.Helper()
	al.mu.Lock()
	defer al.mu.Unlock()

	// Services and addresses point at each other.
	for key, svc := range al.services {
		if svc.key != key || len(svc.ips) == 0 {
			t.Fatalf("service %q: bad record %+v", key, svc)
		}
		fams := map[config.Family]bool{}
		for _, ip := range svc.ips {
			if fams[config.FamilyOf(ip)] {
				t.Fatalf("service %q holds two %s addresses: %v", key, config.FamilyOf(ip), svc.ips)
			}
			fams[config.FamilyOf(ip)] = true
			st := al.ips[ip]
			if st == nil || !slices.Contains(st.holders, svc) {
				t.Fatalf("service %q holds %s, which does not list it", key, ip)
			}
		}
	}
	shared := map[string][]netip.Addr{}
	for ip, st := range al.ips {
		if len(st.holders) == 0 {
			t.Fatalf("%s is in use by nobody", ip)
		}
		if !slices.IsSortedFunc(st.holders, func(a, b *service) int { return compareStrings(a.key, b.key) }) {
			t.Fatalf("%s: holders not sorted", ip)
		}
		for i, h := range st.holders {
			if al.services[h.key] != h || !slices.Contains(h.ips, ip) {
				t.Fatalf("%s lists %q, which does not hold it", ip, h.key)
			}
			if h.sharingKey != st.sharingKey {
				t.Fatalf("%s: holder %q has sharing key %q, address has %q", ip, h.key, h.sharingKey, st.sharingKey)
			}
			for _, o := range st.holders[i+1:] {
				if h.sharingKey == "" || h.backendKey != o.backendKey {
					t.Fatalf("%s is held by %q and %q, which may not share", ip, h.key, o.key)
				}
				if p, ok := commonPort(h.ports, o.ports); ok {
					t.Fatalf("%s is held by %q and %q, which both use %s", ip, h.key, o.key, p)
				}
			}
		}
		if st.sharingKey != "" {
			shared[st.sharingKey] = append(shared[st.sharingKey], ip)
		}
		// Its pool is the one that contains it, or it is reported.
		var want *poolState
		for _, p := range al.pools {
			if p.cfg.Contains(ip) {
				if want != nil {
					t.Fatalf("%s is in two pools", ip)
				}
				want = p
			}
		}
		if st.pool != want {
			t.Fatalf("%s: pool %v, want %v", ip, poolNameOf(st.pool), poolNameOf(want))
		}
		_, out := al.outOfPool[ip]
		if out != (want == nil) {
			t.Fatalf("%s: out of pool = %v, in pool %v", ip, out, poolNameOf(want))
		}
		if want != nil && (st.fs != want.family(config.FamilyOf(ip)) || st.lastPool != want.cfg.Name) {
			t.Fatalf("%s: counted in the wrong family or lastPool %q", ip, st.lastPool)
		}
	}
	for ip := range al.outOfPool {
		if al.ips[ip] == nil {
			t.Fatalf("%s reported out of pool but not in use", ip)
		}
	}
	for k, ips := range shared {
		slices.SortFunc(ips, netip.Addr.Compare)
		if !slices.Equal(ips, al.shared[k]) {
			t.Fatalf("sharing key %q: index %v, want %v", k, al.shared[k], ips)
		}
	}
	if len(shared) != len(al.shared) {
		t.Fatalf("sharing index has %d keys, want %d", len(al.shared), len(shared))
	}

	// Counts equal a recount.
	for name, p := range al.pools {
		for i, fs := range p.fam {
			if fs == nil {
				continue
			}
			var assigned, keyed uint64
			for ip, st := range al.ips {
				if st.fs != fs {
					continue
				}
				assigned++
				if k, ok := fs.key(ip); ok {
					keyed++
					if !fs.used.contains(k) {
						t.Fatalf("pool %q: %s in use but not in the tree", name, ip)
					}
				}
			}
			if assigned != fs.assigned || keyed != fs.keyed {
				t.Fatalf("pool %q family %d: assigned %d keyed %d, recount %d %d", name, i, fs.assigned, fs.keyed, assigned, keyed)
			}
			var inTree Count
			var prevHi netip.Addr
			fs.used.each(func(lo, hi netip.Addr) {
				if hi.Less(lo) || (prevHi.IsValid() && !prevHi.Next().Less(lo)) {
					t.Fatalf("pool %q: intervals overlap or touch at %s-%s", name, lo, hi)
				}
				prevHi = hi
				inTree = inTree.add(rangeSize(lo, hi))
			})
			if inTree != CountOf(keyed) {
				t.Fatalf("pool %q: tree holds %s addresses, want %d", name, inTree, keyed)
			}
			checkAVL(t, fs.used.root)

			// Brute force over small pools.
			var total Count
			for _, r := range fs.ranges {
				total = total.add(rangeSize(r.From(), r.To()))
			}
			if total != fs.total {
				t.Fatalf("pool %q: total %s, want %s", name, fs.total, total)
			}
			if n, ok := total.Uint64(); ok && n <= 1<<16 {
				var avail uint64
				var lowest netip.Addr
				for _, r := range fs.ranges {
					for a := r.From(); a.IsValid() && !r.To().Less(a); a = a.Next() {
						if al.ips[a] == nil && (!fs.avoid || !isBuggy(a)) {
							avail++
							if !lowest.IsValid() {
								lowest = a
							}
						}
					}
				}
				if fs.available() != CountOf(avail) {
					t.Fatalf("pool %q: available %s, recount %d", name, fs.available(), avail)
				}
				if free, ok := fs.lowestFree(); ok != (avail > 0) || free != lowest {
					t.Fatalf("pool %q: lowestFree = %s, %v with %d available", name, free, ok, avail)
				}
			}
		}
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func poolNameOf(p *poolState) string {
	if p == nil {
		return "<none>"
	}
	return p.cfg.Name
}

// checkAVL checks order and balance and returns the height.
func checkAVL(t testing.TB, n *ivNode) int8 {
	if n == nil {
		return 0
	}
	l, r := checkAVL(t, n.left), checkAVL(t, n.right)
	if (n.left != nil && !n.left.lo.Less(n.lo)) || (n.right != nil && !n.lo.Less(n.right.lo)) {
		t.Fatalf("tree out of order at %s", n.lo)
	}
	if l-r > 1 || r-l > 1 || n.height != max(l, r)+1 {
		t.Fatalf("tree unbalanced at %s: %d %d %d", n.lo, l, r, n.height)
	}
	return n.height
}
