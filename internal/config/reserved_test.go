package config

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/heraldlb/herald/api/v1beta1"
)

func TestReservedAddresses(t *testing.T) {
	node := func(ip, name string) Reserved {
		a := netip.MustParseAddr(ip)
		return Reserved{Prefix: netip.PrefixFrom(a, a.BitLen()), Why: "InternalIP of node " + name, Node: true}
	}
	reserved := []Reserved{
		node("198.18.0.11", "node1"), node("2001:db8:18::11", "node1"),
		{Prefix: netip.MustParsePrefix("198.19.0.0/16"), Why: "Service CIDR"},
		{Prefix: netip.MustParsePrefix("198.18.17.0/24"), Why: "pod CIDR of node node1"},
	}
	tests := []struct {
		desc     string
		pool     v1beta1.IPAddressPool
		refused  bool
		first    string // lowest address left, "" when refused
		excluded []string
		problems []want
	}{
		{desc: "0.0.0.0/0 is refused", pool: pool("all", "0.0.0.0/0"), refused: true,
			problems: []want{{KindIPAddressPool, "all", "spec.addresses[0]", ReasonReservedAddresses, "unspecified address 0.0.0.0", false}}},
		{desc: "::/0 is refused", pool: pool("all6", "::/0"), refused: true,
			problems: []want{{KindIPAddressPool, "all6", "spec.addresses[0]", ReasonReservedAddresses, "unspecified address ::", false}}},
		{desc: "a range from 0.0.0.0 is refused", pool: pool("zero", "0.0.0.0-0.0.0.9"), refused: true,
			problems: []want{{KindIPAddressPool, "zero", "spec.addresses[0]", ReasonReservedAddresses, "unspecified", false}}},
		{desc: "the node subnet loses the node, network and broadcast", pool: pool("seg", "198.18.0.0/24"), first: "198.18.0.1",
			excluded: []string{"198.18.0.0", "198.18.0.11", "198.18.0.255"},
			problems: []want{{KindIPAddressPool, "seg", "spec.addresses[0]", ReasonReservedAddresses, "198.18.0.11 (InternalIP of node node1)", true}}},
		{desc: "a range holding a node loses only the node", pool: pool("r", "198.18.0.10-198.18.0.20"), first: "198.18.0.10",
			excluded: []string{"198.18.0.11"},
			problems: []want{{KindIPAddressPool, "r", "spec.addresses[0]", ReasonReservedAddresses, "198.18.0.11 (InternalIP of node node1)", true}}},
		{desc: "IPv6 node address", pool: pool("v6", "2001:db8:18::/120"), first: "2001:db8:18::",
			excluded: []string{"2001:db8:18::11"},
			problems: []want{{KindIPAddressPool, "v6", "spec.addresses[0]", ReasonReservedAddresses, "2001:db8:18::11", true}}},
		{desc: "inside the Service CIDR: refused", pool: pool("svc", "198.19.0.0/29"), refused: true,
			problems: []want{{KindIPAddressPool, "svc", "spec.addresses[0]", ReasonReservedAddresses, "every address of the pool is reserved: 198.19.0.0/29 (Service CIDR)", false}}},
		{desc: "overlapping the pod CIDR", pool: pool("pods", "198.18.16.250-198.18.17.5"), first: "198.18.16.250",
			excluded: []string{"198.18.17.0", "198.18.17.5"},
			problems: []want{{KindIPAddressPool, "pods", "spec.addresses[0]", ReasonReservedAddresses, "198.18.17.0-198.18.17.5 (pod CIDR of node node1)", true}}},
		{desc: "multicast and loopback", pool: pool("odd", "127.0.0.1/32", "203.0.113.0/24"), first: "203.0.113.0",
			excluded: []string{"127.0.0.1"},
			problems: []want{{KindIPAddressPool, "odd", "spec.addresses[0]", ReasonReservedAddresses, "loopback", true}}},
		{desc: "a BGP pool elsewhere is untouched", pool: pool("bgp", "203.0.113.0/24"), first: "203.0.113.0"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, problems := Build(Input{Pools: []v1beta1.IPAddressPool{tc.pool}, Reserved: reserved}, nil)
			checkProblems(t, problems, tc.problems)
			p := cfg.Pool(tc.pool.Name)
			if tc.refused {
				if p != nil {
					t.Fatalf("pool in effect with %v %v, want refused", p.V4, p.V6)
				}
				return
			}
			if p == nil {
				t.Fatal("pool refused")
			}
			ranges := append(slices.Clone(p.V4), p.V6...)
			if got := ranges[0].From().String(); got != tc.first {
				t.Errorf("first address %s, want %s", got, tc.first)
			}
			for _, s := range tc.excluded {
				ip := netip.MustParseAddr(s)
				if p.Contains(ip) || cfg.PoolOf(ip) != nil {
					t.Errorf("%s is still in the pool", ip)
				}
			}
			// Judged again from itself, the pool is unchanged: the
			// exclusions are not a change of its ranges.
			again, problems2 := Build(Input{Pools: []v1beta1.IPAddressPool{tc.pool}, Reserved: reserved}, cfg)
			if len(problems2) != len(problems) || again.Pool(tc.pool.Name) == nil {
				t.Errorf("rebuilt on itself: %v", problems2)
			}
		})
	}
}
