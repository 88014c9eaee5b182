package allocator

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"go4.org/netipx"

	"github.com/heraldlb/herald/internal/config"
)

// Allocator holds the pools and every address in use, and decides which
// addresses Services get. Create one with New; it is safe for concurrent
// use.
//
// At start-up, SetConfig the pools, then Assign every Service's existing
// addresses (from its status) before the first Allocate, so that no address
// is ever handed out twice.
type Allocator struct {
	mu sync.Mutex
	// pools by name; order lists the auto-assign ones in allocation order
	// (selecting pools by priority then name, then the others by name).
	pools map[string]*poolState
	order []*poolState
	// index holds every pool range per family, sorted, for poolFor.
	index [2][]rangeRef
	// ips holds every address in use; services every Service holding one.
	ips      map[netip.Addr]*ipState
	services map[string]*service
	// shared lists, per sharing key, the addresses used with it, sorted.
	shared map[string][]netip.Addr
	// outOfPool holds the addresses in use that are in no pool.
	outOfPool map[netip.Addr]struct{}
	// pins holds, per Service, the addresses its status shows in the API
	// (see Pin). A pin is a holder of its addresses, so they are never
	// handed out to another Service while the API still shows them.
	pins map[string]*pin
}

// pin is what the API shows one Service holding, as of resource version rv.
type pin struct {
	svc *service
	rv  uint64
}

type rangeRef struct {
	r netipx.IPRange
	p *poolState
}

// ipState is one address in use.
type ipState struct {
	// pool is the pool the address is in, nil when in none. lastPool names
	// the last pool it was in (for an address restored in no pool, the pool
	// its Service asked for) so that the Service is not moved, and the
	// pool's status can say it lost an address still in use.
	pool     *poolState
	lastPool string
	// fs is the family of pool that counts the address.
	fs *familyState
	// sharingKey is its users' sharing key ("" for a sole user).
	sharingKey string
	// holders are its users, sorted by key.
	holders []*service
}

// service is one Service holding addresses.
type service struct {
	key        string
	sharingKey string
	backendKey string
	ports      []Port
	ips        []netip.Addr
	// pinned marks the record of a pin, not of an allocation.
	pinned bool
}

// Allocation is what a Service holds.
type Allocation struct {
	// IPs are the Service's addresses, primary family first.
	IPs []netip.Addr
	// Pools[i] names the pool that IPs[i] is in, or is "" when IPs[i] has
	// left every pool (it stays assigned; say so in the Service's status).
	Pools []string
}

// OutOfPool reports whether one of the addresses is in no pool.
func (a Allocation) OutOfPool() bool { return slices.Contains(a.Pools, "") }

// New returns an Allocator with no pools.
func New() *Allocator {
	return &Allocator{
		pools:     map[string]*poolState{},
		ips:       map[netip.Addr]*ipState{},
		services:  map[string]*service{},
		shared:    map[string][]netip.Addr{},
		outOfPool: map[netip.Addr]struct{}{},
		pins:      map[string]*pin{},
	}
}

// ConfigReport says what a SetConfig changed for the Services.
type ConfigReport struct {
	// OutOfPool lists the Services (keys, sorted) that hold an address that
	// is now in no pool. They keep it; their status should say so.
	OutOfPool []string
	// Changed lists the Services (keys, sorted) that hold an address whose
	// pool changed (to another pool, or to none, or from none to a pool):
	// their herald.io/ip-allocated-from-pool annotation needs updating.
	Changed []string
}

// SetConfig replaces the pools. Every address in use stays with its
// Service, even one that is now in no pool or in a pool that no longer
// selects the Service. Pools must have unique names and must not overlap
// (config guarantees both); a repeated name keeps its first pool.
//
// The cost is O(a log n) for the a addresses in pools whose ranges changed,
// plus one pass over the addresses in use when any pool's ranges changed.
func (al *Allocator) SetConfig(pools []*config.Pool) ConfigReport {
	al.mu.Lock()
	defer al.mu.Unlock()

	sorted := slices.Clone(pools)
	sorted = slices.DeleteFunc(sorted, func(p *config.Pool) bool { return p == nil })
	slices.SortStableFunc(sorted, func(a, b *config.Pool) int { return cmp.Compare(a.Name, b.Name) })
	sorted = slices.CompactFunc(sorted, func(a, b *config.Pool) bool { return a.Name == b.Name })

	// rebuilt: a family that held addresses was replaced or removed, so
	// every address must be looked up again; added: new ranges appeared,
	// which only addresses in no pool can be in (pools never overlap).
	var rebuilt, added bool
	next := make(map[string]*poolState, len(sorted))
	for _, cfg := range sorted {
		ps := al.pools[cfg.Name]
		if ps == nil {
			ps = &poolState{}
		}
		for i, ranges := range [2][]netipx.IPRange{cfg.V4, cfg.V6} {
			old := ps.fam[i]
			if old != nil && slices.Equal(old.ranges, ranges) && old.avoid == (cfg.AvoidBuggyIPs && i == 0) {
				continue
			}
			if old == nil && len(ranges) == 0 {
				continue
			}
			ps.fam[i] = newFamilyState(ranges, cfg.AvoidBuggyIPs)
			rebuilt = rebuilt || old != nil
			added = added || ps.fam[i] != nil
		}
		ps.cfg = cfg
		next[cfg.Name] = ps
	}
	for name := range al.pools {
		if next[name] == nil {
			rebuilt = true
		}
	}
	al.pools = next

	al.order = al.order[:0]
	for _, ps := range next {
		if ps.cfg.AutoAssign {
			al.order = append(al.order, ps)
		}
	}
	slices.SortFunc(al.order, comparePools)

	for i := range al.index {
		al.index[i] = al.index[i][:0]
	}
	for _, ps := range next {
		for i, fs := range ps.fam {
			if fs == nil {
				continue
			}
			for _, r := range fs.ranges {
				al.index[i] = append(al.index[i], rangeRef{netipx.IPRangeFrom(r.From().Unmap(), r.To().Unmap()), ps})
			}
		}
	}
	for i := range al.index {
		slices.SortFunc(al.index[i], func(a, b rangeRef) int { return a.r.From().Compare(b.r.From()) })
	}

	changed := map[string]bool{}
	relocate := func(ip netip.Addr, st *ipState) {
		f := config.FamilyOf(ip)
		if st.pool != nil && al.pools[st.pool.cfg.Name] == st.pool && st.pool.family(f) == st.fs {
			return // its pool's family is as it was
		}
		before := ""
		if st.pool != nil {
			before = st.pool.cfg.Name
		}
		al.place(ip, st)
		after := ""
		if st.pool != nil {
			after = st.pool.cfg.Name
		}
		if before != after {
			for _, h := range st.holders {
				changed[h.key] = true
			}
		}
	}
	switch {
	case rebuilt:
		for ip, st := range al.ips {
			relocate(ip, st)
		}
	case added:
		for ip := range al.outOfPool {
			relocate(ip, al.ips[ip])
		}
	}

	var rep ConfigReport
	for k := range changed {
		rep.Changed = append(rep.Changed, k)
	}
	slices.Sort(rep.Changed)
	rep.OutOfPool = al.outOfPoolKeys()
	return rep
}

// place puts the address ip (in use as st) in the pool that now contains
// it, or records that it is in none.
func (al *Allocator) place(ip netip.Addr, st *ipState) {
	st.pool, st.fs = al.poolFor(ip), nil
	if st.pool == nil {
		al.outOfPool[ip] = struct{}{}
		return
	}
	delete(al.outOfPool, ip)
	st.lastPool = st.pool.cfg.Name
	st.fs = st.pool.family(config.FamilyOf(ip))
	st.fs.hold(ip)
}

// comparePools orders pools for automatic allocation: those with selectors
// or a priority first (priority set before unset, lower first), then the
// rest; names break ties.
func comparePools(a, b *poolState) int {
	ga, gb := a.cfg.HasSelectors() || a.cfg.HasPriority, b.cfg.HasSelectors() || b.cfg.HasPriority
	if ga != gb {
		if ga {
			return -1
		}
		return 1
	}
	if a.cfg.HasPriority != b.cfg.HasPriority {
		if a.cfg.HasPriority {
			return -1
		}
		return 1
	}
	if a.cfg.HasPriority {
		if c := cmp.Compare(a.cfg.Priority, b.cfg.Priority); c != 0 {
			return c
		}
	}
	return cmp.Compare(a.cfg.Name, b.cfg.Name)
}

// poolFor returns the pool that contains ip, or nil.
func (al *Allocator) poolFor(ip netip.Addr) *poolState {
	idx := al.index[famIndex(config.FamilyOf(ip))]
	i := sort.Search(len(idx), func(i int) bool { return ip.Less(idx[i].r.From()) })
	if i == 0 || idx[i-1].r.To().Less(ip) {
		return nil
	}
	return idx[i-1].p
}

// Release frees everything the Service key holds. An address is free again
// when its last user leaves. It reports whether the Service held anything.
func (al *Allocator) Release(key string) bool {
	al.mu.Lock()
	defer al.mu.Unlock()
	return al.detach(key) != nil
}

// held is what a detached Service held: its record and, per address, the
// pool the address was last in.
type held struct {
	svc      *service
	lastPool []string
}

// heldPool returns the pool name that old held ip from, and whether it held
// ip at all.
func (h *held) heldPool(ip netip.Addr) (string, bool) {
	if h == nil {
		return "", false
	}
	if i := slices.Index(h.svc.ips, ip); i >= 0 {
		return h.lastPool[i], true
	}
	return "", false
}

// detach removes the Service from its addresses, freeing those it was the
// last user of, and returns what it held (nil if nothing).
func (al *Allocator) detach(key string) *held {
	svc := al.services[key]
	if svc == nil {
		return nil
	}
	delete(al.services, key)
	return &held{svc: svc, lastPool: al.detachIPs(svc)}
}

// detachIPs removes svc from the holders of its addresses, freeing those
// it was the last holder of, and returns the pool each was last in.
func (al *Allocator) detachIPs(svc *service) []string {
	lastPool := make([]string, len(svc.ips))
	for i, ip := range svc.ips {
		st := al.ips[ip]
		lastPool[i] = st.lastPool
		st.holders = slices.DeleteFunc(st.holders, func(s *service) bool { return s == svc })
		if len(st.holders) > 0 {
			continue
		}
		delete(al.ips, ip)
		if st.fs != nil {
			st.fs.free(ip)
		} else {
			delete(al.outOfPool, ip)
		}
		if st.sharingKey != "" {
			s := al.shared[st.sharingKey]
			if i, ok := slices.BinarySearchFunc(s, ip, netip.Addr.Compare); ok {
				s = slices.Delete(s, i, i+1)
			}
			if len(s) == 0 {
				delete(al.shared, st.sharingKey)
			} else {
				al.shared[st.sharingKey] = s
			}
		}
	}
	return lastPool
}

// attach records svc as the user of its addresses; lastPool[i] names the
// pool to remember for svc.ips[i] if it is in none.
func (al *Allocator) attach(svc *service, lastPool []string) {
	al.services[svc.key] = svc
	al.attachIPs(svc, lastPool)
}

// attachIPs adds svc to the holders of its addresses.
func (al *Allocator) attachIPs(svc *service, lastPool []string) {
	for i, ip := range svc.ips {
		st := al.ips[ip]
		if st == nil {
			st = &ipState{lastPool: lastPool[i], sharingKey: svc.sharingKey}
			al.ips[ip] = st
			al.place(ip, st)
			if st.sharingKey != "" {
				s := al.shared[st.sharingKey]
				j, _ := slices.BinarySearchFunc(s, ip, netip.Addr.Compare)
				al.shared[st.sharingKey] = slices.Insert(s, j, ip)
			}
		}
		j, _ := slices.BinarySearchFunc(st.holders, svc.key, func(s *service, k string) int { return cmp.Compare(s.key, k) })
		st.holders = slices.Insert(st.holders, j, svc)
	}
}

// reattach undoes a detach.
func (al *Allocator) reattach(h *held) {
	if h != nil {
		al.attach(h.svc, h.lastPool)
	}
}

// canShare returns why q cannot get ip (in use as st) as a new address,
// or nil. Pins count: an address that another Service still shows in the
// API is never given out to a Service that may not share it.
func canShare(ip netip.Addr, st *ipState, q *request) error {
	return checkShare(ip, st, q, true)
}

// canKeep returns why q cannot keep ip, which it holds already, or nil.
// Pins do not count: when two Services show one address in the API, the
// one the allocator holds it for keeps it and the other moves.
func canKeep(ip netip.Addr, st *ipState, q *request) error {
	return checkShare(ip, st, q, false)
}

// sameKeyOtherScope reports whether two scoped sharing keys hold the same
// key in different scopes (namespaces, or across namespaces).
func sameKeyOtherScope(a, b string) bool {
	_, ka, _ := strings.Cut(a, "/")
	_, kb, _ := strings.Cut(b, "/")
	return ka == kb
}

func checkShare(ip netip.Addr, st *ipState, q *request, pins bool) error {
	for _, h := range st.holders {
		switch {
		case h.key == q.Key || h.pinned && !pins:
			continue
		case h.sharingKey == "":
			return errorf(ErrConflict, "IP %s is used by %s, which does not share it (it has no herald.io/allow-shared-ip key)", ip, h.key)
		case q.sharing == "":
			return errorf(ErrConflict, "IP %s is used by %s; to share it, give this Service the same herald.io/allow-shared-ip key", ip, h.key)
		case h.sharingKey != q.sharing && sameKeyOtherScope(h.sharingKey, q.sharing):
			return errorf(ErrConflict, "IP %s is used by %s, in another namespace or without the same cross-namespace opt-in; "+
				"Services of different namespaces share an IP only when both set herald.io/allow-shared-ip-across-namespaces: \"true\"", ip, h.key)
		case h.sharingKey != q.sharing:
			return errorf(ErrConflict, "IP %s is used by %s with a different sharing key", ip, h.key)
		case h.backendKey != q.BackendKey:
			return errorf(ErrConflict, "IP %s is used by %s, which selects different endpoints; Services that share an IP under externalTrafficPolicy: Local must select the same pods", ip, h.key)
		}
		if p, ok := commonPort(h.ports, q.ports); ok {
			return errorf(ErrConflict, "IP %s is used by %s, which also uses port %s; Services that share an IP need distinct ports", ip, h.key, p)
		}
	}
	return nil
}

// Assign restores an allocation that already exists, typically from a
// Service's status when the controller starts, so that the address is never
// handed out again. It accepts addresses in no pool (they stay assigned and
// are reported as out of pool) and in pools that would not serve the
// Service now; it refuses at most one address per family, and an address
// that another Service holds unless their sharing rules allow it. Only the
// key and the sharing fields of r (SharingKey, BackendKey, Ports, and Pool
// for an address in no pool) are used. What the Service held before is
// replaced, or kept if Assign fails.
func (al *Allocator) Assign(r Request, ips []netip.Addr) (Allocation, error) {
	al.mu.Lock()
	defer al.mu.Unlock()

	q, err := newShareRequest(&r)
	if err != nil {
		return Allocation{}, err
	}
	if len(ips) == 0 {
		return Allocation{}, errorf(ErrInvalidRequest, "%s: no address to assign", r.Key)
	}
	svc := &service{key: r.Key, sharingKey: q.sharing, backendKey: r.BackendKey, ports: q.ports}
	for _, ip := range ips {
		if !ip.IsValid() {
			return Allocation{}, errorf(ErrInvalidRequest, "%s: an address to assign is empty or invalid", r.Key)
		}
		ip = ip.Unmap().WithZone("")
		for _, o := range svc.ips {
			if config.FamilyOf(o) == config.FamilyOf(ip) {
				return Allocation{}, errorf(ErrInvalidRequest, "%s: cannot assign two %s addresses (%s and %s); a Service gets at most one per family",
					r.Key, config.FamilyOf(ip), o, ip)
			}
		}
		svc.ips = append(svc.ips, ip)
	}
	old := al.detach(r.Key)
	lastPool := make([]string, len(svc.ips))
	for i, ip := range svc.ips {
		if st := al.ips[ip]; st != nil {
			if err := canKeep(ip, st, q); err != nil {
				al.reattach(old)
				return Allocation{}, err
			}
		}
		lastPool[i] = r.Pool
		if p, ok := old.heldPool(ip); ok {
			lastPool[i] = p
		}
	}
	al.attach(svc, lastPool)
	return al.allocation(svc), nil
}

// allocation describes what svc holds.
func (al *Allocator) allocation(svc *service) Allocation {
	a := Allocation{IPs: slices.Clone(svc.ips), Pools: make([]string, len(svc.ips))}
	for i, ip := range svc.ips {
		if p := al.ips[ip].pool; p != nil {
			a.Pools[i] = p.cfg.Name
		}
	}
	return a
}

// Allocate gives the Service what r asks for and returns it.
//
// It is idempotent: a Service that already holds addresses keeps every one
// that still fits r (right family, the requested IP or pool if any, sharing
// still allowed) — even if its pool no longer selects the Service or is
// gone — and gets new addresses only for what is missing. So calling it
// again with the same request returns the same addresses, and a changed
// request (another requested IP, pool or family) gives the new correct
// answer. On error nothing changes: the Service keeps what it held, and the
// caller decides whether to Release it.
func (al *Allocator) Allocate(r Request) (Allocation, error) {
	al.mu.Lock()
	defer al.mu.Unlock()

	q, err := newRequest(&r)
	if err != nil {
		return Allocation{}, err
	}
	old := al.detach(r.Key)
	ips, lastPool, err := al.plan(q, old)
	if err != nil {
		al.reattach(old)
		return Allocation{}, err
	}
	svc := &service{key: r.Key, sharingKey: q.sharing, backendKey: r.BackendKey, ports: q.ports, ips: ips}
	al.attach(svc, lastPool)
	return al.allocation(svc), nil
}

// poolName returns the name of the pool ip is in, or if none, the pool old
// held it from.
func (al *Allocator) poolName(ip netip.Addr, old *held) string {
	if p := al.poolFor(ip); p != nil {
		return p.cfg.Name
	}
	name, _ := old.heldPool(ip)
	return name
}

// plan chooses the addresses for q, with q's old holdings already detached.
func (al *Allocator) plan(q *request, old *held) ([]netip.Addr, []string, error) {
	lastPool := make([]string, 0, 2)
	if len(q.ips) > 0 {
		for _, ip := range q.ips {
			if err := al.checkRequested(ip, q, old); err != nil {
				return nil, nil, err
			}
			lastPool = append(lastPool, al.poolName(ip, old))
		}
		return q.ips, lastPool, nil
	}

	// Keep what still fits.
	var got [2]netip.Addr // by famIndex
	var keptPool *poolState
	if old != nil {
		for _, ip := range old.svc.ips {
			f := config.FamilyOf(ip)
			if !slices.Contains(q.want, f) {
				continue
			}
			if q.Pool != "" && al.poolName(ip, old) != q.Pool {
				continue
			}
			if st := al.ips[ip]; st != nil && canKeep(ip, st, q) != nil {
				continue
			}
			got[famIndex(f)] = ip
			if p := al.poolFor(ip); p != nil && keptPool == nil {
				keptPool = p
			}
		}
	}
	var missing []config.Family
	for _, f := range q.want {
		if !got[famIndex(f)].IsValid() {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		cands, err := al.candidates(q)
		if err != nil && (!got[0].IsValid() && !got[1].IsValid() || q.FamilyPolicy != PreferDualStack) {
			return nil, nil, err
		}
		if keptPool != nil && slices.Contains(cands, keptPool) {
			cands = append([]*poolState{keptPool}, slices.DeleteFunc(slices.Clone(cands), func(p *poolState) bool { return p == keptPool })...)
		}
		if len(missing) > 1 {
			// Both families from one pool when one pool can give both.
			for _, p := range cands {
				a, ok1 := al.pick(p, missing[0], q)
				b, ok2 := al.pick(p, missing[1], q)
				if ok1 && ok2 {
					got[famIndex(missing[0])], got[famIndex(missing[1])] = a, b
					missing = nil
					break
				}
			}
		}
		var firstErr error
		for _, f := range missing {
			found := false
			for _, p := range cands {
				if a, ok := al.pick(p, f, q); ok {
					got[famIndex(f)], found = a, true
					break
				}
			}
			if !found && firstErr == nil {
				firstErr = al.noFree(q, cands, f)
			}
		}
		if firstErr != nil && (q.FamilyPolicy != PreferDualStack || !got[0].IsValid() && !got[1].IsValid()) {
			return nil, nil, firstErr
		}
	}
	ips := make([]netip.Addr, 0, len(q.want))
	for _, f := range q.want {
		if ip := got[famIndex(f)]; ip.IsValid() {
			ips = append(ips, ip)
			lastPool = append(lastPool, al.poolName(ip, old))
		}
	}
	return ips, lastPool, nil
}

// checkRequested returns why q cannot have the requested ip, or nil.
func (al *Allocator) checkRequested(ip netip.Addr, q *request, old *held) error {
	st := al.ips[ip]
	if _, ok := old.heldPool(ip); ok {
		// Held already: keep it unless the request now contradicts it.
		if q.Pool != "" {
			if name := al.poolName(ip, old); name != q.Pool {
				return errorf(ErrInvalidRequest, "requested IP %s is in pool %q, not in the requested pool %q", ip, name, q.Pool)
			}
		}
		if st != nil {
			return canKeep(ip, st, q)
		}
		return nil
	}
	p := al.poolFor(ip)
	if p == nil {
		return errorf(ErrNoPool, "IP %s is not in any pool; request an address from an IPAddressPool, or add it to one", ip)
	}
	name := p.cfg.Name
	if q.Pool != "" && name != q.Pool {
		return errorf(ErrInvalidRequest, "requested IP %s is in pool %q, not in the requested pool %q", ip, name, q.Pool)
	}
	if !p.cfg.Selects(q.Namespace, q.NamespaceLabels, q.ServiceLabels) {
		return errorf(ErrNoPool, "IP %s is in pool %q, whose serviceAllocation does not select this Service (namespace %q and its labels)", ip, name, q.Namespace)
	}
	if st != nil {
		return canShare(ip, st, q)
	}
	if p.cfg.AvoidBuggyIPs && isBuggy(ip) {
		return errorf(ErrInvalidRequest, "IP %s ends in .0 or .255, which pool %q avoids (avoidBuggyIPs); request another address", ip, name)
	}
	return nil
}

// candidates returns the pools q may get new addresses from, in order.
func (al *Allocator) candidates(q *request) ([]*poolState, error) {
	if q.Pool != "" {
		p := al.pools[q.Pool]
		if p == nil {
			return nil, errorf(ErrNoPool, "pool %q does not exist; fix the herald.io/address-pool annotation or create the pool", q.Pool)
		}
		if !p.cfg.Selects(q.Namespace, q.NamespaceLabels, q.ServiceLabels) {
			return nil, errorf(ErrNoPool, "pool %q does not serve this Service: its serviceAllocation does not select namespace %q or the Service's labels", q.Pool, q.Namespace)
		}
		return []*poolState{p}, nil
	}
	var out []*poolState
	for _, p := range al.order {
		if p.cfg.Selects(q.Namespace, q.NamespaceLabels, q.ServiceLabels) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errorf(ErrNoPool, "no pool selects this Service: no auto-assign IPAddressPool serves namespace %q and the Service's labels; add one, or name a pool with herald.io/address-pool", q.Namespace)
	}
	return out, nil
}

// pick returns the address of family f that q would get from pool p: an
// address already used with q's sharing key that q may share, else the
// lowest free one.
func (al *Allocator) pick(p *poolState, f config.Family, q *request) (netip.Addr, bool) {
	if q.sharing != "" {
		for _, ip := range al.shared[q.sharing] {
			st := al.ips[ip]
			if st.pool == p && config.FamilyOf(ip) == f && canShare(ip, st, q) == nil {
				return ip, true
			}
		}
	}
	return p.family(f).lowestFree()
}

// noFree explains why no pool in cands gave q an address of family f.
func (al *Allocator) noFree(q *request, cands []*poolState, f config.Family) error {
	var with, without []string
	for _, p := range cands {
		if p.family(f) != nil {
			with = append(with, p.cfg.Name)
		} else {
			without = append(without, p.cfg.Name)
		}
	}
	switch {
	case q.Pool != "" && len(with) == 0:
		return errorf(ErrNoPool, "pool %q has no %s addresses", q.Pool, f)
	case q.Pool != "":
		return errorf(ErrExhausted, "pool %q has no free %s address", q.Pool, f)
	case len(with) == 0:
		return errorf(ErrNoPool, "none of the pools that serve this Service (%s) has %s addresses", quoteList(without), f)
	case len(with) == 1:
		return errorf(ErrExhausted, "pool %q has no free %s address", with[0], f)
	}
	return errorf(ErrExhausted, "no free %s address: pools %s are full", f, quoteList(with))
}

// Pin records that the API shows the Service r.Key holding ips in its
// status, as of resource version rv (0 when unknown). Until the Service is
// seen to release them (a later Pin without them, or Unpin), those addresses
// are in use: no other Service gets them unless r's sharing fields (Key,
// SharingKey, BackendKey, Ports) allow it, whatever the allocator itself
// holds. Pin with an rv older than the pin's is ignored, so a stale event
// never unpins. Addresses are pinned whether or not they are in a pool.
func (al *Allocator) Pin(r Request, rv uint64, ips []netip.Addr) {
	al.mu.Lock()
	defer al.mu.Unlock()
	old := al.pins[r.Key]
	if old != nil && rv != 0 && rv < old.rv {
		return
	}
	q, err := newShareRequest(&r)
	if err != nil {
		return
	}
	svc := &service{key: r.Key, sharingKey: q.sharing, backendKey: r.BackendKey, ports: q.ports, pinned: true}
	for _, ip := range ips {
		if ip.IsValid() {
			svc.ips = append(svc.ips, ip.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(svc.ips, netip.Addr.Compare)
	svc.ips = slices.Compact(svc.ips)
	if old != nil {
		if slices.Equal(old.svc.ips, svc.ips) && old.svc.sharingKey == svc.sharingKey && old.svc.backendKey == svc.backendKey &&
			slices.Equal(old.svc.ports, svc.ports) {
			old.rv = max(old.rv, rv)
			return
		}
		al.detachIPs(old.svc)
		delete(al.pins, r.Key)
	}
	if len(svc.ips) == 0 {
		return
	}
	lastPool := make([]string, len(svc.ips))
	for i := range lastPool {
		lastPool[i] = r.Pool
	}
	al.attachIPs(svc, lastPool)
	al.pins[r.Key] = &pin{svc: svc, rv: rv}
}

// Unpin forgets what the API showed the Service key holding: it was
// deleted.
func (al *Allocator) Unpin(key string) {
	al.mu.Lock()
	defer al.mu.Unlock()
	if p := al.pins[key]; p != nil {
		al.detachIPs(p.svc)
		delete(al.pins, key)
	}
}

// Pinned returns the addresses pinned for the Service key, sorted.
func (al *Allocator) Pinned(key string) []netip.Addr {
	al.mu.Lock()
	defer al.mu.Unlock()
	if p := al.pins[key]; p != nil {
		return slices.Clone(p.svc.ips)
	}
	return nil
}

// Get returns what the Service key holds.
func (al *Allocator) Get(key string) (Allocation, bool) {
	al.mu.Lock()
	defer al.mu.Unlock()
	svc := al.services[key]
	if svc == nil {
		return Allocation{}, false
	}
	return al.allocation(svc), true
}

// PoolOf returns the name of the pool that contains ip, whether in use or
// not.
func (al *Allocator) PoolOf(ip netip.Addr) (string, bool) {
	al.mu.Lock()
	defer al.mu.Unlock()
	if p := al.poolFor(ip.Unmap()); p != nil {
		return p.cfg.Name, true
	}
	return "", false
}

// Holders returns the keys of the Services that use ip, sorted.
func (al *Allocator) Holders(ip netip.Addr) []string {
	al.mu.Lock()
	defer al.mu.Unlock()
	st := al.ips[ip.Unmap()]
	if st == nil {
		return nil
	}
	keys := make([]string, len(st.holders))
	for i, h := range st.holders {
		keys[i] = h.key
	}
	return slices.Compact(keys)
}

// OutOfPool returns the keys of the Services that hold an address in no
// pool, sorted.
func (al *Allocator) OutOfPool() []string {
	al.mu.Lock()
	defer al.mu.Unlock()
	return al.outOfPoolKeys()
}

func (al *Allocator) outOfPoolKeys() []string {
	var keys []string
	for ip := range al.outOfPool {
		for _, h := range al.ips[ip].holders {
			keys = append(keys, h.key)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// FamilyStats counts one family of one pool.
type FamilyStats struct {
	// Total is the number of addresses in the pool's ranges.
	Total Count
	// Assigned is the number of them in use (a shared address counts once).
	Assigned Count
	// Available is the number that can still be handed out: Total minus
	// Assigned, minus the unused .0/.255 addresses under avoidBuggyIPs.
	Available Count
	// Stranded is the number of addresses still in use that were last in
	// this pool but are no longer in any pool.
	Stranded uint64
}

// PoolStats counts the addresses of one pool, per family.
type PoolStats struct {
	// Pool is the pool's name.
	Pool string
	// IPv4 and IPv6 count each family; all zero for a family the pool
	// does not have.
	IPv4, IPv6 FamilyStats
}

// Stats returns the counts of the named pool.
func (al *Allocator) Stats(pool string) (PoolStats, bool) {
	al.mu.Lock()
	defer al.mu.Unlock()
	p := al.pools[pool]
	if p == nil {
		return PoolStats{}, false
	}
	return al.stats(p), true
}

// AllStats returns the counts of every pool, sorted by name. It costs
// O(pools + addresses in no pool).
func (al *Allocator) AllStats() []PoolStats {
	al.mu.Lock()
	defer al.mu.Unlock()
	out := make([]PoolStats, 0, len(al.pools))
	for _, p := range al.pools {
		out = append(out, al.stats(p))
	}
	slices.SortFunc(out, func(a, b PoolStats) int { return cmp.Compare(a.Pool, b.Pool) })
	return out
}

func (al *Allocator) stats(p *poolState) PoolStats {
	s := PoolStats{Pool: p.cfg.Name}
	for i, fs := range p.fam {
		st := &s.IPv4
		if i == 1 {
			st = &s.IPv6
		}
		if fs != nil {
			st.Total, st.Assigned, st.Available = fs.total, CountOf(fs.assigned), fs.available()
		}
	}
	for ip := range al.outOfPool {
		if al.ips[ip].lastPool == p.cfg.Name {
			if ip.Is4() {
				s.IPv4.Stranded++
			} else {
				s.IPv6.Stranded++
			}
		}
	}
	return s
}
