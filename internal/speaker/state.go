package speaker

import (
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/election"
)

// State is what one speaker knows and decides in layer 2 mode, without any
// I/O: the Services' election input grouped by shared IPs, the
// configuration snapshot, the candidate nodes, and what this node answers
// for. The speaker's edges feed it (informers, memberlist) and apply the
// [Plan]s that [State.Reconcile] returns (the announcer, events). Every
// method takes the group keys whose owner or announcement may have changed
// in keys, for the next Reconcile. A State is not safe for concurrent use.
type State struct {
	self    string
	settled bool

	conf      *config.Config
	advs      *Advertisements
	prints    map[string]string // pool -> what layer 2 election reads of it
	bgpPrints map[string]string // pool -> what BGP advertisement planning reads of it

	table      *election.Table
	groups     *Groups
	infos      map[string]*ServiceInfo // service name -> info
	keyIPs     map[string][]netip.Addr // group key -> announceable IPs
	keyMembers map[string][]string     // group key -> service names
	announced  map[string]announcement // group key -> what this node answers
	// why holds, per group key with an IP that no node announces in layer 2
	// mode, the reason; reported holds what this node reported of it while
	// it is the reporter (see [State.Reporter]).
	why      map[string]election.Unannounced
	reported map[string]election.Reason
	seen     map[string]seenWhy // key -> reason and since when, on the reporter

	elections uint64
	counted   func() // called once per election, for a counter others read
}

// announcement is what this node answers for one group key.
type announcement struct {
	ips    []netip.Addr
	ifaces []string // nil: every interface
}

// NewState returns the state of the node named self. It announces nothing
// until [State.Settle]. counted, if not nil, is called once per election.
func NewState(self string, counted func()) *State {
	if counted == nil {
		counted = func() {}
	}
	return &State{
		self:       self,
		advs:       NewAdvertisements(nil),
		table:      election.NewTable(),
		groups:     NewGroups(),
		infos:      make(map[string]*ServiceInfo),
		keyIPs:     make(map[string][]netip.Addr),
		keyMembers: make(map[string][]string),
		announced:  make(map[string]announcement),
		why:        make(map[string]election.Unannounced),
		reported:   make(map[string]election.Reason),
		seen:       make(map[string]seenWhy),
		counted:    counted,
	}
}

// Services returns the names of the Services known with their info.
func (st *State) Services() iter.Seq[string] { return maps.Keys(st.infos) }

// L2Covers reports whether an L2Advertisement covers an IP of the Service:
// layer 2 then announces it, or says why no node does.
func (st *State) L2Covers(name string) bool {
	key, ok := st.groups.KeyOf(name)
	return ok && len(st.keyIPs[key]) > 0
}

// LiveNodes returns the candidate nodes (alive, with a Node object), sorted.
func (st *State) LiveNodes() []string { return st.table.Nodes() }

// Config returns the configuration snapshot in use, nil before the first.
func (st *State) Config() *config.Config { return st.conf }

// Info returns the election input of a Service, nil when it has none.
func (st *State) Info(name string) *ServiceInfo { return st.infos[name] }

// Members returns the Services of a group key.
func (st *State) Members(key string) []string { return st.keyMembers[key] }

// GroupKeys returns every group key, in no particular order.
func (st *State) GroupKeys() iter.Seq[string] { return maps.Keys(st.keyMembers) }

// HasKey reports whether a group key exists.
func (st *State) HasKey(key string) bool {
	_, ok := st.keyMembers[key]
	return ok
}

// Owner returns the node elected for a group key.
func (st *State) Owner(key string) (string, bool) { return st.table.Owner(key) }

// Node returns the candidate of that name.
func (st *State) Node(name string) (election.Node, bool) { return st.table.Node(name) }

// Settled reports whether [State.Settle] was called.
func (st *State) Settled() bool { return st.settled }

// Elections returns how many group keys were (re)elected.
func (st *State) Elections() uint64 { return st.elections }

// Settle ends the settling period: from now on this node announces what it
// owns. Every group key is reconsidered.
func (st *State) Settle(keys map[string]bool) {
	st.settled = true
	for k := range st.keyIPs {
		keys[k] = true
	}
}

// SetConfig takes a new configuration snapshot and re-elects only the
// group keys it touches: those with an IP whose pool changed in what
// layer 2 election reads of it (its ranges and the L2Advertisements that
// name it), or that moved to another pool. A snapshot that changes only
// BGP settings, pool counts or unrelated pools elects nothing. bgpKeys,
// if not nil, gets the group keys whose BGP advertisements must be planned
// again by the same rule, for what BGP planning reads of a pool (its
// ranges and the BGPAdvertisements that name it).
func (st *State) SetConfig(cfg *config.Config, keys, bgpKeys map[string]bool) {
	prints, bprints := l2Prints(cfg), bgpPrints(cfg)
	changed, bchanged := changedPools(st.prints, prints), changedPools(st.bgpPrints, bprints)
	old := st.conf
	st.conf, st.advs, st.prints, st.bgpPrints = cfg, NewAdvertisements(cfg), prints, bprints
	if len(changed) == 0 && len(bchanged) == 0 && old != nil {
		return
	}
	for key, members := range st.keyMembers {
		if old == nil || st.touches(old, members, changed) {
			st.elect(key, keys)
		}
		if bgpKeys != nil && (old == nil || st.touches(old, members, bchanged)) {
			bgpKeys[key] = true
		}
	}
}

// changedPools returns the pools whose print differs between two sets,
// added and removed ones included.
func changedPools(old, now map[string]string) map[string]bool {
	changed := make(map[string]bool)
	for name, p := range now {
		if o, ok := old[name]; !ok || o != p {
			changed[name] = true
		}
	}
	for name := range old {
		if _, ok := now[name]; !ok {
			changed[name] = true
		}
	}
	return changed
}

// touches reports whether one of the members has an IP whose pool is in
// changed, before or after, or that moved between pools.
func (st *State) touches(old *config.Config, members []string, changed map[string]bool) bool {
	for _, m := range members {
		info := st.infos[m]
		if info == nil {
			continue
		}
		for _, ip := range info.IPs {
			was, now := poolName(old, ip), poolName(st.conf, ip)
			if was != now || changed[was] || changed[now] {
				return true
			}
		}
	}
	return false
}

func poolName(cfg *config.Config, ip netip.Addr) string {
	if cfg == nil {
		return ""
	}
	if p := cfg.PoolOf(ip); p != nil {
		return p.Name
	}
	return ""
}

// l2Prints returns, per pool, a string that changes when what layer 2
// election reads of the pool changes: its ranges, the L2Advertisements
// that name it, and whether a BGPAdvertisement names it (a key no node
// announces in layer 2 is then BGP's, not unannounced).
func l2Prints(cfg *config.Config) map[string]string {
	return poolPrints(cfg, func(b *strings.Builder, pool string) {
		for _, l2 := range cfg.L2Advertisements {
			if !slices.Contains(l2.Pools, pool) {
				continue
			}
			b.WriteString("|" + l2.Name + ";" + strings.Join(l2.Interfaces, ",") + ";")
			writeSelectors(b, l2.NodeSelectors)
			writeSelectors(b, l2.ServiceSelectors)
			writeSelectors(b, l2.PreferredNodeSelectors)
		}
		for _, ad := range cfg.BGPAdvertisements {
			if slices.Contains(ad.Pools, pool) {
				b.WriteString("|bgp")
				break
			}
		}
	})
}

// bgpPrints returns, per pool, a string that changes when what BGP
// advertisement planning reads of the pool changes: its ranges and the
// BGPAdvertisements that name it, in order.
func bgpPrints(cfg *config.Config) map[string]string {
	return poolPrints(cfg, func(b *strings.Builder, pool string) {
		for _, ad := range cfg.BGPAdvertisements {
			if !slices.Contains(ad.Pools, pool) {
				continue
			}
			fmt.Fprintf(b, "|%s;%d;%d;%t;%d;%v;%s;", ad.Name, ad.AggregationLength, ad.AggregationLengthV6,
				ad.HasLocalPref, ad.LocalPref, ad.Communities, strings.Join(ad.Peers, ","))
			writeSelectors(b, ad.NodeSelectors)
			writeSelectors(b, ad.ServiceSelectors)
		}
	})
}

// poolPrints returns, per pool, its ranges followed by what more writes
// of it.
func poolPrints(cfg *config.Config, more func(b *strings.Builder, pool string)) map[string]string {
	prints := make(map[string]string)
	if cfg == nil {
		return prints
	}
	var b strings.Builder
	for _, p := range cfg.Pools {
		b.Reset()
		for _, r := range p.V4 {
			b.WriteString(r.String() + ",")
		}
		for _, r := range p.V6 {
			b.WriteString(r.String() + ",")
		}
		more(&b, p.Name)
		prints[p.Name] = b.String()
	}
	return prints
}

func writeSelectors(b *strings.Builder, sels []labels.Selector) {
	for _, s := range sels {
		b.WriteString(s.String() + ";")
	}
	b.WriteString(";")
}

// SetService gives a Service its election input (nil: the Service is gone
// or has nothing to announce) and re-elects the groups it was and is in.
func (st *State) SetService(name string, info *ServiceInfo, keys map[string]bool) {
	var ips []netip.Addr
	delete(st.infos, name)
	if info != nil {
		st.infos[name] = info
		ips = info.IPs
	}
	touched, gone := st.groups.Set(name, ips)
	for _, key := range gone {
		delete(st.keyMembers, key)
		delete(st.keyIPs, key)
		for _, c := range st.table.RemoveService(key) {
			keys[c.Key] = true
		}
		keys[key] = true
	}
	for _, g := range touched {
		st.keyMembers[g.Key] = g.Members
		st.elect(g.Key, keys)
	}
}

// SetNode makes a node a candidate (cand not nil) or removes it (nil).
func (st *State) SetNode(name string, cand *election.Node, keys map[string]bool) {
	var changes []election.Change
	if cand == nil {
		if _, ok := st.table.Node(name); ok {
			changes = st.table.RemoveNode(name)
		}
	} else {
		if old, ok := st.table.Node(name); ok && sameNode(old, *cand) {
			return
		}
		changes = st.table.SetNode(*cand)
	}
	for _, c := range changes {
		keys[c.Key] = true
	}
	// A node's change may change why a key has no owner, or who reports it.
	for k := range st.why {
		keys[k] = true
	}
}

// elect rebuilds the election input of one group and re-elects it.
func (st *State) elect(key string, keys map[string]bool) {
	members := make([]*ServiceInfo, 0, len(st.keyMembers[key]))
	for _, m := range st.keyMembers[key] {
		if info := st.infos[m]; info != nil {
			members = append(members, info)
		}
	}
	st.elections++
	st.counted()
	svc, ips := st.advs.Elect(key, members)
	st.keyIPs[key] = ips
	st.table.SetService(svc)
	// The IPs or interfaces may change without the owner changing.
	keys[key] = true
}

// Plan is what the edges do to make the node answer for what it owns:
// withdrawals first, so that an IP moving between keys ends up announced.
type Plan struct {
	// Withdraw are the IPs to stop answering for.
	Withdraw []netip.Addr
	// Announce are the IPs to answer for, on new or changed interfaces.
	Announce []Announce
	// Stopped are the keys this node no longer announces.
	Stopped []Stopped
}

// ReportDelay is how long a key must have had no owner, for the same
// reason and with this node as the reporter, before [State.Report]
// reports it: a speaker that starts or a node that joins sees a partial
// membership for a moment, in which it would report what another node
// announces.
const ReportDelay = 5 * time.Second

type seenWhy struct {
	reason election.Reason
	since  time.Time
}

// Unannounced is a group key that no node announces, and why.
type Unannounced struct {
	Key string
	IPs []netip.Addr
	Why election.Unannounced
}

// Announce is one IP to answer for.
type Announce struct {
	Key string
	IP  netip.Addr
	// Interfaces limit where; nil is every usable interface.
	Interfaces []string
	// New is true when the IP was not announced before (only its
	// interfaces changed otherwise).
	New bool
}

// Stopped is a group key this node stopped announcing.
type Stopped struct {
	Key string
	IPs []netip.Addr
	// Next is the key's new owner, empty when no node is eligible.
	Next string
}

// Empty reports whether the plan does nothing.
func (p Plan) Empty() bool {
	return len(p.Withdraw) == 0 && len(p.Announce) == 0 && len(p.Stopped) == 0
}

// Reconcile returns what to change so that this node answers for exactly
// the IPs of the given keys that it owns, and records it as done.
func (st *State) Reconcile(keys map[string]bool) Plan {
	var plan Plan
	if len(keys) == 0 {
		return plan
	}
	self, selfOK := st.table.Node(st.self)
	type step struct {
		key        string
		want, have announcement
		owned      bool
	}
	steps := make([]step, 0, len(keys))
	for key := range keys {
		s := step{key: key, have: st.announced[key]}
		if owner, ok := st.table.Owner(key); ok && owner == st.self && selfOK && st.settled && len(st.keyIPs[key]) > 0 {
			svc, _ := st.table.Service(key)
			names, all := svc.Interfaces(&self)
			if !all {
				if names == nil {
					names = []string{}
				}
				s.want.ifaces = names
			}
			s.want.ips = st.keyIPs[key]
			s.owned = true
		}
		steps = append(steps, s)
	}
	slices.SortFunc(steps, func(a, b step) int { return strings.Compare(a.key, b.key) })
	for _, s := range steps {
		for _, ip := range s.have.ips {
			if !slices.Contains(s.want.ips, ip) {
				plan.Withdraw = append(plan.Withdraw, ip)
			}
		}
	}
	for _, s := range steps {
		sameIfaces := slices.Equal(s.have.ifaces, s.want.ifaces) && (s.have.ifaces == nil) == (s.want.ifaces == nil)
		for _, ip := range s.want.ips {
			had := slices.Contains(s.have.ips, ip)
			if had && sameIfaces {
				continue
			}
			plan.Announce = append(plan.Announce, Announce{Key: s.key, IP: ip, Interfaces: s.want.ifaces, New: !had})
		}
		if s.owned {
			st.announced[s.key] = s.want
			continue
		}
		delete(st.announced, s.key)
		if len(s.have.ips) > 0 {
			next, _ := st.table.Owner(s.key)
			plan.Stopped = append(plan.Stopped, Stopped{Key: s.key, IPs: s.have.ips, Next: next})
		}
	}
	for _, s := range steps {
		st.updateWhy(s.key)
	}
	return plan
}

// updateWhy records why a key has no owner, or forgets it. A key whose IPs
// no L2Advertisement covers but a BGPAdvertisement's pool holds is BGP's.
func (st *State) updateWhy(key string) {
	delete(st.why, key)
	u, ok := st.table.Why(key)
	if !ok || !st.HasKey(key) {
		return
	}
	ips := st.keyIPs[key]
	if len(ips) == 0 {
		ips = st.memberIPs(key)
		if len(ips) == 0 || st.bgpCovers(ips) {
			return
		}
	}
	st.why[key] = u
}

// memberIPs returns every IP of a group's Services, sorted.
func (st *State) memberIPs(key string) []netip.Addr {
	var ips []netip.Addr
	for _, m := range st.keyMembers[key] {
		if info := st.infos[m]; info != nil {
			ips = append(ips, info.IPs...)
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return slices.Compact(ips)
}

// bgpCovers reports whether a BGPAdvertisement names the pool of one of ips.
func (st *State) bgpCovers(ips []netip.Addr) bool {
	if st.conf == nil {
		return false
	}
	for _, ip := range ips {
		p := st.conf.PoolOf(ip)
		if p == nil {
			continue
		}
		for _, b := range st.conf.BGPAdvertisements {
			if slices.Contains(b.Pools, p.Name) {
				return true
			}
		}
	}
	return false
}

// Reporter returns the node that reports the keys no node announces: the
// live candidate with the lowest name, the same on every speaker that has
// the same view; "" when there is none.
func (st *State) Reporter() string {
	nodes := st.table.Nodes()
	if len(nodes) == 0 {
		return ""
	}
	return nodes[0]
}

// Report returns, when this node is the reporter, the keys that no node
// announces and that it has not reported with their current reason, once
// that reason has held for [ReportDelay] up to now; each is reported once.
// The edges call it after each reconcile and every few seconds.
func (st *State) Report(now time.Time) []Unannounced {
	if !st.settled || st.Reporter() != st.self {
		clear(st.reported)
		clear(st.seen)
		return nil
	}
	for key := range st.seen {
		if _, ok := st.why[key]; !ok {
			delete(st.seen, key)
			delete(st.reported, key)
		}
	}
	var out []Unannounced
	for key, u := range st.why {
		if sw, ok := st.seen[key]; !ok || sw.reason != u.Reason {
			st.seen[key] = seenWhy{reason: u.Reason, since: now}
		}
		if st.reported[key] == u.Reason || now.Sub(st.seen[key].since) < ReportDelay {
			continue
		}
		st.reported[key] = u.Reason
		ips := st.keyIPs[key]
		if len(ips) == 0 {
			ips = st.memberIPs(key)
		}
		out = append(out, Unannounced{Key: key, IPs: ips, Why: u})
	}
	slices.SortFunc(out, func(a, b Unannounced) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// UnannouncedIPs counts, per reason, the IPs that no node announces in
// layer 2 mode. Only the reporter counts them, so that a sum over the
// speakers counts each IP once; others return nil.
func (st *State) UnannouncedIPs() map[election.Reason]int {
	if !st.settled || st.Reporter() != st.self {
		return nil
	}
	n := make(map[election.Reason]int)
	for key, u := range st.why {
		ips := st.keyIPs[key]
		if len(ips) == 0 {
			ips = st.memberIPs(key)
		}
		n[u.Reason] += len(ips)
	}
	return n
}

// Announced returns the IPs this node answers for, sorted.
func (st *State) Announced() []netip.Addr {
	var ips []netip.Addr
	for _, a := range st.announced {
		ips = append(ips, a.ips...)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return ips
}

// Announcing returns the IPs and interfaces (nil: every usable interface)
// this node answers for in a group key; ok is false when it answers for
// none of them.
func (st *State) Announcing(key string) (ips []netip.Addr, ifaces []string, ok bool) {
	a, ok := st.announced[key]
	if !ok || len(a.ips) == 0 {
		return nil, nil, false
	}
	return a.ips, a.ifaces, true
}
