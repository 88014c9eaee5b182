// Package bgpwhy decides, from what the API stores, whether a Service's
// BGP advertisement can reach a router, and says why not. It is pure: the
// speaker that reports (see docs/design.md) and `kubectl herald why` give
// it the same objects and get the same answer.
//
// The nodes that would advertise a Service are those with a
// ServiceAnnouncement <service>.bgp.<node>: each names the BGPPeers its
// node advertises the Service's IPs to. Each node publishes its sessions
// in BGPSessionState objects. The advertisement reaches a router when at
// least one of those nodes has an Established session to one of the peers
// its object names.
package bgpwhy

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/election"
)

// ReasonNoSession: nodes advertise the Service, but none of them has an
// Established BGP session to a peer it advertises it to.
const ReasonNoSession = "NoEstablishedSession"

// ReasonNoNode: a BGPAdvertisement covers the Service's pool and selects
// it, yet no node advertises it (no ServiceAnnouncement <service>.bgp.<node>)
// and layer 2 does not announce it either.
const ReasonNoNode = "NoAdvertisingNode"

// ReasonNoPeer: no BGPPeer that selects the node is one the advertisements
// that select it name (or, when they name none, no BGPPeer selects it).
const ReasonNoPeer election.Reason = "NoMatchingPeer"

// Established is the BGP FSM state of a session that is up.
const Established = "Established"

// Link is one session a node advertises the Service on.
type Link struct {
	Node string `json:"node"`
	Peer string `json:"peer"`
	// State is the session's FSM state; empty when no BGPSessionState
	// exists for it.
	State string `json:"state"`
}

func (l Link) String() string {
	st := l.State
	if st == "" {
		st = "no BGPSessionState"
	}
	return fmt.Sprintf("%s to peer %s: %s", l.Node, l.Peer, st)
}

// Node is what Judge reads of a live node to say why it does not advertise
// a Service.
type Node struct {
	Name string
	// Excluded: the node carries the label
	// node.kubernetes.io/exclude-from-external-load-balancers (unless
	// ignored) or its NetworkUnavailable condition is true.
	Excluded bool
	// Peers are the names of the BGPPeers whose nodeSelectors select it.
	Peers []string
	// Endpoint: the node holds a ready or serving endpoint of the Service
	// (read only under externalTrafficPolicy: Local).
	Endpoint bool
}

// Ad is a BGPAdvertisement that covers the Service's pool and selects the
// Service.
type Ad struct {
	Name string
	// Peers are the BGPPeers it advertises to; empty is every one.
	Peers []string
	// Selects reports whether its nodeSelectors select the node; nil
	// selects every node.
	Selects func(node string) bool
}

// Coverage is what Judge reads when no node advertises the Service.
type Coverage struct {
	// IPs are the Service's IPs in a pool that Ads cover.
	IPs []string
	// Ads are the BGPAdvertisements that cover the Service; none means the
	// Service is not BGP's, and Judge says nothing of it.
	Ads []Ad
	// L2 is true when layer 2 announces the Service (a ServiceAnnouncement
	// <service>.l2) or an L2Advertisement covers it: layer 2 then says
	// whatever there is to say.
	L2 bool
	// Local is true under externalTrafficPolicy: Local.
	Local bool
	// Nodes are the live nodes.
	Nodes []Node
}

// WhyNot returns why node n does not advertise the Service, or "" when it
// may. It checks, in this order: the exclusion, the advertisements' node
// selectors, their peers, the local endpoints (the reasons layer 2 uses
// where the facts are the same, see [election.Service.WhyNot]).
func (c Coverage) WhyNot(n Node) election.Reason {
	if n.Excluded {
		return election.ReasonExcluded
	}
	selected, peered := false, false
	for _, a := range c.Ads {
		if a.Selects != nil && !a.Selects(n.Name) {
			continue
		}
		selected = true
		if len(a.Peers) == 0 && len(n.Peers) > 0 || slices.ContainsFunc(a.Peers, func(p string) bool { return slices.Contains(n.Peers, p) }) {
			peered = true
			break
		}
	}
	switch {
	case !selected:
		return election.ReasonNotSelected
	case !peered:
		return ReasonNoPeer
	case c.Local && !n.Endpoint:
		return election.ReasonNoEndpoint
	}
	return ""
}

// anyMay reports whether a node may advertise the Service: then its speaker
// has not written its object yet, or runs no BGP; either way no verdict is
// due from the configuration.
func (c Coverage) anyMay() bool {
	return slices.ContainsFunc(c.Nodes, func(n Node) bool { return c.WhyNot(n) == "" })
}

// rank orders the node reasons by how close a node came to advertising.
var rank = map[election.Reason]int{election.ReasonExcluded: 1, election.ReasonNotSelected: 2, ReasonNoPeer: 3, election.ReasonNoEndpoint: 4}

// Verdict is what Judge decides of one Service.
type Verdict struct {
	// Reason is ReasonNoSession, ReasonNoNode, or empty when a session is
	// established, or when no node advertises the Service and it is not
	// BGP's to report (no BGPAdvertisement covers it, or layer 2 does) or
	// a node may advertise it (its object is not written yet).
	Reason string `json:"reason,omitempty"`
	// Why is, for ReasonNoNode, the reason of the nodes that came closest
	// to advertising (election.ReasonNoLiveNode when there is none), and
	// NodeReasons counts the nodes per reason.
	Why         election.Reason         `json:"why,omitempty"`
	NodeReasons map[election.Reason]int `json:"nodeReasons,omitempty"`
	// Ads name the covering BGPAdvertisements, for ReasonNoNode.
	Ads []string `json:"advertisements,omitempty"`
	// Nodes are the advertising nodes, sorted.
	Nodes []string `json:"nodes,omitempty"`
	// IPs are the advertised IPs, sorted and unique.
	IPs []string `json:"ips,omitempty"`
	// Up counts the Established sessions among Links.
	Up int `json:"up"`
	// Links are the sessions the nodes advertise on, sorted by node and
	// peer; a node whose object names no peer has none.
	Links []Link `json:"links,omitempty"`
}

// Judge decides from the Service's ServiceAnnouncements (those of other
// protocols are skipped) and state, which returns the FSM state of the
// session of node with peer as its BGPSessionState says, and false when
// there is none. When no node advertises the Service, cov says whether it
// should be advertised and why no node does.
func Judge(anns []v1beta1.ServiceAnnouncementStatus, state func(node, peer string) (string, bool), cov Coverage) Verdict {
	var v Verdict
	for _, a := range anns {
		if a.Protocol != v1beta1.ProtocolBGP || a.Node == "" {
			continue
		}
		v.Nodes = append(v.Nodes, a.Node)
		v.IPs = append(v.IPs, a.IPs...)
		for _, p := range a.Peers {
			l := Link{Node: a.Node, Peer: p}
			if st, ok := state(a.Node, p); ok {
				l.State = st
			}
			if l.State == Established {
				v.Up++
			}
			v.Links = append(v.Links, l)
		}
	}
	slices.Sort(v.Nodes)
	v.Nodes = slices.Compact(v.Nodes)
	slices.Sort(v.IPs)
	v.IPs = slices.Compact(v.IPs)
	slices.SortFunc(v.Links, func(a, b Link) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Peer, b.Peer)
	})
	if len(v.Nodes) > 0 && v.Up == 0 {
		v.Reason = ReasonNoSession
	}
	if len(v.Nodes) == 0 && len(cov.Ads) > 0 && len(cov.IPs) > 0 && !cov.L2 && !cov.anyMay() {
		v.Reason = ReasonNoNode
		v.IPs = slices.Compact(slices.Sorted(slices.Values(cov.IPs)))
		for _, a := range cov.Ads {
			v.Ads = append(v.Ads, a.Name)
		}
		slices.Sort(v.Ads)
		v.Ads = slices.Compact(v.Ads)
		v.Why = election.ReasonNoLiveNode
		if len(cov.Nodes) > 0 {
			v.NodeReasons = map[election.Reason]int{}
			v.Why = ""
		}
		for _, n := range cov.Nodes {
			r := cov.WhyNot(n)
			v.NodeReasons[r]++
			if rank[r] > rank[v.Why] {
				v.Why = r
			}
		}
	}
	return v
}

// leads say, per closest node reason, why no node advertises a Service.
var leads = map[election.Reason]string{
	election.ReasonNoLiveNode:  "no speaker is running on a node",
	election.ReasonExcluded:    "every node is excluded from external load balancers (label node.kubernetes.io/exclude-from-external-load-balancers or NetworkUnavailable; the speaker flag --ignore-exclude-lb ignores the label)",
	election.ReasonNotSelected: "no node is selected by the nodeSelectors of a BGPAdvertisement that covers the IP",
	ReasonNoPeer:               "no selected node has a BGPPeer the BGPAdvertisement advertises to",
	election.ReasonNoEndpoint:  "externalTrafficPolicy is Local and no node with a BGP peer has a ready endpoint",
}

var describe = map[election.Reason]string{
	election.ReasonExcluded:    "excluded",
	election.ReasonNotSelected: "not selected",
	ReasonNoPeer:               "without a matching peer",
	election.ReasonNoEndpoint:  "without a local endpoint",
}

// Message says the verdict in plain words, for an event and for `kubectl
// herald why`: which nodes advertise, to which peers, and in what state
// each session is.
func (v Verdict) Message() string {
	if v.Reason == ReasonNoNode {
		msg := "no node advertises it in BGP mode: " + leads[v.Why]
		parts := make([]string, 0, len(v.NodeReasons))
		for _, r := range slices.SortedFunc(maps.Keys(v.NodeReasons), func(a, b election.Reason) int { return cmp.Compare(rank[b], rank[a]) }) {
			parts = append(parts, fmt.Sprintf("%d %s", v.NodeReasons[r], describe[r]))
		}
		if len(parts) > 0 {
			msg += " (" + strings.Join(parts, ", ") + ")"
		}
		return msg + " (BGPAdvertisement " + strings.Join(v.Ads, ",") + ")"
	}
	if v.Reason != ReasonNoSession {
		return fmt.Sprintf("%d BGP session(s) established on the advertising nodes %s", v.Up, strings.Join(v.Nodes, ","))
	}
	links := make([]string, 0, len(v.Links))
	for _, l := range v.Links {
		links = append(links, l.String())
	}
	without := []string{}
	for _, n := range v.Nodes {
		if !slices.ContainsFunc(v.Links, func(l Link) bool { return l.Node == n }) {
			without = append(without, n)
		}
	}
	msg := fmt.Sprintf("no BGP session is established on the nodes that advertise it (%s), so no router learns the route", strings.Join(v.Nodes, ","))
	if len(links) > 0 {
		msg += ": " + strings.Join(links, "; ")
	}
	if len(without) > 0 {
		msg += "; no BGPPeer on " + strings.Join(without, ",")
	}
	return msg
}

// ReportDelay is how long a Service must have been broken before the
// Tracker reports it: a session that flaps, or a speaker that starts and
// has not written its state yet, is not worth an event.
const ReportDelay = 5 * time.Second

// Due is one Service to report, once.
type Due struct {
	Service string
	Verdict Verdict
}

// Tracker remembers, on the reporting speaker, which Services are broken,
// since when, and which were reported, so that each is reported once per
// transition (broken, then fine, then broken again is two reports; so is a
// change of reason while broken) and a
// resync that decides the same reports nothing. It is not safe for
// concurrent use.
type Tracker struct {
	broken   map[string]Verdict
	since    map[string]time.Time
	reported map[string]bool
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{broken: map[string]Verdict{}, since: map[string]time.Time{}, reported: map[string]bool{}}
}

// Set records the verdict of a Service (namespace/name) seen at now.
func (t *Tracker) Set(svc string, v Verdict, now time.Time) {
	if v.Reason == "" {
		delete(t.broken, svc)
		delete(t.since, svc)
		delete(t.reported, svc)
		return
	}
	if old, ok := t.broken[svc]; !ok || old.Reason != v.Reason {
		// Newly broken, or broken for another reason: a new transition.
		t.since[svc] = now
		delete(t.reported, svc)
	}
	t.broken[svc] = v
}

// Broken returns the Services recorded as broken, in no order.
func (t *Tracker) Broken() []string {
	out := make([]string, 0, len(t.broken))
	for s := range t.broken {
		out = append(out, s)
	}
	return out
}

// Due returns the Services broken for ReportDelay up to now and not yet
// reported, sorted, and marks them reported.
func (t *Tracker) Due(now time.Time) []Due {
	var out []Due
	for svc, v := range t.broken {
		if t.reported[svc] || now.Sub(t.since[svc]) < ReportDelay {
			continue
		}
		t.reported[svc] = true
		out = append(out, Due{Service: svc, Verdict: v})
	}
	slices.SortFunc(out, func(a, b Due) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// IPs counts, per reason, the distinct IPs of the broken Services.
func (t *Tracker) IPs() map[string]int {
	seen := map[string]map[string]bool{}
	for _, v := range t.broken {
		if seen[v.Reason] == nil {
			seen[v.Reason] = map[string]bool{}
		}
		for _, ip := range v.IPs {
			seen[v.Reason][ip] = true
		}
	}
	out := map[string]int{}
	for r, ips := range seen {
		out[r] = len(ips)
	}
	return out
}

// Reset forgets everything (this speaker stopped being the reporter).
func (t *Tracker) Reset() {
	clear(t.broken)
	clear(t.since)
	clear(t.reported)
}
