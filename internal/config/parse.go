package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"go4.org/netipx"
)

// ParseAddressRange parses a pool address: a CIDR ("203.0.113.0/24"; host
// bits are masked off) or an inclusive range "first-last" of one family.
func ParseAddressRange(s string) (netipx.IPRange, error) {
	s = strings.TrimSpace(s)
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err := netip.ParseAddr(strings.TrimSpace(first))
		if err != nil {
			return netipx.IPRange{}, fmt.Errorf("range %q: first address: %w", s, err)
		}
		b, err := netip.ParseAddr(strings.TrimSpace(last))
		if err != nil {
			return netipx.IPRange{}, fmt.Errorf("range %q: last address: %w", s, err)
		}
		if a.Zone() != "" || b.Zone() != "" {
			return netipx.IPRange{}, fmt.Errorf("range %q: zoned addresses are not allowed", s)
		}
		a, b = a.Unmap(), b.Unmap()
		if a.BitLen() != b.BitLen() {
			return netipx.IPRange{}, fmt.Errorf("range %q: both ends must be of the same IP family", s)
		}
		if b.Less(a) {
			return netipx.IPRange{}, fmt.Errorf("range %q: the first address is greater than the last", s)
		}
		return netipx.IPRangeFrom(a, b), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netipx.IPRange{}, fmt.Errorf("%q is neither a CIDR nor a range: %w", s, err)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return netipx.RangeOfPrefix(p.Masked()), nil
}

// Community is one BGP community value, standard or large.
type Community struct {
	// Large is true for a large community (RFC 8092).
	Large bool
	// Standard holds a standard community as ASN<<16 | value.
	Standard uint32
	// Global, Local1 and Local2 hold a large community.
	Global, Local1, Local2 uint32
}

// String formats c the way it is written in the API.
func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("large:%d:%d:%d", c.Global, c.Local1, c.Local2)
	}
	return fmt.Sprintf("%d:%d", c.Standard>>16, c.Standard&0xffff)
}

// ParseCommunity parses a standard ("65000:100") or large
// ("large:65000:1:2") community. isAlias is true, with no error, when s is
// instead a well-formed alias name to be looked up in Community objects.
func ParseCommunity(s string) (c Community, isAlias bool, err error) {
	parts := strings.Split(s, ":")
	switch {
	case len(parts) == 4 && parts[0] == "large":
		var v [3]uint32
		for i, p := range parts[1:] {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return Community{}, false, fmt.Errorf("large community %q: part %d must be within 0..4294967295", s, i+1)
			}
			v[i] = uint32(n)
		}
		return Community{Large: true, Global: v[0], Local1: v[1], Local2: v[2]}, false, nil
	case len(parts) == 2:
		hi, err1 := strconv.ParseUint(parts[0], 10, 16)
		lo, err2 := strconv.ParseUint(parts[1], 10, 16)
		if err1 != nil || err2 != nil {
			return Community{}, false, fmt.Errorf("community %q: each half must be within 0..65535", s)
		}
		return Community{Standard: uint32(hi)<<16 | uint32(lo)}, false, nil
	case len(parts) == 1 && isAliasName(s):
		return Community{}, true, nil
	}
	return Community{}, false, fmt.Errorf("community %q: must be like 65000:100, large:65000:1:2, or an alias name", s)
}

func isAliasName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (r != '-' && r != '.' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}
