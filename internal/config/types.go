package config

import (
	"net/netip"
	"slices"

	"go4.org/netipx"
	"k8s.io/apimachinery/pkg/labels"
)

// Family is an IP address family.
type Family int

// The two address families Herald handles.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "IPv4" or "IPv6".
func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// FamilyOf returns the family of addr. IPv4-mapped IPv6 addresses count as IPv4.
func FamilyOf(addr netip.Addr) Family {
	if addr.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Pool is one validated IPAddressPool.
type Pool struct {
	// Name is the IPAddressPool's name.
	Name string
	// V4 and V6 hold the pool's addresses as sorted, non-overlapping,
	// non-adjacent ranges of one family each.
	V4, V6 []netipx.IPRange
	// Set holds every address of the pool, for membership tests.
	Set *netipx.IPSet
	// AutoAssign is false when the pool only serves Services that ask for it
	// (by pool name or by IP).
	AutoAssign bool
	// AvoidBuggyIPs skips addresses that end in .0 or .255.
	AvoidBuggyIPs bool
	// Priority orders pools that select a Service; lower wins. Only
	// meaningful when HasPriority is true: a pool without one comes last.
	Priority    int32
	HasPriority bool
	// Namespaces, NamespaceSelectors and ServiceSelectors restrict the pool to
	// some Services. A Service matches when its namespace is in Namespaces or
	// matches one of NamespaceSelectors (if either is set), and its labels
	// match one of ServiceSelectors (if set).
	Namespaces         []string
	NamespaceSelectors []labels.Selector
	ServiceSelectors   []labels.Selector
	// Labels are the pool's own labels, for ipAddressPoolSelectors.
	Labels map[string]string
}

// Ranges returns the pool's ranges of family f.
func (p *Pool) Ranges(f Family) []netipx.IPRange {
	if f == IPv6 {
		return p.V6
	}
	return p.V4
}

// Contains reports whether addr is one of the pool's addresses.
func (p *Pool) Contains(addr netip.Addr) bool {
	return p.Set != nil && p.Set.Contains(addr.Unmap())
}

// HasSelectors reports whether the pool restricts the Services it serves.
func (p *Pool) HasSelectors() bool {
	return len(p.Namespaces) > 0 || len(p.NamespaceSelectors) > 0 || len(p.ServiceSelectors) > 0
}

// Selects reports whether the pool's serviceAllocation selects a Service in
// namespace ns (whose labels are nsLabels) that has labels svcLabels. A pool
// without selectors selects every Service.
func (p *Pool) Selects(ns string, nsLabels, svcLabels map[string]string) bool {
	if len(p.Namespaces) > 0 || len(p.NamespaceSelectors) > 0 {
		ok := slices.Contains(p.Namespaces, ns)
		for _, s := range p.NamespaceSelectors {
			if ok {
				break
			}
			ok = s.Matches(labels.Set(nsLabels))
		}
		if !ok {
			return false
		}
	}
	if len(p.ServiceSelectors) > 0 {
		for _, s := range p.ServiceSelectors {
			if s.Matches(labels.Set(svcLabels)) {
				return true
			}
		}
		return false
	}
	return true
}
