package allocator

import (
	"net/netip"

	"go4.org/netipx"

	"github.com/heraldlb/herald/internal/config"
)

// poolState is one pool and the addresses in use in it.
type poolState struct {
	cfg *config.Pool
	// fam holds the IPv4 (0) and IPv6 (1) halves; nil when the pool has no
	// range of that family.
	fam [2]*familyState
}

func famIndex(f config.Family) int {
	if f == config.IPv6 {
		return 1
	}
	return 0
}

func (p *poolState) family(f config.Family) *familyState { return p.fam[famIndex(f)] }

// familyState tracks one family of one pool.
//
// Free addresses are searched in "key space". Without avoidBuggyIPs a key is
// the address itself. With avoidBuggyIPs (IPv4 only), the addresses ending
// in .0 and .255 are left out of key space and the others are numbered
// consecutively (x.y.z.1 .. x.y.z.254 are keys 254*(x.y.z)+0 .. +253,
// written as IPv4 addresses), so x.y.z.254 and x.y.(z+1).1 are adjacent
// keys and a pool filled from its start is still one interval.
type familyState struct {
	avoid bool // avoidBuggyIPs on an IPv4 family
	// ranges are the pool's ranges (as given) and keyRanges the same in key
	// space (ranges holding only .0/.255 addresses dropped).
	ranges    []netipx.IPRange
	keyRanges []netipx.IPRange
	// used holds the keys of the addresses in use.
	used intervalSet
	// total is the number of addresses in ranges; keyTotal in keyRanges.
	total, keyTotal Count
	// assigned counts the addresses in use; keyed those of them in key space.
	assigned, keyed uint64
}

func newFamilyState(ranges []netipx.IPRange, avoid bool) *familyState {
	if len(ranges) == 0 {
		return nil
	}
	fs := &familyState{ranges: ranges, avoid: avoid && ranges[0].From().Unmap().Is4()}
	for _, r := range ranges {
		from, to := r.From().Unmap(), r.To().Unmap()
		fs.total = fs.total.add(rangeSize(from, to))
		if fs.avoid {
			var ok bool
			if from, to, ok = keyRange(from, to); !ok {
				continue
			}
		}
		fs.keyRanges = append(fs.keyRanges, netipx.IPRangeFrom(from, to))
		fs.keyTotal = fs.keyTotal.add(rangeSize(from, to))
	}
	return fs
}

// isBuggy reports whether an IPv4 address ends in .0 or .255.
func isBuggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrFromU32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// keyRange maps an IPv4 range to key space for avoidBuggyIPs; ok is false
// when it holds only .0/.255 addresses.
func keyRange(from, to netip.Addr) (lo, hi netip.Addr, ok bool) {
	f, t := int64(u32(from)), int64(u32(to))
	switch f & 0xff {
	case 0:
		f++
	case 255:
		f += 2
	}
	switch t & 0xff {
	case 255:
		t--
	case 0:
		t -= 2
	}
	if f > t {
		return lo, hi, false
	}
	return addrFromU32(keyOf32(uint32(f))), addrFromU32(keyOf32(uint32(t))), true
}

func keyOf32(v uint32) uint32 { return (v>>8)*254 + v&0xff - 1 }

// key returns the key of an address of this family, and false when it has
// none (a .0/.255 address under avoidBuggyIPs).
func (fs *familyState) key(a netip.Addr) (netip.Addr, bool) {
	if !fs.avoid {
		return a, true
	}
	if isBuggy(a) {
		return netip.Addr{}, false
	}
	return addrFromU32(keyOf32(u32(a))), true
}

// addr is the inverse of key.
func (fs *familyState) addr(k netip.Addr) netip.Addr {
	if !fs.avoid {
		return k
	}
	v := u32(k)
	return addrFromU32((v/254)<<8 | (v%254 + 1))
}

// available returns the number of free addresses that could be handed out.
func (fs *familyState) available() Count {
	return fs.keyTotal.sub(CountOf(fs.keyed))
}

// hold records that a (an address of the pool) is now in use.
func (fs *familyState) hold(a netip.Addr) {
	fs.assigned++
	if k, ok := fs.key(a); ok && fs.used.add(k) {
		fs.keyed++
	}
}

// free records that a is no longer in use.
func (fs *familyState) free(a netip.Addr) {
	fs.assigned--
	if k, ok := fs.key(a); ok && fs.used.remove(k) {
		fs.keyed--
	}
}

// lowestFree returns the lowest address that can be handed out. It costs
// O(log n) per range: the first free key of a range is either its start or
// the address just after the interval covering the start, because the
// intervals are maximal.
func (fs *familyState) lowestFree() (netip.Addr, bool) {
	if fs == nil || fs.available().IsZero() {
		return netip.Addr{}, false
	}
	for _, r := range fs.keyRanges {
		c := r.From()
		if iv := fs.used.covering(c); iv != nil {
			if iv.hi.Compare(r.To()) >= 0 {
				continue
			}
			c = iv.hi.Next()
		}
		return fs.addr(c), true
	}
	return netip.Addr{}, false
}
