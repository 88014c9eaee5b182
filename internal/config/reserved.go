package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"go4.org/netipx"
)

// ReasonReservedAddresses marks a pool problem about addresses that would
// hurt the network: a warning when they are excluded from the pool, an
// error when the pool is refused (it holds the unspecified address, or
// nothing but reserved addresses).
const ReasonReservedAddresses = "ReservedAddresses"

// Reserved is a range of addresses no pool may hand out, and why.
type Reserved struct {
	Prefix netip.Prefix
	// Why says whose the addresses are, for a person: "InternalIP of node
	// node1", "Service CIDR", "pod CIDR of node node1".
	Why string
	// Node is set for a node's own address: the network and broadcast
	// addresses of a pool CIDR holding it are excluded too (the pool is
	// written as the node's subnet).
	Node bool
}

// alwaysReserved are addresses that are never a Service's, whatever the
// cluster: giving one to a Service makes the speakers answer ARP or NDP for
// it, or advertise it, on the nodes' network.
var alwaysReserved = []Reserved{
	{Prefix: netip.MustParsePrefix("0.0.0.0/8"), Why: `"this network" (0.0.0.0/8)`},
	{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Why: "loopback"},
	{Prefix: netip.MustParsePrefix("169.254.0.0/16"), Why: "link-local"},
	{Prefix: netip.MustParsePrefix("224.0.0.0/4"), Why: "multicast"},
	{Prefix: netip.MustParsePrefix("255.255.255.255/32"), Why: "the limited broadcast address"},
	{Prefix: netip.MustParsePrefix("::/128"), Why: "the unspecified address"},
	{Prefix: netip.MustParsePrefix("::1/128"), Why: "loopback"},
	{Prefix: netip.MustParsePrefix("fe80::/10"), Why: "link-local"},
	{Prefix: netip.MustParsePrefix("ff00::/8"), Why: "multicast"},
}

// checkUnspecified refuses a range holding the unspecified address: such a
// pool (0.0.0.0/0, ::/0) would hand it to the first Service, and takes
// every other address too, the nodes' included.
func checkUnspecified(o *objErrs, field string, r netipx.IPRange) {
	for _, u := range []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()} {
		if r.Contains(u) {
			o.add(field, ReasonReservedAddresses, "%s holds the unspecified address %s, which is no Service's; "+
				"a pool must list only addresses meant for Services", rangeString(r), u)
		}
	}
}

// excludeReserved returns p without the reserved addresses it holds, and the
// warnings that say which were taken out; p itself is not changed. It
// returns p and an error problem instead when nothing would be left.
func (b *builder) excludeReserved(p *Pool, fields []string) (*Pool, []Problem) {
	written := p.written
	if written == nil {
		written = &[2][]netipx.IPRange{p.V4, p.V6}
	}
	type hit struct {
		r     netipx.IPRange
		field string
		why   string
	}
	var hits []hit
	ranges := append(slices.Clone(written[0]), written[1]...)
	field := func(i int) string {
		if i < len(fields) {
			return fields[i]
		}
		return "spec.addresses"
	}
	reserved := append(slices.Clone(alwaysReserved), b.in.Reserved...)
	for i, r := range ranges {
		for _, res := range reserved {
			rr := netipx.RangeOfPrefix(res.Prefix.Masked())
			if rr.From().BitLen() != r.From().BitLen() || rr.To().Less(r.From()) || r.To().Less(rr.From()) {
				continue
			}
			from, to := rr.From(), rr.To()
			if from.Less(r.From()) {
				from = r.From()
			}
			if r.To().Less(to) {
				to = r.To()
			}
			hits = append(hits, hit{netipx.IPRangeFrom(from, to), field(i), res.Why})
			// A pool CIDR holding a node's IPv4 address is the node's
			// subnet (or wider): its first and last addresses are that
			// network's network and broadcast addresses.
			if pfx, ok := r.Prefix(); res.Node && ok && pfx.Addr().Is4() && pfx.Bits() <= 30 {
				last := netipx.PrefixLastIP(pfx)
				hits = append(hits,
					hit{netipx.IPRangeFrom(pfx.Addr(), pfx.Addr()), field(i), fmt.Sprintf("the network address of %s, which holds a node's address", pfx)},
					hit{netipx.IPRangeFrom(last, last), field(i), fmt.Sprintf("the broadcast address of %s, which holds a node's address", pfx)})
			}
		}
	}
	if len(hits) == 0 {
		return p, nil
	}
	var sb netipx.IPSetBuilder
	for _, r := range ranges {
		sb.AddRange(r)
	}
	for _, h := range hits {
		sb.RemoveRange(h.r)
	}
	set, _ := sb.IPSet()
	q := *p
	q.written = written
	q.Set = set
	q.V4, q.V6 = nil, nil
	for _, r := range set.Ranges() {
		if r.From().Is4() {
			q.V4 = append(q.V4, r)
		} else {
			q.V6 = append(q.V6, r)
		}
	}
	slices.SortStableFunc(hits, func(x, y hit) int { return x.r.From().Compare(y.r.From()) })
	// One warning per field, listing what was taken out and why.
	byField := map[string][]string{}
	var order []string
	for _, h := range hits {
		if _, ok := byField[h.field]; !ok {
			order = append(order, h.field)
		}
		s := rangeString(h.r)
		if h.r.From() == h.r.To() {
			s = h.r.From().String()
		}
		s += " (" + h.why + ")"
		if !slices.Contains(byField[h.field], s) {
			byField[h.field] = append(byField[h.field], s)
		}
	}
	if len(q.V4) == 0 && len(q.V6) == 0 {
		var all []string
		for _, f := range order {
			all = append(all, byField[f]...)
		}
		return p, []Problem{{Kind: KindIPAddressPool, Name: p.Name, Field: order[0], Reason: ReasonReservedAddresses,
			Message: "every address of the pool is reserved: " + strings.Join(all, ", ")}}
	}
	var out []Problem
	for _, f := range order {
		out = append(out, Problem{Kind: KindIPAddressPool, Name: p.Name, Field: f, Reason: ReasonReservedAddresses, Warning: true,
			Message: "excluded, never handed out: " + strings.Join(byField[f], ", ")})
	}
	return &q, out
}
