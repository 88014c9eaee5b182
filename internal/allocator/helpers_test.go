package allocator

import (
	"net/netip"
	"strings"
	"testing"

	"go4.org/netipx"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/config"
)

// poolOpt changes a test pool.
type poolOpt func(*config.Pool)

var (
	manual = func(p *config.Pool) { p.AutoAssign = false }
	avoid  = func(p *config.Pool) { p.AvoidBuggyIPs = true }
)

func prio(n int32) poolOpt {
	return func(p *config.Pool) { p.Priority, p.HasPriority = n, true }
}

func inNamespaces(ns ...string) poolOpt {
	return func(p *config.Pool) { p.Namespaces = ns }
}

func nsSelector(sel string) poolOpt {
	return func(p *config.Pool) {
		p.NamespaceSelectors = append(p.NamespaceSelectors, labels.SelectorFromSet(parseLabels(sel)))
	}
}

func svcSelector(sel string) poolOpt {
	return func(p *config.Pool) {
		p.ServiceSelectors = append(p.ServiceSelectors, labels.SelectorFromSet(parseLabels(sel)))
	}
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for kv := range strings.SplitSeq(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// mkPool builds a validated pool from CIDRs and "a-b" ranges, as config
// would.
func mkPool(name string, addrs []string, opts ...poolOpt) *config.Pool {
	var b netipx.IPSetBuilder
	for _, a := range addrs {
		if from, to, ok := strings.Cut(a, "-"); ok {
			b.AddRange(netipx.IPRangeFrom(netip.MustParseAddr(from), netip.MustParseAddr(to)))
		} else {
			b.AddPrefix(netip.MustParsePrefix(a))
		}
	}
	set, err := b.IPSet()
	if err != nil {
		panic(err)
	}
	p := &config.Pool{Name: name, Set: set, AutoAssign: true}
	for _, r := range set.Ranges() {
		if r.From().Is4() {
			p.V4 = append(p.V4, r)
		} else {
			p.V6 = append(p.V6, r)
		}
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func pools(ps ...*config.Pool) []*config.Pool { return ps }

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func strs(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func newAllocator(t testing.TB, ps ...*config.Pool) *Allocator {
	t.Helper()
	a := New()
	a.SetConfig(ps)
	return a
}

var (
	v4   = []config.Family{config.IPv4}
	v6   = []config.Family{config.IPv6}
	v46  = []config.Family{config.IPv4, config.IPv6}
	v64  = []config.Family{config.IPv6, config.IPv4}
	tcp  = func(ports ...int32) []Port { return protoPorts("TCP", ports...) }
	udp  = func(ports ...int32) []Port { return protoPorts("UDP", ports...) }
	join = func(ps ...[]Port) []Port {
		var out []Port
		for _, p := range ps {
			out = append(out, p...)
		}
		return out
	}
)

func protoPorts(proto string, ports ...int32) []Port {
	out := make([]Port, len(ports))
	for i, p := range ports {
		out[i] = Port{Protocol: proto, Port: p}
	}
	return out
}
