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
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heraldlb/herald/api/v1beta1"
)

// ReasonNoSession: nodes advertise the Service, but none of them has an
// Established BGP session to a peer it advertises it to.
const ReasonNoSession = "NoEstablishedSession"

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

// Verdict is what Judge decides of one Service.
type Verdict struct {
	// Reason is ReasonNoSession, or empty when a session is established
	// or when no node advertises the Service (nothing to say about BGP
	// sessions then).
	Reason string `json:"reason,omitempty"`
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
// there is none.
func Judge(anns []v1beta1.ServiceAnnouncementStatus, state func(node, peer string) (string, bool)) Verdict {
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
	return v
}

// Message says the verdict in plain words, for an event and for `kubectl
// herald why`: which nodes advertise, to which peers, and in what state
// each session is.
func (v Verdict) Message() string {
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
// transition (broken, then fine, then broken again is two reports) and a
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
	if _, ok := t.broken[svc]; !ok {
		t.since[svc] = now
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
