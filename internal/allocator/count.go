package allocator

import (
	"math"
	"math/big"
	"math/bits"
	"net/netip"
	"strconv"
)

// Count is an exact unsigned 128-bit number of addresses, wide enough for
// any IPv6 pool. The one number it cannot hold, 2^128 (a pool of every IPv6
// address, ::/0), saturates to 2^128-1. The zero value is 0.
type Count struct{ hi, lo uint64 }

// maxCount is 2^128-1, where arithmetic saturates.
var maxCount = Count{math.MaxUint64, math.MaxUint64}

// CountOf returns n as a Count.
func CountOf(n uint64) Count { return Count{lo: n} }

// IsZero reports whether c is 0.
func (c Count) IsZero() bool { return c.hi == 0 && c.lo == 0 }

// Uint64 returns c and true when c fits in a uint64, and MaxUint64 and
// false otherwise.
func (c Count) Uint64() (uint64, bool) {
	if c.hi != 0 {
		return math.MaxUint64, false
	}
	return c.lo, true
}

// Float64 returns c as the nearest float64, for metrics.
func (c Count) Float64() float64 {
	return float64(c.hi)*(1<<64) + float64(c.lo)
}

// Big returns c as a new big.Int.
func (c Count) Big() *big.Int {
	b := new(big.Int).SetUint64(c.hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(c.lo))
}

// String returns c in decimal.
func (c Count) String() string {
	if c.hi == 0 {
		return strconv.FormatUint(c.lo, 10)
	}
	return c.Big().String()
}

// Cmp returns -1, 0 or +1 as c is less than, equal to or greater than d.
func (c Count) Cmp(d Count) int {
	switch {
	case c.hi < d.hi || (c.hi == d.hi && c.lo < d.lo):
		return -1
	case c == d:
		return 0
	}
	return 1
}

// add returns c+d, saturating at 2^128-1.
func (c Count) add(d Count) Count {
	lo, carry := bits.Add64(c.lo, d.lo, 0)
	hi, over := bits.Add64(c.hi, d.hi, carry)
	if over != 0 {
		return maxCount
	}
	return Count{hi, lo}
}

// sub returns c-d, or 0 when d > c.
func (c Count) sub(d Count) Count {
	lo, borrow := bits.Sub64(c.lo, d.lo, 0)
	hi, under := bits.Sub64(c.hi, d.hi, borrow)
	if under != 0 {
		return Count{}
	}
	return Count{hi, lo}
}

// countOfAddr returns addr's 128-bit value (IPv4 addresses as 32-bit).
func countOfAddr(addr netip.Addr) Count {
	if addr.Is4() {
		b := addr.As4()
		return Count{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := addr.As16()
	var c Count
	for i := range 8 {
		c.hi = c.hi<<8 | uint64(b[i])
		c.lo = c.lo<<8 | uint64(b[i+8])
	}
	return c
}

// rangeSize returns the number of addresses in [from, to] (from <= to, one
// family).
func rangeSize(from, to netip.Addr) Count {
	return countOfAddr(to).sub(countOfAddr(from)).add(CountOf(1))
}
