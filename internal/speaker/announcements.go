package speaker

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/bgp"
)

// This file decides which ServiceAnnouncement objects this node wants, per
// group key, without any I/O. The loop computes them after each reconcile
// and hands the differences to the writer (annwriter.go), which does the
// API calls on a goroutine of its own.
//
// In L2 mode one object per Service, <service>.l2, written by the owner.
// A failover costs one write: the new owner overwrites the object; the old
// owner, which knows the key has a new owner, writes nothing. In BGP mode
// one object per Service and advertising node, <service>.bgp.<node>,
// written and deleted by that node alone.

// AnnouncementName returns the name of the ServiceAnnouncement of a
// Service (a DNS label, so never with a dot) for a protocol, and in BGP
// mode for a node. A name longer than an object name may be ends with a
// hash of the full one.
func AnnouncementName(service, protocol, node string) string {
	name := service + ".l2"
	if protocol == v1beta1.ProtocolBGP {
		name = service + ".bgp." + node
	}
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

// annObject is one ServiceAnnouncement this node wants: its namespace/name
// and status.
type annObject = map[string]v1beta1.ServiceAnnouncementStatus

// wantL2 returns the L2 objects this node wants for a group key: one per
// member Service with an IP that the node answers for.
func wantL2(self string, members []string, infos func(string) *ServiceInfo, ips []netip.Addr, ifaces []string, out annObject) {
	for _, m := range members {
		info := infos(m)
		if info == nil {
			continue
		}
		ns, name, _ := strings.Cut(m, "/")
		var mine []string
		for _, ip := range info.IPs {
			if slices.Contains(ips, ip) {
				mine = append(mine, ip.String())
			}
		}
		if len(mine) == 0 {
			continue
		}
		out[ns+"/"+AnnouncementName(name, v1beta1.ProtocolL2, self)] = v1beta1.ServiceAnnouncementStatus{
			Service: name, Protocol: v1beta1.ProtocolL2, Node: self, IPs: mine, Interfaces: slices.Clone(ifaces),
		}
	}
}

// wantBGP returns the BGP objects this node wants for a group key: one per
// member Service with an IP inside a prefix advertised to one of the
// node's peers, naming the peers the prefixes go to (every peer of the
// node for an advertisement that names none; of the peers an
// advertisement names, only the node's). A node without such a peer
// advertises to nobody and has no object: the objects are the nodes that
// would advertise, which the reporter and `kubectl herald why` judge
// against the BGPSessionStates.
func wantBGP(self string, members []string, infos func(string) *ServiceInfo, ads []bgp.Advertisement, peers []bgp.Peer, out annObject) {
	if len(ads) == 0 || len(peers) == 0 {
		return
	}
	has := func(name string) bool {
		return slices.ContainsFunc(peers, func(p bgp.Peer) bool { return p.Name == name })
	}
	for _, m := range members {
		info := infos(m)
		if info == nil {
			continue
		}
		ns, name, _ := strings.Cut(m, "/")
		var ips []string
		to := map[string]bool{}
		for _, ip := range info.IPs {
			in := false
			for _, ad := range ads {
				if !ad.Prefix.Contains(ip) {
					continue
				}
				if len(ad.Peers) == 0 {
					in = true
					for _, p := range peers {
						to[p.Name] = true
					}
				}
				for _, p := range ad.Peers {
					if has(p) {
						in = true
						to[p] = true
					}
				}
			}
			if in {
				ips = append(ips, ip.String())
			}
		}
		if len(ips) == 0 {
			continue
		}
		out[ns+"/"+AnnouncementName(name, v1beta1.ProtocolBGP, self)] = v1beta1.ServiceAnnouncementStatus{
			Service: name, Protocol: v1beta1.ProtocolBGP, Node: self, IPs: ips, Peers: slices.Sorted(maps.Keys(to)),
		}
	}
}

// annTracker remembers, per group key, the objects this node wants; it is
// owned by the loop.
type annTracker struct {
	byKey map[string]annObject
	keyOf map[string]string // object -> the key that wants it
}

func newAnnTracker() *annTracker {
	return &annTracker{byKey: map[string]annObject{}, keyOf: map[string]string{}}
}

// annOps are the changes to hand to the writer after one pass: objects to
// write, objects to delete (only while they still name this node), and
// objects to forget without a write (another node owns them now).
type annOps struct {
	apply  annObject
	delete map[string]bool
	forget map[string]bool
}

func newAnnOps() *annOps {
	return &annOps{apply: annObject{}, delete: map[string]bool{}, forget: map[string]bool{}}
}

// empty reports whether there is nothing to hand over.
func (o *annOps) empty() bool {
	return len(o.apply) == 0 && len(o.delete) == 0 && len(o.forget) == 0
}

// update records what this node now wants for one key and adds the
// differences to ops. l2Elsewhere tells that another node owns the key in
// L2 mode now: the L2 objects this node stops wanting are then the new
// owner's to overwrite, and cost this node no write.
func (t *annTracker) update(key string, want annObject, l2Elsewhere bool, ops *annOps) {
	old := t.byKey[key]
	for name, st := range want {
		t.keyOf[name] = key
		if o, ok := old[name]; !ok || !sameAnnouncement(o, st) {
			ops.apply[name] = st
		}
	}
	for name, st := range old {
		if _, ok := want[name]; ok {
			continue
		}
		if t.keyOf[name] != key {
			continue // another key wants it now (its Service moved)
		}
		delete(t.keyOf, name)
		if st.Protocol == v1beta1.ProtocolL2 && l2Elsewhere {
			ops.forget[name] = true
		} else {
			ops.delete[name] = true
		}
	}
	if len(want) == 0 {
		delete(t.byKey, key)
	} else {
		t.byKey[key] = want
	}
}

// wanted reports whether some key wants the object.
func (t *annTracker) wanted(name string) bool {
	_, ok := t.keyOf[name]
	return ok
}

// resolve drops from the deletions and forgets what another key wants
// (a Service that moved between keys), so the last word is the write.
func (o *annOps) resolve() {
	for name := range o.apply {
		delete(o.delete, name)
		delete(o.forget, name)
	}
}

// sameAnnouncement compares two statuses, with nil and empty lists equal.
func sameAnnouncement(a, b v1beta1.ServiceAnnouncementStatus) bool {
	return a.Service == b.Service && a.Protocol == b.Protocol && a.Node == b.Node &&
		slices.Equal(a.IPs, b.IPs) && slices.Equal(a.Interfaces, b.Interfaces) && slices.Equal(a.Peers, b.Peers)
}

// flushAnnouncements works out the ServiceAnnouncements of the group keys
// looked at since the last pass and posts the differences to the writer.
// It runs on the loop and never waits for the API.
func (s *Speaker) flushAnnouncements() {
	ops := newAnnOps()
	reporter := s.st.Settled() && s.st.Reporter() == s.self
	var purge []string
	for key := range s.annKeys {
		want := annObject{}
		members := s.st.Members(key)
		if ips, ifaces, ok := s.st.Announcing(key); ok {
			wantL2(s.self, members, s.st.Info, ips, ifaces, want)
		}
		if m := s.bgp; m != nil {
			wantBGP(s.self, members, s.st.Info, m.keyAds[key], m.plan.Peers, want)
		}
		owner, owned := s.st.Owner(key)
		s.annT.update(key, want, owned && owner != s.self, ops)
		if reporter && !owned {
			// No node owns the key: an L2 object that a node that is gone
			// left is the reporter's to delete.
			for _, m := range members {
				ns, name, _ := strings.Cut(m, "/")
				obj := ns + "/" + AnnouncementName(name, v1beta1.ProtocolL2, "")
				if cur, ok := s.ann.cached(obj); ok && cur.Status.Node != s.self && !s.isAlive(cur.Status.Node) {
					purge = append(purge, obj)
				}
			}
		}
	}
	clear(s.annKeys)
	if reporter {
		// The objects of a node that left: its BGP routes are withdrawn
		// (or its BGP sessions dead), and no one else writes them; its L2
		// objects of Services that are gone (deleted while it was dying)
		// no key owns any more, so no new owner overwrites them.
		for _, node := range s.annLeft {
			purge = append(purge, s.goneObjects(node)...)
		}
	}
	s.annLeft = s.annLeft[:0]
	if !s.annSwept && s.st.Settled() && s.ann.synced() {
		// Once: the objects an earlier run of this node left that it no
		// longer wants, and (on the reporter) those of nodes not alive.
		s.annSwept = true
		for _, a := range s.ann.byNode(s.self) {
			if name := a.Namespace + "/" + a.Name; !s.annT.wanted(name) {
				ops.delete[name] = true
			}
		}
		if reporter {
			for _, node := range s.ann.nodes() {
				if !s.isAlive(node) {
					purge = append(purge, s.goneObjects(node)...)
				}
			}
		}
	}
	ops.resolve()
	if !ops.empty() {
		s.ann.post(ops)
	}
	if len(purge) > 0 {
		s.ann.purge(purge)
	}
}

// isAlive reports whether a node is a live member.
func (s *Speaker) isAlive(node string) bool {
	_, ok := s.alive[node]
	return ok
}

// goneObjects returns the cached objects of a node that is not alive that
// nobody else will write: its BGP objects, and its L2 objects of Services
// that have nothing to announce any more (deleted, or without an address).
// Its L2 objects of Services that still have one are the new owner's to
// overwrite, or the reporter's to delete when no node owns their key.
func (s *Speaker) goneObjects(node string) []string {
	if node == s.self || s.isAlive(node) {
		return nil
	}
	var out []string
	for _, a := range s.ann.byNode(node) {
		if a.Status.Protocol == v1beta1.ProtocolBGP || s.st.Info(a.Namespace+"/"+a.Status.Service) == nil {
			out = append(out, a.Namespace+"/"+a.Name)
		}
	}
	return out
}
