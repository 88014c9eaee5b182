package election

import (
	"path"
	"slices"
)

// Node is a candidate announcer, as the caller assembles it from the
// memberlist view and the Kubernetes Node object.
type Node struct {
	// Name is the node name; it is the identity that is hashed.
	Name string
	// Labels are the node's labels, for the advertisements' node selectors.
	Labels map[string]string
	// Interfaces lists the network interfaces the node can announce from.
	// Nil means unknown and is treated as having every interface, so that a
	// cluster whose speakers do not publish their interfaces still elects
	// consistently; an empty non-nil slice means none.
	Interfaces []string
	// Excluded is true when the node must not announce at all: it carries the
	// label node.kubernetes.io/exclude-from-external-load-balancers, or its
	// NetworkUnavailable condition is true.
	Excluded bool
}

// HasInterface reports whether the node has an interface that pattern
// matches (see [MatchInterface]).
func (n *Node) HasInterface(pattern string) bool {
	if n.Interfaces == nil {
		return true
	}
	for _, name := range n.Interfaces {
		if MatchInterface(pattern, name) {
			return true
		}
	}
	return false
}

// MatchInterface reports whether an interface pattern matches an interface
// name. A pattern is an exact name or a shell glob as path.Match reads it
// ("eth*", "bond[01]", "en?1"); config rejects malformed patterns, which
// match nothing here.
func MatchInterface(pattern, name string) bool {
	if pattern == name {
		return true
	}
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// MatchAnyInterface reports whether one of the patterns matches name.
func MatchAnyInterface(patterns []string, name string) bool {
	for _, p := range patterns {
		if MatchInterface(p, name) {
			return true
		}
	}
	return false
}

// NodeSet is a set of node names.
type NodeSet map[string]struct{}

// NewNodeSet returns a set holding names.
func NewNodeSet(names ...string) NodeSet {
	s := make(NodeSet, len(names))
	for _, n := range names {
		s[n] = struct{}{}
	}
	return s
}

// Has reports whether name is in the set.
func (s NodeSet) Has(name string) bool {
	_, ok := s[name]
	return ok
}

// Advertisement is one layer 2 advertisement that applies to a service key,
// already resolved by the caller (its pools and service selectors match).
type Advertisement struct {
	// Selects reports whether the advertisement's node selectors select the
	// node. Nil selects every node.
	Selects func(n *Node) bool
	// Interfaces restricts the interfaces the IPs are announced from: exact
	// names or glob patterns (see [MatchInterface]). Empty means any
	// interface.
	Interfaces []string
	// Prefers reports whether the advertisement's preferredNodeSelectors
	// select the node. Nil prefers none.
	Prefers func(n *Node) bool
}

// admits reports whether the advertisement lets n announce.
func (a *Advertisement) admits(n *Node) bool {
	if a.Selects != nil && !a.Selects(n) {
		return false
	}
	if n.Interfaces != nil && len(n.Interfaces) == 0 {
		// The node publishes that it has no interface to announce from
		// (none up with carrier): it cannot answer, so it is not
		// eligible.
		return false
	}
	if len(a.Interfaces) == 0 {
		return true
	}
	for _, i := range a.Interfaces {
		if n.HasInterface(i) {
			return true
		}
	}
	return false
}

// Service is the unit that is elected as a whole: all its IPs (both
// families of a dual-stack Service) go to one node.
type Service struct {
	// Key identifies the unit, usually "namespace/name". Services that share
	// an IP must be merged by the caller into one Service with one key, or
	// two nodes would answer for that IP.
	Key string
	// Advertisements are the advertisements that apply. A node is eligible
	// if any of them admits it; with none, no node is eligible.
	Advertisements []Advertisement
	// LocalTraffic is true under externalTrafficPolicy: Local.
	LocalTraffic bool
	// EndpointNodes holds the nodes that have a ready or serving endpoint of
	// the Service. It is consulted only when LocalTraffic is true.
	EndpointNodes NodeSet
}

// Eligible reports whether n may announce s, apart from being alive, which
// is the caller's (or the [Table]'s) concern.
func (s *Service) Eligible(n *Node) bool {
	if n.Excluded {
		return false
	}
	if s.LocalTraffic && !s.EndpointNodes.Has(n.Name) {
		return false
	}
	for i := range s.Advertisements {
		if s.Advertisements[i].admits(n) {
			return true
		}
	}
	return false
}

// Preferred reports whether n is a preferred node of s: an advertisement
// that admits n prefers it. Among the eligible nodes, a preferred one
// always wins over one that is not; the hash ranks each group.
func (s *Service) Preferred(n *Node) bool {
	for i := range s.Advertisements {
		a := &s.Advertisements[i]
		if a.Prefers != nil && a.admits(n) && a.Prefers(n) {
			return true
		}
	}
	return false
}

// Interfaces returns the interfaces n announces s from: the names of n's
// interfaces that an admitting advertisement's patterns match, sorted. When
// n's interfaces are unknown, the patterns themselves are returned (the
// announcer matches them against its own links). all is true when some
// admitting advertisement allows any interface; then names is nil.
func (s *Service) Interfaces(n *Node) (names []string, all bool) {
	for i := range s.Advertisements {
		a := &s.Advertisements[i]
		if !a.admits(n) {
			continue
		}
		if len(a.Interfaces) == 0 {
			return nil, true
		}
		if n.Interfaces == nil {
			for _, p := range a.Interfaces {
				if !slices.Contains(names, p) {
					names = append(names, p)
				}
			}
			continue
		}
		for _, name := range n.Interfaces {
			if MatchAnyInterface(a.Interfaces, name) && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, false
}
