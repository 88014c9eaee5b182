package election

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Reason says why a node may not announce a service, or why no node may.
type Reason string

// Reasons, in the order a node is checked: the first that applies is the
// node's.
const (
	// ReasonNoLiveNode: no speaker is alive in the membership with a Node
	// object.
	ReasonNoLiveNode Reason = "NoLiveNode"
	// ReasonNoAdvertisement: no L2Advertisement covers the service's pool
	// and selects the service.
	ReasonNoAdvertisement Reason = "NoAdvertisement"
	// ReasonExcluded: the node carries the label
	// node.kubernetes.io/exclude-from-external-load-balancers or its
	// NetworkUnavailable condition is true.
	ReasonExcluded Reason = "NodeExcluded"
	// ReasonNotSelected: no applying advertisement's nodeSelectors select
	// the node.
	ReasonNotSelected Reason = "NodeNotSelected"
	// ReasonNoInterface: the node has none of the interfaces of the
	// advertisements that select it.
	ReasonNoInterface Reason = "NoMatchingInterface"
	// ReasonNoEndpoint: under externalTrafficPolicy: Local, the node has no
	// ready or serving endpoint of the service.
	ReasonNoEndpoint Reason = "NoLocalEndpoint"
)

// rank orders the node reasons by how close a node came to eligibility.
var rank = map[Reason]int{ReasonExcluded: 1, ReasonNotSelected: 2, ReasonNoInterface: 3, ReasonNoEndpoint: 4}

// WhyNot returns why n may not announce s, or "" when it may. It checks,
// in this order: the exclusion, the advertisements' node selectors, their
// interfaces, the local endpoints.
func (s *Service) WhyNot(n *Node) Reason {
	if len(s.Advertisements) == 0 {
		return ReasonNoAdvertisement
	}
	if n.Excluded {
		return ReasonExcluded
	}
	selected, withIface := false, false
	for i := range s.Advertisements {
		a := &s.Advertisements[i]
		if a.Selects != nil && !a.Selects(n) {
			continue
		}
		selected = true
		if a.admits(n) {
			withIface = true
			break
		}
	}
	switch {
	case !selected:
		return ReasonNotSelected
	case !withIface:
		return ReasonNoInterface
	case s.LocalTraffic && !s.EndpointNodes.Has(n.Name):
		return ReasonNoEndpoint
	}
	return ""
}

// Unannounced says why no node announces a service.
type Unannounced struct {
	// Reason is the reason of the nodes that came closest to being
	// eligible (a node without a local endpoint is closer than one that
	// no advertisement selects), or ReasonNoLiveNode or
	// ReasonNoAdvertisement.
	Reason Reason
	// Nodes counts the nodes per reason.
	Nodes map[Reason]int
}

// Message says it in a sentence for an event.
func (u Unannounced) Message() string {
	switch u.Reason {
	case ReasonNoLiveNode:
		return "no speaker is running on a node"
	case ReasonNoAdvertisement:
		return "no L2Advertisement covers the IP's pool and selects the Service"
	}
	parts := make([]string, 0, len(u.Nodes))
	for _, r := range slices.SortedFunc(maps.Keys(u.Nodes), func(a, b Reason) int { return cmp.Compare(rank[b], rank[a]) }) {
		parts = append(parts, fmt.Sprintf("%d %s", u.Nodes[r], describe[r]))
	}
	lead := map[Reason]string{
		ReasonExcluded:    "every node is excluded from external load balancers (label node.kubernetes.io/exclude-from-external-load-balancers or NetworkUnavailable; the speaker flag --ignore-exclude-lb ignores the label)",
		ReasonNotSelected: "no node is selected by the nodeSelectors of an L2Advertisement that covers the IP",
		ReasonNoInterface: "no selected node has an interface the L2Advertisement lists",
		ReasonNoEndpoint:  "externalTrafficPolicy is Local and no eligible node has a ready endpoint",
	}[u.Reason]
	return lead + " (" + strings.Join(parts, ", ") + ")"
}

var describe = map[Reason]string{
	ReasonExcluded:    "excluded",
	ReasonNotSelected: "not selected",
	ReasonNoInterface: "without the interface",
	ReasonNoEndpoint:  "without a local endpoint",
}

// Why returns why the key has no owner, and false when it has one or is
// unknown.
func (t *Table) Why(key string) (Unannounced, bool) {
	e, ok := t.keys[key]
	if !ok || e.owner != "" {
		return Unannounced{}, false
	}
	if len(e.svc.Advertisements) == 0 {
		return Unannounced{Reason: ReasonNoAdvertisement}, true
	}
	if len(t.nodes) == 0 {
		return Unannounced{Reason: ReasonNoLiveNode}, true
	}
	u := Unannounced{Nodes: make(map[Reason]int)}
	for _, n := range t.nodes {
		r := e.svc.WhyNot(n)
		if r == "" {
			// Eligible but not elected cannot be: the table elects on
			// every change. Report it as the closest reason anyway.
			r = ReasonNoEndpoint
		}
		u.Nodes[r]++
		if rank[r] > rank[u.Reason] {
			u.Reason = r
		}
	}
	return u, true
}

// Nodes returns the names of the nodes in the table, sorted.
func (t *Table) Nodes() []string {
	names := make([]string, 0, len(t.nodes))
	for n := range t.nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
