package allocator

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/heraldlb/herald/internal/config"
)

type reqMod func(*Request)

// rq builds a SingleStack IPv4 request for key "ns/name".
func rq(key string, mods ...reqMod) Request {
	ns, _, _ := strings.Cut(key, "/")
	r := Request{Key: key, Namespace: ns, Families: v4, FamilyPolicy: SingleStack}
	for _, m := range mods {
		m(&r)
	}
	return r
}

func fam(f []config.Family, p FamilyPolicy) reqMod {
	return func(r *Request) { r.Families, r.FamilyPolicy = f, p }
}
func ip(s ...string) reqMod        { return func(r *Request) { r.RequestedIPs = addrs(s...) } }
func inPool(p string) reqMod       { return func(r *Request) { r.Pool = p } }
func share(k string) reqMod        { return func(r *Request) { r.SharingKey = k } }
func backend(k string) reqMod      { return func(r *Request) { r.BackendKey = k } }
func crossNS() reqMod              { return func(r *Request) { r.ShareAcrossNamespaces = true } }
func ports(p ...Port) reqMod       { return func(r *Request) { r.Ports = p } }
func svcLabels(s string) reqMod    { return func(r *Request) { r.ServiceLabels = parseLabels(s) } }
func nsLabels(s string) reqMod     { return func(r *Request) { r.NamespaceLabels = parseLabels(s) } }
func noFamilies() reqMod           { return func(r *Request) { r.Families = nil } }
func policy(p FamilyPolicy) reqMod { return func(r *Request) { r.FamilyPolicy = p } }

// step is one operation on the allocator and what it must give.
type step struct {
	do    string // "alloc" (default), "assign", "release" or "config"
	req   Request
	ips   []string       // assign: the addresses to restore
	pools []*config.Pool // config: the new pools
	want  []string       // alloc/assign: the addresses, in order
	pool  []string       // alloc/assign: their pools, when checked
	err   string         // a substring of the expected error
	kind  error          // the expected error kind
	check func(*testing.T, *Allocator)
}

func TestAllocator(t *testing.T) {
	tests := []struct {
		desc  string
		pools []*config.Pool
		steps []step
	}{
		// Within a pool.
		{
			desc:  "the lowest free address comes first, in order",
			pools: pools(mkPool("p", []string{"10.0.0.0/30"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}, pool: []string{"p"}},
				{req: rq("ns/b"), want: []string{"10.0.0.1"}},
				{req: rq("ns/c"), want: []string{"10.0.0.2"}},
			},
		},
		{
			desc:  "ranges are tried in address order and the next range follows a full one",
			pools: pools(mkPool("p", []string{"10.0.0.8-10.0.0.8", "10.0.0.1-10.0.0.2"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.1"}},
				{req: rq("ns/b"), want: []string{"10.0.0.2"}},
				{req: rq("ns/c"), want: []string{"10.0.0.8"}},
				{req: rq("ns/d"), kind: ErrExhausted, err: `pool "p" has no free IPv4 address`},
			},
		},
		{
			desc:  "releasing and allocating again gives the lowest free address again",
			pools: pools(mkPool("p", []string{"10.0.0.0/29"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/b"), want: []string{"10.0.0.1"}},
				{req: rq("ns/c"), want: []string{"10.0.0.2"}},
				{do: "release", req: rq("ns/b")},
				{do: "release", req: rq("ns/a")},
				{req: rq("ns/d"), want: []string{"10.0.0.0"}},
				{req: rq("ns/e"), want: []string{"10.0.0.1"}},
				{req: rq("ns/f"), want: []string{"10.0.0.3"}},
			},
		},
		{
			desc:  "avoidBuggyIPs skips .255 and .0 across a /24 boundary",
			pools: pools(mkPool("p", []string{"10.0.0.254-10.0.1.1"}, avoid)),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.254"}},
				{req: rq("ns/b"), want: []string{"10.0.1.1"}},
				{req: rq("ns/c"), kind: ErrExhausted, err: `pool "p" has no free IPv4 address`},
			},
		},
		{
			desc:  "avoidBuggyIPs with ranges that start at .255 and end at .0",
			pools: pools(mkPool("p", []string{"10.0.0.255-10.0.1.2", "10.0.2.253-10.0.3.0"}, avoid)),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.1.1"}},
				{req: rq("ns/b"), want: []string{"10.0.1.2"}},
				{req: rq("ns/c"), want: []string{"10.0.2.253"}},
				{req: rq("ns/d"), want: []string{"10.0.2.254"}},
				{req: rq("ns/e"), kind: ErrExhausted, err: `pool "p" has no free IPv4 address`},
			},
		},
		{
			desc:  "without avoidBuggyIPs .255 and .0 are handed out",
			pools: pools(mkPool("p", []string{"10.0.0.255-10.0.1.0"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.255"}},
				{req: rq("ns/b"), want: []string{"10.0.1.0"}},
			},
		},
		{
			desc:  "avoidBuggyIPs does not apply to IPv6",
			pools: pools(mkPool("p", []string{"2001:db8::ff-2001:db8::100"}, avoid)),
			steps: []step{
				{req: rq("ns/a", fam(v6, SingleStack)), want: []string{"2001:db8::ff"}},
				{req: rq("ns/b", fam(v6, SingleStack)), want: []string{"2001:db8::100"}},
			},
		},

		// Pool order.
		{
			desc: "a pool that selects the Service comes before a pool without selectors",
			pools: pools(
				mkPool("a-default", []string{"10.0.0.0/24"}),
				mkPool("z-team", []string{"10.1.0.0/24"}, inNamespaces("team")),
			),
			steps: []step{
				{req: rq("team/a"), want: []string{"10.1.0.0"}, pool: []string{"z-team"}},
				{req: rq("other/a"), want: []string{"10.0.0.0"}, pool: []string{"a-default"}},
			},
		},
		{
			desc: "among selecting pools the lower priority wins over the name",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}, inNamespaces("ns"), prio(10)),
				mkPool("b", []string{"10.1.0.0/24"}, inNamespaces("ns"), prio(1)),
			),
			steps: []step{{req: rq("ns/a"), want: []string{"10.1.0.0"}, pool: []string{"b"}}},
		},
		{
			desc: "a selecting pool without priority comes after one with a priority",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}, inNamespaces("ns")),
				mkPool("b", []string{"10.1.0.0/24"}, inNamespaces("ns"), prio(100)),
			),
			steps: []step{{req: rq("ns/a"), want: []string{"10.1.0.0"}, pool: []string{"b"}}},
		},
		{
			desc: "a pool with a priority and no selectors is ordered with the selecting pools",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("b", []string{"10.1.0.0/24"}, prio(5)),
			),
			steps: []step{{req: rq("ns/a"), want: []string{"10.1.0.0"}, pool: []string{"b"}}},
		},
		{
			desc: "equal priorities are ordered by name, not by input order",
			pools: pools(
				mkPool("b", []string{"10.1.0.0/24"}, inNamespaces("ns"), prio(1)),
				mkPool("a", []string{"10.0.0.0/24"}, inNamespaces("ns"), prio(1)),
			),
			steps: []step{{req: rq("ns/a"), want: []string{"10.0.0.0"}, pool: []string{"a"}}},
		},
		{
			desc: "pools without selectors are ordered by name",
			pools: pools(
				mkPool("zz", []string{"10.0.0.0/24"}),
				mkPool("aa", []string{"10.1.0.0/24"}),
			),
			steps: []step{{req: rq("ns/a"), want: []string{"10.1.0.0"}, pool: []string{"aa"}}},
		},
		{
			desc: "a full pool falls through to the next one in order",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/32"}, inNamespaces("ns"), prio(1)),
				mkPool("b", []string{"10.1.0.0/24"}),
			),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/b"), want: []string{"10.1.0.0"}, pool: []string{"b"}},
			},
		},
		{
			desc: "service selectors pick the pool",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("web", []string{"10.1.0.0/24"}, svcSelector("app=web")),
			),
			steps: []step{
				{req: rq("ns/a", svcLabels("app=web")), want: []string{"10.1.0.0"}},
				{req: rq("ns/b", svcLabels("app=db")), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc: "namespace label selectors pick the pool",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("prod", []string{"10.1.0.0/24"}, nsSelector("env=prod")),
			),
			steps: []step{
				{req: rq("x/a", nsLabels("env=prod")), want: []string{"10.1.0.0"}},
				{req: rq("y/b", nsLabels("env=dev")), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc: "namespace and service selectors must both match",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("p", []string{"10.1.0.0/24"}, inNamespaces("team"), svcSelector("app=web")),
			),
			steps: []step{
				{req: rq("team/a", svcLabels("app=web")), want: []string{"10.1.0.0"}},
				{req: rq("team/b", svcLabels("app=db")), want: []string{"10.0.0.0"}},
				{req: rq("other/c", svcLabels("app=web")), want: []string{"10.0.0.1"}},
			},
		},
		{
			desc:  "an autoAssign: false pool is not used automatically",
			pools: pools(mkPool("manual", []string{"10.0.0.0/24"}, manual)),
			steps: []step{{req: rq("ns/a"), kind: ErrNoPool, err: "no pool selects this Service"}},
		},
		{
			desc:  "no pool selects the Service",
			pools: pools(mkPool("team", []string{"10.0.0.0/24"}, inNamespaces("team"))),
			steps: []step{{req: rq("ns/a"), kind: ErrNoPool, err: `no pool selects this Service: no auto-assign IPAddressPool serves namespace "ns"`}},
		},
		{
			desc: "several full pools are named in the error",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/32"}),
				mkPool("b", []string{"10.1.0.0/32"}),
			),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/b"), want: []string{"10.1.0.0"}},
				{req: rq("ns/c"), kind: ErrExhausted, err: `no free IPv4 address: pools "a", "b" are full`},
			},
		},

		// Requested IPs.
		{
			desc:  "a requested IP is honoured from an autoAssign: false pool",
			pools: pools(mkPool("manual", []string{"10.0.0.0/24"}, manual)),
			steps: []step{{req: rq("ns/a", ip("10.0.0.7")), want: []string{"10.0.0.7"}, pool: []string{"manual"}}},
		},
		{
			desc:  "a requested IP in no pool is refused",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{{req: rq("ns/a", ip("203.0.113.7")), kind: ErrNoPool, err: "IP 203.0.113.7 is not in any pool"}},
		},
		{
			desc:  "a requested IP in a pool that does not select the Service is refused",
			pools: pools(mkPool("team", []string{"10.0.0.0/24"}, inNamespaces("team"))),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.7")), kind: ErrNoPool, err: `IP 10.0.0.7 is in pool "team", whose serviceAllocation does not select this Service`},
				{req: rq("team/a", ip("10.0.0.7")), want: []string{"10.0.0.7"}},
			},
		},
		{
			desc:  "a requested IP in use by a Service that does not share is refused",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.7")), want: []string{"10.0.0.7"}},
				{req: rq("ns/b", ip("10.0.0.7"), share("k")), kind: ErrConflict, err: "IP 10.0.0.7 is used by ns/a, which does not share it"},
				{req: rq("ns/c", ip("10.0.0.7")), kind: ErrConflict, err: "IP 10.0.0.7 is used by ns/a"},
			},
		},
		{
			desc:  "a requested .0 address in an avoidBuggyIPs pool is refused",
			pools: pools(mkPool("p", []string{"10.0.0.0/23"}, avoid)),
			steps: []step{
				{req: rq("ns/a", ip("10.0.1.0")), kind: ErrInvalidRequest, err: `IP 10.0.1.0 ends in .0 or .255, which pool "p" avoids`},
				{req: rq("ns/a", ip("10.0.0.255")), kind: ErrInvalidRequest, err: "avoidBuggyIPs"},
				{req: rq("ns/a", ip("10.0.1.1")), want: []string{"10.0.1.1"}},
			},
		},
		{
			desc: "a requested IP must be in the requested pool",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("b", []string{"10.1.0.0/24"}),
			),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.7"), inPool("b")), kind: ErrInvalidRequest, err: `requested IP 10.0.0.7 is in pool "a", not in the requested pool "b"`},
				{req: rq("ns/a", ip("10.1.0.7"), inPool("b")), want: []string{"10.1.0.7"}},
			},
		},
		{
			desc:  "a requested address of each family is honoured, primary family first",
			pools: pools(mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"})),
			steps: []step{
				{req: rq("ns/a", fam(v64, RequireDualStack), ip("10.0.0.9", "2001:db8::9")), want: []string{"2001:db8::9", "10.0.0.9"}},
				{req: rq("ns/b", noFamilies(), ip("10.0.0.10")), want: []string{"10.0.0.10"}},
			},
		},
		{
			desc:  "requested IPs must match the family policy",
			pools: pools(mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"})),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.1", "2001:db8::1")), kind: ErrInvalidRequest, err: "gets only IPv4"},
				{req: rq("ns/a", ip("2001:db8::1")), kind: ErrInvalidRequest, err: "requests IPv6 address 2001:db8::1"},
				{req: rq("ns/a", fam(v46, RequireDualStack), ip("10.0.0.1")), kind: ErrInvalidRequest, err: "RequireDualStack but requests only IPv4"},
				{req: rq("ns/a", fam(v46, PreferDualStack), ip("10.0.0.1", "10.0.0.2")), kind: ErrInvalidRequest, err: "two IPv4 addresses"},
				{req: rq("ns/a", fam(v46, PreferDualStack), ip("10.0.0.1")), want: []string{"10.0.0.1"}},
			},
		},

		// Requested pool.
		{
			desc: "a requested pool is honoured even with autoAssign: false",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("manual", []string{"10.1.0.0/24"}, manual),
			),
			steps: []step{{req: rq("ns/a", inPool("manual")), want: []string{"10.1.0.0"}, pool: []string{"manual"}}},
		},
		{
			desc:  "a requested pool that does not exist",
			pools: pools(mkPool("a", []string{"10.0.0.0/24"})),
			steps: []step{{req: rq("ns/a", inPool("nope")), kind: ErrNoPool, err: `pool "nope" does not exist`}},
		},
		{
			desc: "a requested pool that does not select the Service",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("team", []string{"10.1.0.0/24"}, inNamespaces("team")),
			),
			steps: []step{{req: rq("ns/a", inPool("team")), kind: ErrNoPool, err: `pool "team" does not serve this Service`}},
		},
		{
			desc: "a full requested pool is not replaced by another",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("x", []string{"2001:db8::/128", "10.1.0.0/24"}),
			),
			steps: []step{
				{req: rq("ns/a", inPool("x"), fam(v6, SingleStack)), want: []string{"2001:db8::"}},
				{req: rq("ns/b", inPool("x"), fam(v6, SingleStack)), kind: ErrExhausted, err: `pool "x" has no free IPv6 address`},
			},
		},
		{
			desc:  "a requested pool without the family",
			pools: pools(mkPool("x", []string{"10.1.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", inPool("x"), fam(v46, RequireDualStack)), kind: ErrNoPool, err: `pool "x" has no IPv6 addresses`},
				{req: rq("ns/a", inPool("x"), fam(v64, PreferDualStack)), want: []string{"10.1.0.0"}},
			},
		},

		// Dual stack.
		{
			desc:  "SingleStack takes the first family only",
			pools: pools(mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"})),
			steps: []step{
				{req: rq("ns/a", fam(v64, SingleStack)), want: []string{"2001:db8::"}},
				{req: rq("ns/b", fam(v46, SingleStack)), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc: "PreferDualStack takes both from the first pool that has both",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("b", []string{"10.1.0.0/24", "2001:db8::/64"}),
				mkPool("c", []string{"2001:db8:1::/64"}),
			),
			steps: []step{{req: rq("ns/a", fam(v46, PreferDualStack)), want: []string{"10.1.0.0", "2001:db8::"}, pool: []string{"b", "b"}}},
		},
		{
			desc:  "PreferDualStack settles for one family",
			pools: pools(mkPool("a", []string{"10.0.0.0/24"})),
			steps: []step{{req: rq("ns/a", fam(v64, PreferDualStack)), want: []string{"10.0.0.0"}}},
		},
		{
			desc:  "PreferDualStack with one family in ipFamilies stays single",
			pools: pools(mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"})),
			steps: []step{{req: rq("ns/a", fam(v6, PreferDualStack)), want: []string{"2001:db8::"}}},
		},
		{
			desc: "RequireDualStack splits across pools when no pool has both",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("c", []string{"2001:db8:1::/64"}),
			),
			steps: []step{{req: rq("ns/a", fam(v64, RequireDualStack)), want: []string{"2001:db8:1::", "10.0.0.0"}, pool: []string{"c", "a"}}},
		},
		{
			desc:  "RequireDualStack with one family in ipFamilies still needs both",
			pools: pools(mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"})),
			steps: []step{{req: rq("ns/a", fam(v4, RequireDualStack)), want: []string{"10.0.0.0", "2001:db8::"}}},
		},
		{
			desc:  "RequireDualStack fails without the second family",
			pools: pools(mkPool("a", []string{"10.0.0.0/24"})),
			steps: []step{{req: rq("ns/a", fam(v46, RequireDualStack)), kind: ErrNoPool, err: `none of the pools that serve this Service ("a") has IPv6 addresses`}},
		},
		{
			desc:  "RequireDualStack fails when one family is exhausted and takes nothing",
			pools: pools(mkPool("p", []string{"10.0.0.0/32", "2001:db8::/64"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/b", fam(v46, RequireDualStack)), kind: ErrExhausted, err: `pool "p" has no free IPv4 address`},
				{req: rq("ns/c", fam(v6, SingleStack)), want: []string{"2001:db8::"}},
			},
		},
		{
			desc:  "PreferDualStack gains the missing family later without moving",
			pools: pools(mkPool("p", []string{"10.0.0.0/30", "2001:db8::/128"})),
			steps: []step{
				{req: rq("ns/blocker", fam(v6, SingleStack)), want: []string{"2001:db8::"}},
				{req: rq("ns/a", fam(v46, PreferDualStack)), want: []string{"10.0.0.0"}},
				{do: "release", req: rq("ns/blocker")},
				{req: rq("ns/a", fam(v46, PreferDualStack)), want: []string{"10.0.0.0", "2001:db8::"}},
			},
		},
		{
			desc: "a dual-stack Service gains its second family from its first address's pool",
			pools: pools(
				mkPool("a", []string{"2001:db8:a::/64"}),
				mkPool("b", []string{"10.0.0.0/24", "2001:db8:b::/64"}, manual),
			),
			steps: []step{
				{req: rq("ns/a", inPool("b")), want: []string{"10.0.0.0"}},
				{req: rq("ns/a", fam(v46, RequireDualStack), inPool("b")), want: []string{"10.0.0.0", "2001:db8:b::"}},
			},
		},
		{
			desc:  "going from dual to single stack keeps the primary and frees the other",
			pools: pools(mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"})),
			steps: []step{
				{req: rq("ns/a", fam(v46, RequireDualStack)), want: []string{"10.0.0.0", "2001:db8::"}},
				{req: rq("ns/a", fam(v46, SingleStack)), want: []string{"10.0.0.0"}},
				{req: rq("ns/b", fam(v6, SingleStack)), want: []string{"2001:db8::"}},
			},
		},
		{
			desc:  "changing the primary family of a SingleStack Service moves it",
			pools: pools(mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/a", fam(v6, SingleStack)), want: []string{"2001:db8::"}},
				{req: rq("ns/b"), want: []string{"10.0.0.0"}},
			},
		},

		// Sharing.
		{
			desc:  "the same key and distinct ports share a requested IP",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.5"), share("k"), ports(tcp(80)...)), want: []string{"10.0.0.5"}},
				{req: rq("ns/b", ip("10.0.0.5"), share("k"), ports(tcp(443)...)), want: []string{"10.0.0.5"}},
				{check: func(t *testing.T, a *Allocator) {
					if got := a.Holders(addrs("10.0.0.5")[0]); !slices.Equal(got, []string{"ns/a", "ns/b"}) {
						t.Errorf("Holders = %v", got)
					}
				}},
			},
		},
		{
			desc:  "a sharing key joins only its own namespace",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", share("k"), ports(tcp(80)...)), want: []string{"10.0.0.0"}},
				// Another tenant with the same key gets its own address,
				{req: rq("other/b", share("k"), ports(tcp(443)...)), want: []string{"10.0.0.1"}},
				// and cannot ask for the first one.
				{req: rq("other/c", ip("10.0.0.0"), share("k"), ports(tcp(8080)...)), kind: ErrConflict, err: "allow-shared-ip-across-namespaces"},
				// One side opting in is not enough,
				{req: rq("other/d", ip("10.0.0.0"), share("k"), crossNS(), ports(tcp(8081)...)), kind: ErrConflict, err: "allow-shared-ip-across-namespaces"},
			},
		},
		{
			desc:  "both opting in share across namespaces",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", share("k"), crossNS(), ports(tcp(80)...)), want: []string{"10.0.0.0"}},
				{req: rq("other/b", share("k"), crossNS(), ports(tcp(443)...)), want: []string{"10.0.0.0"}},
				{req: rq("third/c", share("k"), ports(tcp(8080)...)), want: []string{"10.0.0.1"}},
			},
		},
		{
			desc:  "a different sharing key is refused",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", ip("203.0.113.7"), share("k"), ports(tcp(80)...)), pools: nil, kind: ErrNoPool},
				{req: rq("ns/a", ip("10.0.0.7"), share("k"), ports(tcp(80)...)), want: []string{"10.0.0.7"}},
				{req: rq("ns/b", ip("10.0.0.7"), share("j"), ports(tcp(443)...)), kind: ErrConflict, err: "IP 10.0.0.7 is used by ns/a with a different sharing key"},
				{req: rq("ns/c", ip("10.0.0.7"), ports(tcp(443)...)), kind: ErrConflict, err: "give this Service the same herald.io/allow-shared-ip key"},
			},
		},
		{
			desc:  "a colliding protocol and port is refused, another protocol on the same port is not",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.7"), share("k"), ports(join(tcp(53, 80), udp(5353))...)), want: []string{"10.0.0.7"}},
				{req: rq("ns/b", ip("10.0.0.7"), share("k"), ports(Port{Protocol: "tcp", Port: 80})), kind: ErrConflict, err: "which also uses port TCP/80"},
				{req: rq("ns/c", ip("10.0.0.7"), share("k"), ports(udp(53)...)), want: []string{"10.0.0.7"}},
				{req: rq("ns/d", ip("10.0.0.7"), share("k"), ports(Port{Port: 53})), kind: ErrConflict, err: "TCP/53"},
			},
		},
		{
			desc:  "under externalTrafficPolicy: Local sharing needs the same backends",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.7"), share("k"), backend("app=x"), ports(tcp(80)...)), want: []string{"10.0.0.7"}},
				{req: rq("ns/b", ip("10.0.0.7"), share("k"), backend("app=y"), ports(tcp(81)...)), kind: ErrConflict, err: "selects different endpoints"},
				{req: rq("ns/c", ip("10.0.0.7"), share("k"), ports(tcp(82)...)), kind: ErrConflict, err: "selects different endpoints"},
				{req: rq("ns/d", ip("10.0.0.7"), share("k"), backend("app=x"), ports(tcp(83)...)), want: []string{"10.0.0.7"}},
			},
		},
		{
			desc:  "a Cluster Service does not share with a Local one",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.7"), share("k"), ports(tcp(80)...)), want: []string{"10.0.0.7"}},
				{req: rq("ns/b", ip("10.0.0.7"), share("k"), backend("app=x"), ports(tcp(81)...)), kind: ErrConflict, err: "selects different endpoints"},
			},
		},
		{
			desc:  "automatic allocation joins a compatible address used with the same key",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/x"), want: []string{"10.0.0.0"}},
				{req: rq("ns/a", share("k"), ports(tcp(80)...)), want: []string{"10.0.0.1"}},
				{req: rq("ns/b", share("k"), ports(tcp(443)...)), want: []string{"10.0.0.1"}},
				{req: rq("ns/c", share("k"), ports(tcp(443)...)), want: []string{"10.0.0.2"}},
				{req: rq("ns/d", share("j"), ports(tcp(22)...)), want: []string{"10.0.0.3"}},
				{req: rq("ns/e", ports(tcp(22)...)), want: []string{"10.0.0.4"}},
			},
		},
		{
			desc:  "an address is freed only when its last user leaves",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", share("k"), ports(tcp(80)...)), want: []string{"10.0.0.0"}},
				{req: rq("ns/b", share("k"), ports(tcp(81)...)), want: []string{"10.0.0.0"}},
				{do: "release", req: rq("ns/a")},
				{req: rq("ns/c"), want: []string{"10.0.0.1"}},
				{do: "release", req: rq("ns/b")},
				{req: rq("ns/d"), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc:  "a Service whose new ports collide with its co-user moves; one with a requested IP fails",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", share("k"), ports(tcp(80)...)), want: []string{"10.0.0.0"}},
				{req: rq("ns/b", share("k"), ports(tcp(81)...)), want: []string{"10.0.0.0"}},
				{req: rq("ns/b", share("k"), ports(tcp(80)...)), want: []string{"10.0.0.1"}},
				{req: rq("ns/c", share("k"), ip("10.0.0.0"), ports(tcp(82)...)), want: []string{"10.0.0.0"}},
				{req: rq("ns/c", share("k"), ip("10.0.0.0"), ports(tcp(80)...)), kind: ErrConflict, err: "ns/a, which also uses port TCP/80"},
			},
		},

		// Idempotence and changed requests.
		{
			desc:  "allocating twice returns the same address and takes no other",
			pools: pools(mkPool("p", []string{"10.0.0.0/24", "2001:db8::/64"})),
			steps: []step{
				{req: rq("ns/a", fam(v46, RequireDualStack)), want: []string{"10.0.0.0", "2001:db8::"}},
				{req: rq("ns/a", fam(v46, RequireDualStack)), want: []string{"10.0.0.0", "2001:db8::"}},
				{req: rq("ns/b", fam(v46, RequireDualStack)), want: []string{"10.0.0.1", "2001:db8::1"}},
			},
		},
		{
			desc:  "a changed requested IP moves the Service and frees the old address",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.0")), want: []string{"10.0.0.0"}},
				{req: rq("ns/a", ip("10.0.0.9")), want: []string{"10.0.0.9"}},
				{req: rq("ns/b"), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc:  "dropping the requested IP keeps the address",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", ip("10.0.0.9")), want: []string{"10.0.0.9"}},
				{req: rq("ns/a"), want: []string{"10.0.0.9"}},
			},
		},
		{
			desc: "a changed requested pool moves the Service",
			pools: pools(
				mkPool("a", []string{"10.0.0.0/24"}),
				mkPool("b", []string{"10.1.0.0/24"}),
			),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/a", inPool("b")), want: []string{"10.1.0.0"}},
				{req: rq("ns/a"), want: []string{"10.1.0.0"}},
				{req: rq("ns/b"), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc:  "a failed change keeps what the Service held",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/a", ip("203.0.113.7")), kind: ErrNoPool, err: "not in any pool"},
				{req: rq("ns/b"), want: []string{"10.0.0.1"}},
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc:  "an invalid request is refused with the Service named",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a", fam([]config.Family{config.IPv4, config.IPv4}, PreferDualStack)), kind: ErrInvalidRequest, err: "ns/a: ipFamilies lists IPv4 twice"},
				{req: rq("ns/a", policy(FamilyPolicy(7))), kind: ErrInvalidRequest, err: "unknown ipFamilyPolicy"},
				{req: rq(""), kind: ErrInvalidRequest, err: "no Service key"},
			},
		},

		// Assign.
		{
			desc:  "an assigned address is kept by Allocate and never handed out again",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{do: "assign", req: rq("ns/b"), ips: []string{"10.0.0.0"}, want: []string{"10.0.0.0"}},
				{req: rq("ns/a"), want: []string{"10.0.0.1"}},
				{req: rq("ns/b"), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc:  "an assignment that breaks the sharing rules is refused",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{do: "assign", req: rq("ns/svc", share("a")), ips: []string{"10.0.0.7"}, want: []string{"10.0.0.7"}},
				{do: "assign", req: rq("ns/b", share("b")), ips: []string{"10.0.0.7"}, kind: ErrConflict, err: "IP 10.0.0.7 is used by ns/svc with a different sharing key"},
				{do: "assign", req: rq("ns/c"), ips: []string{"10.0.0.8", "10.0.0.9"}, kind: ErrInvalidRequest, err: "two IPv4 addresses"},
				{do: "assign", req: rq("ns/d", share("a")), ips: []string{"10.0.0.7"}, want: []string{"10.0.0.7"}},
			},
		},
		{
			desc:  "an assigned address in no pool stays, even through Allocate",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{do: "assign", req: rq("ns/a"), ips: []string{"203.0.113.7"}, want: []string{"203.0.113.7"}, pool: []string{""}},
				{req: rq("ns/a"), want: []string{"203.0.113.7"}, pool: []string{""}},
				{check: func(t *testing.T, a *Allocator) {
					if got := a.OutOfPool(); !slices.Equal(got, []string{"ns/a"}) {
						t.Errorf("OutOfPool = %v", got)
					}
				}},
			},
		},
		{
			desc:  "an assigned address in no pool stays for a Service that asks for its old pool",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{do: "assign", req: rq("ns/a", inPool("gone")), ips: []string{"203.0.113.7"}, want: []string{"203.0.113.7"}},
				{req: rq("ns/a", inPool("gone")), want: []string{"203.0.113.7"}},
				{req: rq("ns/a", inPool("p")), want: []string{"10.0.0.0"}},
			},
		},
		{
			desc:  "an assigned .0 address in an avoidBuggyIPs pool is kept",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"}, avoid)),
			steps: []step{
				{do: "assign", req: rq("ns/a"), ips: []string{"10.0.0.0"}, want: []string{"10.0.0.0"}},
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/b"), want: []string{"10.0.0.1"}},
			},
		},

		// Pool changes.
		{
			desc:  "deleting a pool keeps its addresses in use, reported out of pool",
			pools: pools(mkPool("a", []string{"10.0.0.0/24"}), mkPool("b", []string{"10.1.0.0/24"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{do: "config", pools: pools(mkPool("b", []string{"10.1.0.0/24"})), check: func(t *testing.T, a *Allocator) {
					if got := a.OutOfPool(); !slices.Equal(got, []string{"ns/a"}) {
						t.Errorf("OutOfPool = %v", got)
					}
				}},
				{req: rq("ns/a"), want: []string{"10.0.0.0"}, pool: []string{""}},
				{req: rq("ns/b"), want: []string{"10.1.0.0"}},
				{do: "config", pools: pools(mkPool("a", []string{"10.0.0.0/24"}), mkPool("b", []string{"10.1.0.0/24"}))},
				{req: rq("ns/a"), want: []string{"10.0.0.0"}, pool: []string{"a"}},
				{req: rq("ns/c", inPool("a")), want: []string{"10.0.0.1"}},
			},
		},
		{
			desc:  "an address outside a shrunk pool is not handed out when the pool grows back",
			pools: pools(mkPool("p", []string{"10.0.0.0/30"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{do: "config", pools: pools(mkPool("p", []string{"10.0.0.2/31"}))},
				{req: rq("ns/b"), want: []string{"10.0.0.2"}},
				{do: "config", pools: pools(mkPool("p", []string{"10.0.0.0/29"}))},
				{req: rq("ns/c"), want: []string{"10.0.0.1"}},
				{req: rq("ns/d"), want: []string{"10.0.0.3"}},
			},
		},
		{
			desc:  "an address stays when its pool stops selecting the Service",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"}, inNamespaces("ns"))),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{do: "config", pools: pools(mkPool("p", []string{"10.0.0.0/24"}, inNamespaces("other")))},
				{req: rq("ns/a"), want: []string{"10.0.0.0"}, pool: []string{"p"}},
				{req: rq("ns/b"), kind: ErrNoPool, err: "no pool selects this Service"},
			},
		},
		{
			desc:  "turning avoidBuggyIPs on keeps addresses in use and stops handing out .0",
			pools: pools(mkPool("p", []string{"10.0.0.0/24"})),
			steps: []step{
				{req: rq("ns/a"), want: []string{"10.0.0.0"}},
				{req: rq("ns/b"), want: []string{"10.0.0.1"}},
				{do: "release", req: rq("ns/a")},
				{do: "config", pools: pools(mkPool("p", []string{"10.0.0.0/24"}, avoid))},
				{req: rq("ns/c"), want: []string{"10.0.0.2"}},
				{req: rq("ns/b"), want: []string{"10.0.0.1"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			a := newAllocator(t, tc.pools...)
			for i, s := range tc.steps {
				var got Allocation
				var err error
				switch s.do {
				case "", "alloc":
					if s.req.Key == "" && s.kind == nil && s.check != nil {
						break // a check-only step
					}
					got, err = a.Allocate(s.req)
				case "assign":
					got, err = a.Assign(s.req, addrs(s.ips...))
				case "release":
					if !a.Release(s.req.Key) {
						t.Errorf("step %d: Release(%q) = false, want true", i, s.req.Key)
					}
				case "config":
					a.SetConfig(s.pools)
				}
				if s.kind != nil || s.err != "" {
					if err == nil {
						t.Fatalf("step %d (%s %s): got %v, want error %q", i, s.do, s.req.Key, strs(got.IPs), s.err)
					}
					if s.kind != nil && !errors.Is(err, s.kind) {
						t.Errorf("step %d: error %q is not %v", i, err, s.kind)
					}
					if !strings.Contains(err.Error(), s.err) {
						t.Errorf("step %d: error %q does not contain %q", i, err, s.err)
					}
				} else if err != nil {
					t.Fatalf("step %d (%s %s): %v", i, s.do, s.req.Key, err)
				}
				if s.want != nil && !slices.Equal(strs(got.IPs), s.want) {
					t.Errorf("step %d (%s %s): got %v, want %v", i, s.do, s.req.Key, strs(got.IPs), s.want)
				}
				if s.pool != nil && !slices.Equal(got.Pools, s.pool) {
					t.Errorf("step %d (%s %s): pools %q, want %q", i, s.do, s.req.Key, got.Pools, s.pool)
				}
				if s.check != nil {
					s.check(t, a)
				}
				checkInvariants(t, a)
			}
		})
	}
}
