package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go4.org/netipx"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/api/v1beta1"
)

// Kinds, as they appear in Problem.Kind.
const (
	KindIPAddressPool    = "IPAddressPool"
	KindL2Advertisement  = "L2Advertisement"
	KindBGPAdvertisement = "BGPAdvertisement"
	KindBGPPeer          = "BGPPeer"
	KindBFDProfile       = "BFDProfile"
	KindCommunity        = "Community"
)

// Reasons, as they appear in Problem.Reason and in conditions.
const (
	ReasonInvalidField       = "InvalidField"
	ReasonOverlap            = "Overlap"
	ReasonUnknownReference   = "UnknownReference"
	ReasonAggregationTooWide = "AggregationTooWide"
	ReasonLocalPrefConflict  = "LocalPrefConflict"
	ReasonDuplicatePeer      = "DuplicatePeer"
	ReasonDuplicateAlias     = "DuplicateAlias"
	ReasonMissingSecret      = "MissingSecret"
)

// Problem is what is wrong with one object.
type Problem struct {
	// Kind and Name identify the object at fault.
	Kind, Name string
	// Field is the path of the field at fault, such as "spec.addresses[1]".
	Field string
	// Reason is a CamelCase word for conditions, such as "Overlap".
	Reason string
	// Message says what is wrong, for a person.
	Message string
	// Other names the other object of a conflict between two objects, if
	// any; for an overlap, the other pool.
	Other string
	// Warning is true for a problem that does not keep the object out of
	// the snapshot: the object that wins a conflict carries one.
	Warning bool
	// KeptPrevious is true when the object's last valid version stays in
	// effect in place of the faulty one.
	KeptPrevious bool
}

// Error formats the problem as "Kind "name": field: message".
func (p Problem) Error() string {
	return fmt.Sprintf("%s %q: %s: %s", p.Kind, p.Name, p.Field, p.Message)
}

// Input is everything a snapshot is built from. Objects may come in any
// order; Build sorts them.
type Input struct {
	Pools             []v1beta1.IPAddressPool
	L2Advertisements  []v1beta1.L2Advertisement
	BGPAdvertisements []v1beta1.BGPAdvertisement
	Peers             []v1beta1.BGPPeer
	BFDProfiles       []v1beta1.BFDProfile
	Communities       []v1beta1.Community
	// Secrets maps the names of the Secrets in Herald's namespace to their
	// data, for BGPPeer.passwordSecret.
	Secrets map[string]map[string][]byte
	// Reserved are the cluster's addresses no pool may hand out: the
	// nodes' InternalIPs, the Service CIDRs, the pod CIDRs. The controller
	// reads them from the API; Build only uses them. Addresses that are
	// never a Service's (loopback, multicast, ...) are always reserved.
	Reserved []Reserved
}

// Peer defaults, as in BGP practice and MetalLB.
const (
	DefaultPeerPort = 179
	DefaultHoldTime = 90 * time.Second
	// DefaultGracefulRestartTime is the restart time announced with
	// graceful restart: FRR's and BIRD's default.
	DefaultGracefulRestartTime = 120 * time.Second
	DefaultConnectTime         = 120 * time.Second
)

// Build validates in and returns a snapshot plus the problems found, sorted
// by kind, name and field. An object with a problem is left out, unless prev
// (the previous snapshot, may be nil) holds a valid version of it: then that
// version stays in effect, so that a bad edit never silences a working
// configuration. Every other object takes effect.
func Build(in Input, prev *Config) (*Config, []Problem) {
	b := &builder{in: in, prev: prev}
	cfg := &Config{Communities: map[string]Community{}, poolByName: map[string]*Pool{}}

	b.buildBFDProfiles(cfg)
	b.buildCommunities(cfg)
	b.buildPools(cfg)
	b.buildPeers(cfg)
	b.buildL2Advertisements(cfg)
	b.buildBGPAdvertisements(cfg)

	slices.SortFunc(b.problems, func(x, y Problem) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Name, y.Name), cmp.Compare(x.Field, y.Field), cmp.Compare(x.Message, y.Message))
	})
	return cfg, b.problems
}

type builder struct {
	in       Input
	prev     *Config
	problems []Problem
	// poolSelectorCache maps a pool selector's string to the pools it
	// matches.
	poolSelectorCache map[string][]string
}

func (b *builder) problem(kind, name, field, reason, format string, args ...any) Problem {
	p := Problem{Kind: kind, Name: name, Field: field, Reason: reason, Message: fmt.Sprintf(format, args...)}
	return p
}

// objErrs collects the problems of one object while it is built.
type objErrs struct {
	kind, name string
	list       []Problem
}

func (o *objErrs) add(field, reason, format string, args ...any) {
	o.list = append(o.list, Problem{Kind: o.kind, Name: o.name, Field: field, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// settle records o's problems; it reports whether the object is valid.
// When it is not and keptPrevious is true, the problems say so.
func (b *builder) settle(o *objErrs, keptPrevious bool) bool {
	for _, p := range o.list {
		p.KeptPrevious = keptPrevious
		if keptPrevious {
			p.Message += "; the previous valid version stays in effect"
		}
		b.problems = append(b.problems, p)
	}
	return len(o.list) == 0
}

func compileSelectors(o *objErrs, field string, in []metav1.LabelSelector) []labels.Selector {
	var out []labels.Selector
	for i := range in {
		s, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			o.add(fmt.Sprintf("%s[%d]", field, i), ReasonInvalidField, "invalid label selector: %v", err)
			continue
		}
		out = append(out, s)
	}
	return out
}

func sortedByName[T any](items []T, name func(*T) string) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	slices.SortFunc(out, func(a, b *T) int { return cmp.Compare(name(a), name(b)) })
	return out
}

func findByName[T any](list []*T, name string, nameOf func(*T) string) *T {
	i, ok := slices.BinarySearchFunc(list, name, func(x *T, n string) int { return cmp.Compare(nameOf(x), n) })
	if !ok {
		return nil
	}
	return list[i]
}

// ---- BFD profiles ----

func (b *builder) buildBFDProfiles(cfg *Config) {
	for _, obj := range sortedByName(b.in.BFDProfiles, func(p *v1beta1.BFDProfile) string { return p.Name }) {
		o := &objErrs{kind: KindBFDProfile, name: obj.Name}
		s := obj.Spec
		p := &BFDProfile{
			Name:             obj.Name,
			ReceiveInterval:  time.Duration(derefOr(s.ReceiveInterval, 300)) * time.Millisecond,
			TransmitInterval: time.Duration(derefOr(s.TransmitInterval, 300)) * time.Millisecond,
			PassiveMode:      s.PassiveMode,
		}
		if s.EchoMode {
			o.add("spec.echoMode", ReasonInvalidField, "is not supported: Herald's BFD runs in the speaker process and cannot loop echo packets; use shorter control intervals")
		}
		checkInterval := func(field string, v *int32) {
			if v != nil && (*v < 10 || *v > 60000) {
				o.add(field, ReasonInvalidField, "must be within 10..60000 milliseconds, got %d", *v)
			}
		}
		checkInterval("spec.receiveInterval", s.ReceiveInterval)
		checkInterval("spec.transmitInterval", s.TransmitInterval)
		if m := derefOr(s.DetectMultiplier, 3); m < 2 || m > 255 {
			o.add("spec.detectMultiplier", ReasonInvalidField, "must be within 2..255, got %d", m)
		} else {
			p.DetectMultiplier = uint8(m)
		}
		if t := derefOr(s.MinimumTTL, 254); t < 1 || t > 254 {
			o.add("spec.minimumTtl", ReasonInvalidField, "must be within 1..254, got %d", t)
		} else {
			p.MinimumTTL = uint8(t)
		}
		prev := b.prevBFD(obj.Name)
		if b.settle(o, prev != nil) {
			cfg.BFDProfiles = append(cfg.BFDProfiles, p)
		} else if prev != nil {
			cfg.BFDProfiles = append(cfg.BFDProfiles, prev)
		}
	}
}

func (b *builder) prevBFD(name string) *BFDProfile {
	if b.prev == nil {
		return nil
	}
	return findByName(b.prev.BFDProfiles, name, func(p *BFDProfile) string { return p.Name })
}

// ---- Communities ----

func (b *builder) buildCommunities(cfg *Config) {
	// Older objects win a duplicate alias, so that a new object cannot
	// change what an existing alias means.
	objs := sortedByName(b.in.Communities, func(c *v1beta1.Community) string { return c.Name })
	slices.SortStableFunc(objs, func(x, y *v1beta1.Community) int {
		return x.CreationTimestamp.Compare(y.CreationTimestamp.Time)
	})
	owner := map[string]string{}
	for _, obj := range objs {
		o := &objErrs{kind: KindCommunity, name: obj.Name}
		local := map[string]Community{}
		for i, a := range obj.Spec.Communities {
			field := fmt.Sprintf("spec.communities[%d]", i)
			if !isAliasName(a.Name) {
				o.add(field+".name", ReasonInvalidField, "%q is not a valid alias name: lowercase letters, digits, '-' and '.'", a.Name)
				continue
			}
			c, isAlias, err := ParseCommunity(string(a.Value))
			switch {
			case err != nil:
				o.add(field+".value", ReasonInvalidField, "%v", err)
				continue
			case isAlias:
				o.add(field+".value", ReasonInvalidField, "%q is an alias name; an alias must name a community value such as 65000:100", a.Value)
				continue
			}
			if _, dup := local[a.Name]; dup {
				o.add(field+".name", ReasonInvalidField, "alias %q is defined twice in this object", a.Name)
				continue
			}
			if other, ok := owner[a.Name]; ok && cfg.Communities[a.Name] != c {
				p := b.problem(KindCommunity, obj.Name, field+".name", ReasonDuplicateAlias,
					"alias %q is already defined with value %s by Community %q", a.Name, cfg.Communities[a.Name], other)
				p.Other = other
				o.list = append(o.list, p)
				continue
			}
			local[a.Name] = c
		}
		if b.settle(o, false) {
			for name, c := range local {
				cfg.Communities[name] = c
				if _, ok := owner[name]; !ok {
					owner[name] = obj.Name
				}
			}
		}
	}
}

// ---- Pools ----

func (b *builder) buildPools(cfg *Config) {
	// class orders the pools for the overlap rules: 0 for a pool as it is
	// in effect (unchanged, or kept at its previous version), 1 for a pool
	// whose ranges changed since, 2 for a pool never in effect.
	type candidate struct {
		pool   *Pool
		obj    *v1beta1.IPAddressPool
		fields []string
		class  int
		prev   *Pool // for class 1: the version in effect
	}
	var cands []*candidate
	for _, obj := range sortedByName(b.in.Pools, func(p *v1beta1.IPAddressPool) string { return p.Name }) {
		o := &objErrs{kind: KindIPAddressPool, name: obj.Name}
		p, fields := buildPool(o, obj)
		prev := b.prevPool(obj.Name)
		switch {
		case !b.settle(o, prev != nil):
			if prev != nil {
				cands = append(cands, &candidate{pool: prev, obj: obj, fields: poolFields(prev)})
			}
		case prev == nil:
			cands = append(cands, &candidate{pool: p, obj: obj, fields: fields, class: 2})
		case sameRanges(prev, p):
			cands = append(cands, &candidate{pool: p, obj: obj, fields: fields})
		default:
			cands = append(cands, &candidate{pool: p, obj: obj, fields: fields, class: 1, prev: prev})
		}
	}

	// Overlaps between pools. The rules give the same answer whatever the
	// order of events, and never take an address range out of effect:
	//   - the ranges in effect (class 0, and the previous version of class
	//     1) are reserved first;
	//   - a changed pool (class 1) takes its new ranges only if they overlap
	//     no other pool's reserved range, else its previous version stays
	//     in effect;
	//   - a new pool (class 2) takes effect only if it overlaps nothing
	//     reserved; between new pools, the older (then the name) wins.
	// A pool that is not in effect reserves nothing, so excludes nothing.
	type span struct {
		r     netipx.IPRange
		c     *candidate
		field string
	}
	var reserved []span
	spansOf := func(c *candidate, p *Pool, fields []string) []span {
		var out []span
		for i, r := range append(slices.Clone(p.V4), p.V6...) {
			out = append(out, span{r: r, c: c, field: fields[i]})
		}
		return out
	}
	// conflict returns the first reserved span of another pool that one of
	// spans overlaps, and which one.
	conflict := func(c *candidate, spans []span) (mine, theirs span, ok bool) {
		for _, s := range spans {
			for _, r := range reserved {
				if r.c != c && r.r.From().BitLen() == s.r.From().BitLen() && !r.r.To().Less(s.r.From()) && !s.r.To().Less(r.r.From()) {
					return s, r, true
				}
			}
		}
		return span{}, span{}, false
	}
	overlap := func(l, w span, kept bool) {
		msg := fmt.Sprintf("%s overlaps pool %q (%s); this pool is not in effect until the overlap is removed", rangeString(l.r), w.c.obj.Name, w.field)
		if kept {
			msg = fmt.Sprintf("%s overlaps pool %q (%s); the previous valid version stays in effect", rangeString(l.r), w.c.obj.Name, w.field)
		}
		b.problems = append(b.problems, Problem{
			Kind: KindIPAddressPool, Name: l.c.obj.Name, Field: l.field, Reason: ReasonOverlap, Other: w.c.obj.Name, KeptPrevious: kept, Message: msg,
		}, Problem{
			Kind: KindIPAddressPool, Name: w.c.obj.Name, Field: w.field, Reason: ReasonOverlap, Other: l.c.obj.Name, Warning: true,
			Message: fmt.Sprintf("%s overlaps pool %q (%s), which does not take it", rangeString(w.r), l.c.obj.Name, l.field),
		})
	}
	older := func(x, y *candidate) int {
		return cmp.Or(x.obj.CreationTimestamp.Compare(y.obj.CreationTimestamp.Time), cmp.Compare(x.obj.Name, y.obj.Name))
	}
	inEffect := map[*candidate]*Pool{}
	for _, c := range cands {
		p := c.pool
		if c.class == 1 {
			p = c.prev
		}
		if c.class == 2 {
			continue
		}
		spans := spansOf(c, p, c.fields)
		if c.class == 1 {
			spans = spansOf(c, p, poolFields(p))
		}
		if mine, theirs, bad := conflict(c, spans); bad {
			// Two versions in effect overlap: only when they were judged
			// apart. Names order them.
			overlap(mine, theirs, false)
			continue
		}
		reserved = append(reserved, spans...)
		inEffect[c] = p
	}
	var changed, added []*candidate
	for _, c := range cands {
		switch c.class {
		case 1:
			changed = append(changed, c)
		case 2:
			added = append(added, c)
		}
	}
	slices.SortFunc(changed, older)
	slices.SortFunc(added, older)
	for _, c := range changed {
		if _, ok := inEffect[c]; !ok {
			continue
		}
		spans := spansOf(c, c.pool, c.fields)
		if mine, theirs, bad := conflict(c, spans); bad {
			overlap(mine, theirs, true)
			continue
		}
		reserved = slices.DeleteFunc(reserved, func(s span) bool { return s.c == c })
		reserved = append(reserved, spans...)
		inEffect[c] = c.pool
	}
	for _, c := range added {
		spans := spansOf(c, c.pool, c.fields)
		if mine, theirs, bad := conflict(c, spans); bad {
			overlap(mine, theirs, false)
			continue
		}
		reserved = append(reserved, spans...)
		inEffect[c] = c.pool
	}
	for _, c := range cands {
		p := inEffect[c]
		if p == nil {
			continue
		}
		fields := c.fields
		if p != c.pool || len(fields) != len(p.V4)+len(p.V6) {
			fields = poolFields(p)
		}
		q, problems := b.excludeReserved(p, fields)
		b.problems = append(b.problems, problems...)
		if q == p && len(problems) > 0 {
			continue // nothing left: refused
		}
		p = q
		cfg.Pools = append(cfg.Pools, p)
		cfg.poolByName[p.Name] = p
		for _, r := range append(slices.Clone(p.V4), p.V6...) {
			cfg.index = append(cfg.index, poolRange{r: r, pool: p})
		}
	}
	slices.SortFunc(cfg.index, func(x, y poolRange) int { return x.r.From().Compare(y.r.From()) })
}

// buildPool validates one pool object. fields names the spec field of each
// range of V4 followed by V6.
func buildPool(o *objErrs, obj *v1beta1.IPAddressPool) (*Pool, []string) {
	s := obj.Spec
	p := &Pool{
		Name:          obj.Name,
		AutoAssign:    s.AutoAssign == nil || *s.AutoAssign,
		AvoidBuggyIPs: s.AvoidBuggyIPs,
		Labels:        obj.Labels,
	}
	if len(s.Addresses) == 0 {
		o.add("spec.addresses", ReasonInvalidField, "at least one address range is required")
	}
	type item struct {
		r     netipx.IPRange
		field string
	}
	var items []item
	for i, a := range s.Addresses {
		field := fmt.Sprintf("spec.addresses[%d]", i)
		r, err := ParseAddressRange(string(a))
		if err != nil {
			o.add(field, ReasonInvalidField, "%v", err)
			continue
		}
		checkUnspecified(o, field, r)
		items = append(items, item{r, field})
	}
	slices.SortFunc(items, func(x, y item) int { return x.r.From().Compare(y.r.From()) })
	for i := 1; i < len(items); i++ {
		prev, cur := items[i-1], items[i]
		if prev.r.To().BitLen() == cur.r.From().BitLen() && !prev.r.To().Less(cur.r.From()) {
			o.add(cur.field, ReasonOverlap, "%s overlaps %s (%s) of the same pool", rangeString(cur.r), rangeString(prev.r), prev.field)
		}
	}
	var sb netipx.IPSetBuilder
	var fields4, fields6 []string
	for _, it := range items {
		sb.AddRange(it.r)
		if it.r.From().Is4() {
			p.V4 = append(p.V4, it.r)
			fields4 = append(fields4, it.field)
		} else {
			p.V6 = append(p.V6, it.r)
			fields6 = append(fields6, it.field)
		}
	}
	for i, ranges := range [][]netipx.IPRange{p.V4, p.V6} {
		for _, r := range ranges {
			for _, pfx := range r.Prefixes() {
				if !p.widest[i].IsValid() || pfx.Bits() < p.widest[i].Bits() {
					p.widest[i] = pfx
				}
			}
		}
	}
	set, err := sb.IPSet()
	if err != nil {
		o.add("spec.addresses", ReasonInvalidField, "%v", err)
	}
	p.Set = set
	if sa := s.ServiceAllocation; sa != nil {
		if sa.Priority != nil {
			if *sa.Priority < 0 {
				o.add("spec.serviceAllocation.priority", ReasonInvalidField, "must not be negative, got %d", *sa.Priority)
			}
			p.Priority, p.HasPriority = *sa.Priority, true
		}
		p.Namespaces = slices.Sorted(slices.Values(sa.Namespaces))
		p.Namespaces = slices.Compact(p.Namespaces)
		p.NamespaceSelectors = compileSelectors(o, "spec.serviceAllocation.namespaceSelectors", sa.NamespaceSelectors)
		p.ServiceSelectors = compileSelectors(o, "spec.serviceAllocation.serviceSelectors", sa.ServiceSelectors)
	}
	return p, append(fields4, fields6...)
}

// rangeString writes r as a CIDR when it is one, else as "first-last".
func rangeString(r netipx.IPRange) string {
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.String()
}

func poolFields(p *Pool) []string {
	out := make([]string, 0, len(p.V4)+len(p.V6))
	for range len(p.V4) + len(p.V6) {
		out = append(out, "spec.addresses")
	}
	return out
}

func sameRanges(a, b *Pool) bool {
	wa, wb := a.writtenRanges(), b.writtenRanges()
	return slices.Equal(wa[0], wb[0]) && slices.Equal(wa[1], wb[1])
}

// writtenRanges returns the ranges as the object lists them, reserved
// addresses included.
func (p *Pool) writtenRanges() [2][]netipx.IPRange {
	if p.written != nil {
		return *p.written
	}
	return [2][]netipx.IPRange{p.V4, p.V6}
}

func (b *builder) prevPool(name string) *Pool {
	if b.prev == nil {
		return nil
	}
	return b.prev.poolByName[name]
}

// ---- Peers ----

func (b *builder) buildPeers(cfg *Config) {
	objs := sortedByName(b.in.Peers, func(p *v1beta1.BGPPeer) string { return p.Name })
	type built struct {
		peer    *Peer
		obj     *v1beta1.BGPPeer
		selKey  string
		changed bool
	}
	var peers []*built
	for _, obj := range objs {
		o := &objErrs{kind: KindBGPPeer, name: obj.Name}
		p := b.buildPeer(o, obj, cfg)
		prev := b.prevPeer(obj.Name)
		if !b.settle(o, prev != nil) {
			if prev != nil {
				peers = append(peers, &built{peer: prev, obj: obj, selKey: selectorsKey(prev.NodeSelectors)})
			}
			continue
		}
		peers = append(peers, &built{peer: p, obj: obj, selKey: selectorsKey(p.NodeSelectors), changed: prev == nil})
	}
	// Duplicate sessions: the same router address and port from the same
	// nodes. Grouping by address keeps this O(n log n).
	type sessionKey struct {
		addr  netip.Addr
		port  uint16
		iface string
	}
	groups := map[sessionKey][]*built{}
	for _, p := range peers {
		// One BGP server has one session per router address (or per
		// interface, unnumbered), whatever the VRF.
		k := sessionKey{p.peer.Address, p.peer.Port, p.peer.Interface}
		groups[k] = append(groups[k], p)
	}
	dropped := map[*built]bool{}
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		slices.SortFunc(g, func(x, y *built) int {
			if x.changed != y.changed {
				if x.changed {
					return 1
				}
				return -1
			}
			return cmp.Or(x.obj.CreationTimestamp.Compare(y.obj.CreationTimestamp.Time), cmp.Compare(x.obj.Name, y.obj.Name))
		})
		for i, p := range g {
			for _, w := range g[:i] {
				if dropped[w] || p.selKey != "" && w.selKey != "" && p.selKey != w.selKey {
					continue
				}
				field := "spec.peerAddress"
				if p.peer.Interface != "" {
					field = "spec.interface"
				}
				b.problems = append(b.problems, Problem{
					Kind: KindBGPPeer, Name: p.obj.Name, Field: field, Reason: ReasonDuplicatePeer, Other: w.obj.Name,
					Message: fmt.Sprintf("BGPPeer %q already opens a session to %s from the same nodes; this peer is not in effect", w.obj.Name, sessionTarget(p.peer)),
				})
				dropped[p] = true
				break
			}
		}
	}
	for _, p := range peers {
		if !dropped[p] {
			cfg.Peers = append(cfg.Peers, p.peer)
		}
	}
}

func (b *builder) buildPeer(o *objErrs, obj *v1beta1.BGPPeer, cfg *Config) *Peer {
	s := obj.Spec
	p := &Peer{
		Name:            obj.Name,
		Port:            DefaultPeerPort,
		HoldTime:        DefaultHoldTime,
		ConnectTime:     DefaultConnectTime,
		EBGPMultiHop:    s.EBGPMultiHop,
		GracefulRestart: s.EnableGracefulRestart,
		DisableMP:       s.DisableMP,
	}
	if s.EnableGracefulRestart {
		p.GracefulRestartTime = DefaultGracefulRestartTime
	}
	if s.GracefulRestartTime != nil {
		switch d := s.GracefulRestartTime.Duration; {
		case !s.EnableGracefulRestart:
			o.add("spec.gracefulRestartTime", ReasonInvalidField, "needs enableGracefulRestart: true")
		case d < time.Second || d > 4095*time.Second:
			o.add("spec.gracefulRestartTime", ReasonInvalidField, "must be within 1s..4095s (12 bits of seconds, RFC 4724), got %s", d)
		default:
			p.GracefulRestartTime = d.Truncate(time.Second)
		}
	}
	asn := func(field string, v int64) uint32 {
		if v < 1 || v > 4294967295 {
			o.add(field, ReasonInvalidField, "must be within 1..4294967295, got %d", v)
			return 0
		}
		return uint32(v)
	}
	p.MyASN = asn("spec.myASN", s.MyASN)
	switch {
	case s.PeerASN != 0 && s.DynamicASN != "":
		o.add("spec.dynamicASN", ReasonInvalidField, "set exactly one of peerASN and dynamicASN")
	case s.DynamicASN == "":
		p.PeerASN = asn("spec.peerASN", s.PeerASN)
	case s.DynamicASN == DynamicInternal || s.DynamicASN == DynamicExternal:
		p.DynamicASN = s.DynamicASN
	default:
		o.add("spec.dynamicASN", ReasonInvalidField, "must be %q or %q, got %q", DynamicInternal, DynamicExternal, s.DynamicASN)
	}
	switch {
	case s.PeerAddress != "" && s.Interface != "":
		o.add("spec.interface", ReasonInvalidField, "set exactly one of peerAddress and interface")
	case s.Interface != "":
		if err := checkDeviceName(s.Interface); err != nil {
			o.add("spec.interface", ReasonInvalidField, "%v", err)
		}
		p.Interface = s.Interface
	default:
		addr, err := netip.ParseAddr(s.PeerAddress)
		if err != nil || addr.Zone() != "" {
			o.add("spec.peerAddress", ReasonInvalidField, "%q is not an IP address", s.PeerAddress)
		}
		p.Address = addr.Unmap()
	}
	p.Passive = s.Passive
	if s.VRF != "" {
		if err := checkDeviceName(s.VRF); err != nil {
			o.add("spec.vrf", ReasonInvalidField, "%v", err)
		}
		p.VRF = s.VRF
	}
	if s.PeerPort != nil {
		if *s.PeerPort < 1 || *s.PeerPort > 65535 {
			o.add("spec.peerPort", ReasonInvalidField, "must be within 1..65535, got %d", *s.PeerPort)
		} else {
			p.Port = uint16(*s.PeerPort)
		}
	}
	if s.SourceAddress != "" {
		src, err := netip.ParseAddr(s.SourceAddress)
		switch {
		case p.Interface != "":
			o.add("spec.sourceAddress", ReasonInvalidField, "cannot be set with interface: the session runs over the interface's link-local address")
		case err != nil:
			o.add("spec.sourceAddress", ReasonInvalidField, "%q is not an IP address", s.SourceAddress)
		case p.Address.IsValid() && src.Unmap().BitLen() != p.Address.BitLen():
			o.add("spec.sourceAddress", ReasonInvalidField, "must be of the same IP family as peerAddress %s", p.Address)
		default:
			p.SourceAddress = src.Unmap()
		}
	}
	if s.HoldTime != nil {
		p.HoldTime = s.HoldTime.Duration
		switch {
		case p.HoldTime == 0:
			o.add("spec.holdTime", ReasonInvalidField, "0 (no keepalives) is not supported by Herald's BGP implementation (GoBGP); use at least 3s")
		case p.HoldTime < 3*time.Second:
			o.add("spec.holdTime", ReasonInvalidField, "must be at least 3s, got %s", p.HoldTime)
		}
	}
	p.KeepaliveTime = p.HoldTime / 3
	if s.KeepaliveTime != nil {
		p.KeepaliveTime = s.KeepaliveTime.Duration
		if p.KeepaliveTime < 0 || p.KeepaliveTime > p.HoldTime {
			o.add("spec.keepaliveTime", ReasonInvalidField, "must be within 0..holdTime (%s), got %s", p.HoldTime, p.KeepaliveTime)
		}
	}
	if s.ConnectTime != nil {
		p.ConnectTime = s.ConnectTime.Duration
		if p.ConnectTime < time.Second || p.ConnectTime > 65535*time.Second {
			o.add("spec.connectTime", ReasonInvalidField, "must be within 1s..65535s, got %s", p.ConnectTime)
		}
	}
	if s.RouterID != "" {
		id, err := netip.ParseAddr(s.RouterID)
		if err != nil || !id.Unmap().Is4() {
			o.add("spec.routerID", ReasonInvalidField, "%q is not an IPv4 address", s.RouterID)
		}
		p.RouterID = id.Unmap()
	}
	switch {
	case s.EBGPMultiHop && p.DynamicASN == DynamicInternal:
		o.add("spec.ebgpMultiHop", ReasonInvalidField, "applies to eBGP sessions only, but dynamicASN is internal")
	case s.EBGPMultiHop && p.DynamicASN == "" && p.MyASN != 0 && p.MyASN == p.PeerASN:
		o.add("spec.ebgpMultiHop", ReasonInvalidField, "applies to eBGP sessions only, but myASN equals peerASN (%d)", p.MyASN)
	case s.EBGPMultiHop && p.Interface != "":
		o.add("spec.ebgpMultiHop", ReasonInvalidField, "cannot be set with interface: an unnumbered session is one hop over the interface's link-local addresses")
	}
	p.NodeSelectors = compileSelectors(o, "spec.nodeSelectors", s.NodeSelectors)
	switch {
	case s.Password != "" && s.PasswordSecret != nil:
		o.add("spec.passwordSecret", ReasonInvalidField, "password and passwordSecret are mutually exclusive: set one")
	case s.Password != "":
		p.Password = s.Password
	case s.PasswordSecret != nil:
		data, ok := b.in.Secrets[s.PasswordSecret.Name]
		pw, hasKey := data["password"]
		switch {
		case !ok:
			o.add("spec.passwordSecret.name", ReasonMissingSecret, "Secret %q does not exist in Herald's namespace", s.PasswordSecret.Name)
		case !hasKey || len(pw) == 0:
			o.add("spec.passwordSecret.name", ReasonMissingSecret, "Secret %q has no \"password\" key", s.PasswordSecret.Name)
		default:
			p.Password = string(pw)
		}
	}
	if s.BFDProfile != "" && (p.Interface != "" || p.VRF != "") {
		o.add("spec.bfdProfile", ReasonInvalidField, "is not supported with interface or vrf yet: Herald's BFD does not bind to an interface or a VRF")
	} else if s.BFDProfile != "" {
		p.BFD = findByName(cfg.BFDProfiles, s.BFDProfile, func(x *BFDProfile) string { return x.Name })
		if p.BFD == nil {
			o.add("spec.bfdProfile", ReasonUnknownReference, "BFDProfile %q does not exist", s.BFDProfile)
		}
	}
	return p
}

// sessionTarget names where a peer's session goes, for messages.
func sessionTarget(p *Peer) string {
	if p.Interface != "" {
		return "interface " + p.Interface
	}
	return fmt.Sprintf("%s port %d", p.Address, p.Port)
}

// checkDeviceName checks a Linux network device name (IFNAMSIZ).
func checkDeviceName(name string) error {
	if len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/:% \t\n") {
		return fmt.Errorf("%q is not a network device name (at most 15 characters, no '/', ':', '%%' or spaces)", name)
	}
	return nil
}

func (b *builder) prevPeer(name string) *Peer {
	if b.prev == nil {
		return nil
	}
	return findByName(b.prev.Peers, name, func(p *Peer) string { return p.Name })
}

// selectorsKey is a canonical string of a selector list, "" for none.
func selectorsKey(sels []labels.Selector) string {
	keys := make([]string, len(sels))
	for i, s := range sels {
		keys[i] = s.String()
	}
	slices.Sort(keys)
	return strings.Join(keys, "|")
}

// ---- Advertisements ----

// poolsMatching returns the names of the pools whose labels match s. The
// answer is cached by selector, as advertisements tend to share selectors.
func (b *builder) poolsMatching(cfg *Config, s labels.Selector) []string {
	key := s.String()
	if names, ok := b.poolSelectorCache[key]; ok {
		return names
	}
	var names []string
	for _, p := range cfg.Pools {
		if s.Matches(labels.Set(p.Labels)) {
			names = append(names, p.Name)
		}
	}
	if b.poolSelectorCache == nil {
		b.poolSelectorCache = map[string][]string{}
	}
	b.poolSelectorCache[key] = names
	return names
}

// resolvePools returns the sorted names of the pools that an advertisement
// selects by name or by label; none of either selects every pool.
func (b *builder) resolvePools(o *objErrs, cfg *Config, names []string, selectors []metav1.LabelSelector) []string {
	sels := compileSelectors(o, "spec.ipAddressPoolSelectors", selectors)
	if len(names) == 0 && len(selectors) == 0 {
		out := make([]string, len(cfg.Pools))
		for i, p := range cfg.Pools {
			out[i] = p.Name
		}
		return out
	}
	if len(names) == 0 && len(sels) == 1 {
		return b.poolsMatching(cfg, sels[0]) // sorted, as cfg.Pools is
	}
	set := map[string]bool{}
	for i, n := range names {
		if cfg.Pool(n) == nil {
			o.add(fmt.Sprintf("spec.ipAddressPools[%d]", i), ReasonUnknownReference, "IPAddressPool %q does not exist or is not in effect", n)
			continue
		}
		set[n] = true
	}
	for _, s := range sels {
		for _, n := range b.poolsMatching(cfg, s) {
			set[n] = true
		}
	}
	return slices.Sorted(func(yield func(string) bool) {
		for n := range set {
			if !yield(n) {
				return
			}
		}
	})
}

func (b *builder) buildL2Advertisements(cfg *Config) {
	for _, obj := range sortedByName(b.in.L2Advertisements, func(a *v1beta1.L2Advertisement) string { return a.Name }) {
		o := &objErrs{kind: KindL2Advertisement, name: obj.Name}
		s := obj.Spec
		a := &L2Advertisement{
			Name:                   obj.Name,
			Pools:                  b.resolvePools(o, cfg, s.IPAddressPools, s.IPAddressPoolSelectors),
			NodeSelectors:          compileSelectors(o, "spec.nodeSelectors", s.NodeSelectors),
			ServiceSelectors:       compileSelectors(o, "spec.serviceSelectors", s.ServiceSelectors),
			PreferredNodeSelectors: compileSelectors(o, "spec.preferredNodeSelectors", s.PreferredNodeSelectors),
		}
		for i, ifname := range s.Interfaces {
			if err := ValidInterfacePattern(ifname); err != nil {
				o.add(fmt.Sprintf("spec.interfaces[%d]", i), ReasonInvalidField, "%s", err)
			}
		}
		a.Interfaces = slices.Compact(slices.Sorted(slices.Values(s.Interfaces)))
		var prev *L2Advertisement
		if b.prev != nil {
			prev = findByName(b.prev.L2Advertisements, obj.Name, func(x *L2Advertisement) string { return x.Name })
		}
		if b.settle(o, prev != nil) {
			cfg.L2Advertisements = append(cfg.L2Advertisements, a)
		} else if prev != nil {
			cfg.L2Advertisements = append(cfg.L2Advertisements, prev)
		}
	}
}

func (b *builder) buildBGPAdvertisements(cfg *Config) {
	type built struct {
		adv *BGPAdvertisement
		obj *v1beta1.BGPAdvertisement
	}
	var advs []built
	for _, obj := range sortedByName(b.in.BGPAdvertisements, func(a *v1beta1.BGPAdvertisement) string { return a.Name }) {
		o := &objErrs{kind: KindBGPAdvertisement, name: obj.Name}
		a := b.buildBGPAdvertisement(o, cfg, obj)
		var prev *BGPAdvertisement
		if b.prev != nil {
			prev = findByName(b.prev.BGPAdvertisements, obj.Name, func(x *BGPAdvertisement) string { return x.Name })
		}
		if b.settle(o, prev != nil) {
			advs = append(advs, built{a, obj})
		} else if prev != nil {
			advs = append(advs, built{prev, obj})
		}
	}

	// Conflicting localPref: two advertisements of one pool to the same
	// peers from the same nodes and Services must agree. Older wins.
	type groupKey struct{ pool, nodes, services string }
	groups := map[groupKey][]int{}
	for i, a := range advs {
		k := groupKey{nodes: selectorsKey(a.adv.NodeSelectors), services: selectorsKey(a.adv.ServiceSelectors)}
		for _, p := range a.adv.Pools {
			k.pool = p
			groups[k] = append(groups[k], i)
		}
	}
	dropped := map[int]bool{}
	keys := slices.SortedFunc(func(yield func(groupKey) bool) {
		for k := range groups {
			if !yield(k) {
				return
			}
		}
	}, func(x, y groupKey) int {
		return cmp.Or(cmp.Compare(x.pool, y.pool), cmp.Compare(x.nodes, y.nodes), cmp.Compare(x.services, y.services))
	})
	for _, k := range keys {
		g := groups[k]
		if len(g) < 2 || slices.IndexFunc(g, func(i int) bool { return localPrefOf(advs[i].adv) != localPrefOf(advs[g[0]].adv) }) < 0 {
			continue
		}
		slices.SortFunc(g, func(x, y int) int {
			return cmp.Or(advs[x].obj.CreationTimestamp.Compare(advs[y].obj.CreationTimestamp.Time), cmp.Compare(advs[x].obj.Name, advs[y].obj.Name))
		})
		for i, xi := range g {
			x := advs[xi].adv
			for _, wi := range g[:i] {
				w := advs[wi].adv
				if dropped[wi] || dropped[xi] || !peersIntersect(x.Peers, w.Peers) || localPrefOf(x) == localPrefOf(w) {
					continue
				}
				b.problems = append(b.problems, Problem{
					Kind: KindBGPAdvertisement, Name: x.Name, Field: "spec.localPref", Reason: ReasonLocalPrefConflict, Other: w.Name,
					Message: fmt.Sprintf("localPref %s conflicts with BGPAdvertisement %q (localPref %s) for pool %q, the same peers and nodes; this advertisement is not in effect", localPrefOf(x), w.Name, localPrefOf(w), k.pool),
				})
				dropped[xi] = true
			}
		}
	}
	for i, a := range advs {
		if !dropped[i] {
			cfg.BGPAdvertisements = append(cfg.BGPAdvertisements, a.adv)
		}
	}
}

func (b *builder) buildBGPAdvertisement(o *objErrs, cfg *Config, obj *v1beta1.BGPAdvertisement) *BGPAdvertisement {
	s := obj.Spec
	a := &BGPAdvertisement{
		Name:                obj.Name,
		Pools:               b.resolvePools(o, cfg, s.IPAddressPools, s.IPAddressPoolSelectors),
		AggregationLength:   int(derefOr(s.AggregationLength, 32)),
		AggregationLengthV6: int(derefOr(s.AggregationLengthV6, 128)),
		NodeSelectors:       compileSelectors(o, "spec.nodeSelectors", s.NodeSelectors),
		ServiceSelectors:    compileSelectors(o, "spec.serviceSelectors", s.ServiceSelectors),
	}
	lenOK := func(field string, v, max int) bool {
		if v < 0 || v > max {
			o.add(field, ReasonInvalidField, "must be within 0..%d, got %d", max, v)
			return false
		}
		return true
	}
	ok4 := lenOK("spec.aggregationLength", a.AggregationLength, 32)
	ok6 := lenOK("spec.aggregationLengthV6", a.AggregationLengthV6, 128)
	// An aggregate wider than a pool's own block would attract traffic for
	// addresses that are not the pool's.
	for _, name := range a.Pools {
		p := cfg.Pool(name)
		if ok4 && p.widest[0].IsValid() && a.AggregationLength < p.widest[0].Bits() {
			o.add("spec.aggregationLength", ReasonAggregationTooWide, "%d is shorter than the prefix length of %s in pool %q; use at least %d", a.AggregationLength, p.widest[0], name, p.widest[0].Bits())
		}
		if ok6 && p.widest[1].IsValid() && a.AggregationLengthV6 < p.widest[1].Bits() {
			o.add("spec.aggregationLengthV6", ReasonAggregationTooWide, "%d is shorter than the prefix length of %s in pool %q; use at least %d", a.AggregationLengthV6, p.widest[1], name, p.widest[1].Bits())
		}
	}
	if s.LocalPref != nil {
		if *s.LocalPref < 0 || *s.LocalPref > 4294967295 {
			o.add("spec.localPref", ReasonInvalidField, "must be within 0..4294967295, got %d", *s.LocalPref)
		}
		a.LocalPref, a.HasLocalPref = uint32(*s.LocalPref), true
	}
	for i, cv := range s.Communities {
		field := fmt.Sprintf("spec.communities[%d]", i)
		c, isAlias, err := ParseCommunity(string(cv))
		switch {
		case err != nil:
			o.add(field, ReasonInvalidField, "%v", err)
			continue
		case isAlias:
			v, ok := cfg.Communities[string(cv)]
			if !ok {
				o.add(field, ReasonUnknownReference, "community alias %q is not defined by any Community object", cv)
				continue
			}
			c = v
		}
		a.Communities = append(a.Communities, c)
	}
	slices.SortFunc(a.Communities, compareCommunities)
	a.Communities = slices.Compact(a.Communities)
	a.Peers = slices.Compact(slices.Sorted(slices.Values(s.Peers)))
	for i, n := range s.Peers {
		if findByName(cfg.Peers, n, func(p *Peer) string { return p.Name }) == nil {
			o.add(fmt.Sprintf("spec.peers[%d]", i), ReasonUnknownReference, "BGPPeer %q does not exist or is not in effect", n)
		}
	}
	return a
}

func compareCommunities(x, y Community) int {
	if x.Large != y.Large {
		if x.Large {
			return 1
		}
		return -1
	}
	return cmp.Or(cmp.Compare(x.Standard, y.Standard), cmp.Compare(x.Global, y.Global), cmp.Compare(x.Local1, y.Local1), cmp.Compare(x.Local2, y.Local2))
}

func peersIntersect(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); ok {
			return true
		}
	}
	return false
}

func localPrefOf(a *BGPAdvertisement) string {
	if !a.HasLocalPref {
		return "unset"
	}
	return fmt.Sprint(a.LocalPref)
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
