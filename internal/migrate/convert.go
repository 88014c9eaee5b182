package migrate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
)

// Result is what Convert returns: the Herald objects and the report.
type Result struct {
	Output Output
	Report Report
}

// src names where a MetalLB object came from, for the report: its id and
// the prefix of its fields ("spec." for a custom resource,
// "data.config.peers[0]." for an entry of a pre-0.13 ConfigMap, whose
// fields are spelled in kebab case).
type src struct {
	id     string
	prefix string
	legacy bool
}

// field returns the path of a field of the object, in the source's
// spelling.
func (s src) field(path string) string {
	if s.legacy {
		parts := strings.Split(path, ".")
		for i, p := range parts {
			parts[i] = legacyName(p)
		}
		path = strings.Join(parts, ".")
	}
	return s.prefix + path
}

// legacyName spells a custom resource's field as the ConfigMap did.
func legacyName(field string) string {
	switch field {
	case "myASN":
		return "my-asn"
	case "peerASN":
		return "peer-asn"
	case "routerID":
		return "router-id"
	case "ebgpMultiHop":
		return "ebgp-multihop"
	case "localPref":
		return "localpref"
	case "aggregationLengthV6":
		return "aggregation-length-v6"
	case "avoidBuggyIPs":
		return "avoid-buggy-ips"
	case "minimumTtl":
		return "minimum-ttl"
	}
	var b strings.Builder
	for _, r := range field {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('-')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// converter holds the state of one conversion.
type converter struct {
	out Output
	rep Report

	pools   []item[mlbPool]
	l2      []item[mlbL2Adv]
	bgp     []item[mlbBGPAdv]
	peers   []item[mlbPeer]
	bfds    []item[mlbBFD]
	comms   []item[mlbCommunity]
	aliases map[string]string // MetalLB alias name -> Herald alias name
	values  map[string]string // Herald alias name -> value
	// owner maps "Kind/name" of each Herald object written to its source,
	// to report the problems Herald's configuration model finds.
	owner map[string]string
	// selecting holds the pools with a serviceAllocation, by priority, to
	// report ties.
	selecting map[int32][]string
}

// item is one MetalLB object, decoded, with its source.
type item[T any] struct {
	src src
	obj T
}

// Convert turns the MetalLB configuration in into Herald objects and a
// report. It never fails: what cannot be converted is reported as having
// no equivalent, and the rest is converted.
func Convert(in *Input) *Result {
	c := &converter{
		aliases:   map[string]string{},
		values:    map[string]string{},
		owner:     map[string]string{},
		selecting: map[int32][]string{},
	}
	c.rep.Findings = append(c.rep.Findings, in.ignored...)
	for _, o := range in.objs {
		c.collect(o)
	}
	for _, it := range c.bfds {
		c.convertBFD(it)
	}
	for _, it := range c.comms {
		c.convertCommunity(it)
	}
	for _, it := range c.pools {
		c.convertPool(it)
	}
	for _, it := range c.peers {
		c.convertPeer(it)
	}
	for _, it := range c.l2 {
		c.convertL2(it)
	}
	for _, it := range c.bgp {
		c.convertBGPAdv(it)
	}
	c.reportPriorityTies()
	c.sortOutput()
	c.judge()
	c.rep.sort()
	return &Result{Output: c.out, Report: c.rep}
}

// collect decodes one input object into its mirror type.
func (c *converter) collect(o object) {
	id := o.id()
	if o.kind == kindConfigMap {
		c.collectLegacy(id, o.raw)
		return
	}
	supported := o.apiVersion == metallbV1 || o.apiVersion == metallbV2 && o.kind == kindBGPPeer
	if !supported || knownSpec(o.kind) == nil {
		c.rep.add(NoEquivalent, id, "", "unknown MetalLB kind or version; not converted")
		return
	}
	s := src{id: id, prefix: "spec."}
	if spec, ok := o.raw["spec"].(map[string]any); ok {
		known := knownSpec(o.kind)
		for _, k := range slices.Sorted(maps.Keys(spec)) {
			if !slices.Contains(known, k) {
				c.rep.add(NoEquivalent, id, s.field(k), "unknown to this converter (a MetalLB newer than v0.15?); dropped")
			}
		}
	}
	var err error
	switch o.kind {
	case kindIPAddressPool:
		err = decodeAppend(&c.pools, s, o.raw)
	case kindL2Advertisement:
		err = decodeAppend(&c.l2, s, o.raw)
	case kindBGPAdvertisement:
		err = decodeAppend(&c.bgp, s, o.raw)
	case kindBGPPeer:
		var it item[mlbPeer]
		if err = decodeInto(o.raw, &it.obj); err == nil {
			it.src = s
			if o.apiVersion == metallbV1 {
				// v1beta1's timers are plain durations: "0s" is unset.
				sp := &it.obj.Spec
				if sp.HoldTime != nil && sp.HoldTime.Duration == 0 {
					sp.HoldTime = nil
				}
				if sp.KeepaliveTime != nil && sp.KeepaliveTime.Duration == 0 {
					sp.KeepaliveTime = nil
				}
			}
			c.peers = append(c.peers, it)
		}
	case kindBFDProfile:
		err = decodeAppend(&c.bfds, s, o.raw)
	case kindCommunity:
		err = decodeAppend(&c.comms, s, o.raw)
	}
	if err != nil {
		c.rep.add(NoEquivalent, id, "", "cannot be decoded (%v); not converted", err)
	}
}

func decodeAppend[T any](list *[]item[T], s src, raw map[string]any) error {
	var it item[T]
	if err := decodeInto(raw, &it.obj); err != nil {
		return err
	}
	it.src = s
	*list = append(*list, it)
	return nil
}

// meta returns the metadata of a converted object: the name, and the
// labels (pool selectors select them) but those of the tools that deployed
// MetalLB, which would otherwise claim Herald's objects as their own.
// Herald's configuration kinds are cluster-scoped, and everything else is
// the cluster's to set.
func (c *converter) meta(s src, in metav1.ObjectMeta) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: in.Name}
	var dropped []string
	for _, k := range slices.Sorted(maps.Keys(in.Labels)) {
		if isToolLabel(k) {
			dropped = append(dropped, k)
			continue
		}
		if out.Labels == nil {
			out.Labels = map[string]string{}
		}
		out.Labels[k] = in.Labels[k]
	}
	if len(dropped) > 0 {
		c.rep.add(Adjusted, s.id, "metadata.labels", "dropped the labels of the tool that deployed MetalLB, so that it does not claim or prune the Herald object: %s", strings.Join(dropped, ", "))
	}
	return out
}

// isToolLabel reports whether a label key belongs to Helm, Argo CD or Flux.
func isToolLabel(k string) bool {
	switch k {
	case "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/part-of":
		return true
	}
	for _, p := range []string{"helm.sh/", "argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// claim records a Herald object's name, and reports whether it is free:
// MetalLB's objects are namespaced, Herald's are not.
func (c *converter) claim(kind, name string, s src) bool {
	key := kind + "/" + name
	if other, ok := c.owner[key]; ok {
		c.rep.add(NoEquivalent, s.id, "metadata.name", "%s %q is already converted from %s (Herald's kinds are cluster-scoped); not converted", kind, name, other)
		return false
	}
	c.owner[key] = s.id
	c.rep.add(Converted, s.id, "", "-> %s", key)
	return true
}

// dropped reports the fields that were left out because they only carried
// MetalLB's defaults.
func (c *converter) dropped(s src, fields []string) {
	if len(fields) > 0 {
		c.rep.add(Adjusted, s.id, "", "dropped fields that only carry MetalLB's defaults: %s", strings.Join(fields, ", "))
	}
}

func (c *converter) convertBFD(it item[mlbBFD]) {
	s, m := it.src, it.obj.Spec
	if !c.claim(config.KindBFDProfile, it.obj.Name, s) {
		return
	}
	out := v1beta1.BFDProfile{TypeMeta: typeMeta(config.KindBFDProfile), ObjectMeta: c.meta(s, it.obj.ObjectMeta)}
	out.Spec.ReceiveInterval = m.ReceiveInterval
	out.Spec.TransmitInterval = m.TransmitInterval
	out.Spec.DetectMultiplier = m.DetectMultiplier
	var defaults []string
	echo := m.EchoMode != nil && *m.EchoMode
	switch {
	case echo:
		c.rep.add(NoEquivalent, s.id, s.field("echoMode"), "Herald's BFD runs in the speaker process and has no echo mode; dropped, the session runs without echo")
	case m.EchoMode != nil:
		defaults = append(defaults, s.field("echoMode"))
	}
	switch {
	case m.EchoInterval != nil && echo:
		c.rep.add(NoEquivalent, s.id, s.field("echoInterval"), "no echo mode in Herald; dropped")
	case m.EchoInterval != nil:
		c.rep.add(Adjusted, s.id, s.field("echoInterval"), "has no effect without echoMode, in MetalLB too; dropped")
	}
	out.Spec.PassiveMode = m.PassiveMode != nil && *m.PassiveMode
	if m.PassiveMode != nil && !*m.PassiveMode {
		defaults = append(defaults, s.field("passiveMode"))
	}
	out.Spec.MinimumTTL = m.MinimumTTL
	c.dropped(s, defaults)
	c.out.BFDProfiles = append(c.out.BFDProfiles, out)
}

func (c *converter) convertPool(it item[mlbPool]) {
	s, m := it.src, it.obj.Spec
	if !c.claim(config.KindIPAddressPool, it.obj.Name, s) {
		return
	}
	out := v1beta1.IPAddressPool{TypeMeta: typeMeta(config.KindIPAddressPool), ObjectMeta: c.meta(s, it.obj.ObjectMeta)}
	for i, a := range m.Addresses {
		norm := normalizeRange(a)
		if norm != a {
			c.rep.add(Adjusted, s.id, s.field(fmt.Sprintf("addresses[%d]", i)), "%q written as %q", a, norm)
		}
		out.Spec.Addresses = append(out.Spec.Addresses, v1beta1.AddressRange(norm))
	}
	out.Spec.AutoAssign = m.AutoAssign
	out.Spec.AvoidBuggyIPs = m.AvoidBuggyIPs != nil && *m.AvoidBuggyIPs
	if sa := m.ServiceAllocation; sa != nil {
		osa := &v1beta1.ServiceAllocation{
			Namespaces:         slices.Compact(slices.Sorted(slices.Values(sa.Namespaces))),
			NamespaceSelectors: sa.NamespaceSelectors,
			ServiceSelectors:   sa.ServiceSelectors,
		}
		field := s.field("serviceAllocation.priority")
		prio := 0
		if sa.Priority != nil {
			prio = *sa.Priority
		}
		switch {
		case prio > 0 && prio <= 1<<31-1:
			p := int32(prio)
			osa.Priority = &p
			c.selecting[p] = append(c.selecting[p], it.obj.Name)
		case prio < 0 || prio > 1<<31-1:
			c.rep.add(NoEquivalent, s.id, field, "%d has no defined order in MetalLB; written without a priority (the lowest)", prio)
		case sa.Priority != nil:
			c.rep.add(Adjusted, s.id, field, "0 means unset (the lowest priority) in MetalLB but the highest in Herald; written without a priority, which is the lowest in Herald")
		}
		if len(osa.Namespaces) == 0 && len(osa.NamespaceSelectors) == 0 && len(osa.ServiceSelectors) == 0 {
			// MetalLB's serviceAllocation without selectors selects every
			// Service and puts the pool before the pools without one; an
			// empty selector does the same in Herald.
			osa.ServiceSelectors = []metav1.LabelSelector{{}}
			c.rep.add(Adjusted, s.id, s.field("serviceAllocation"), "selects every Service, as in MetalLB: written with serviceSelectors [{}] so that the pool keeps its place before the pools without serviceAllocation")
		}
		out.Spec.ServiceAllocation = osa
	}
	c.out.Pools = append(c.out.Pools, out)
}

// normalizeRange writes "a - b" as "a-b".
func normalizeRange(a string) string {
	a = strings.TrimSpace(a)
	if first, last, ok := strings.Cut(a, "-"); ok {
		return strings.TrimSpace(first) + "-" + strings.TrimSpace(last)
	}
	return a
}

// reportPriorityTies reports the pools of equal priority: MetalLB tries
// them in no defined order, Herald by name.
func (c *converter) reportPriorityTies() {
	for _, p := range slices.Sorted(maps.Keys(c.selecting)) {
		names := c.selecting[p]
		if len(names) < 2 {
			continue
		}
		slices.Sort(names)
		for _, n := range names {
			c.rep.add(Differs, c.owner[config.KindIPAddressPool+"/"+n], "spec.serviceAllocation.priority",
				"pools %s share priority %d: MetalLB tries them in no defined order, Herald by name", strings.Join(names, ", "), p)
		}
	}
}

func (c *converter) convertPeer(it item[mlbPeer]) {
	s, m := it.src, it.obj.Spec
	var refuse []string
	if m.DynamicASN != "" && m.DynamicASN != "internal" && m.DynamicASN != "external" {
		c.rep.add(NoEquivalent, s.id, s.field("dynamicASN"), "%q is neither internal nor external; not converted", m.DynamicASN)
		refuse = append(refuse, "dynamicASN")
	} else if m.DynamicASN == "" && m.PeerASN == 0 {
		c.rep.add(NoEquivalent, s.id, s.field("peerASN"), "missing; not converted")
		refuse = append(refuse, "peerASN")
	}
	if m.MyASN == 0 {
		c.rep.add(NoEquivalent, s.id, s.field("myASN"), "missing; not converted")
		refuse = append(refuse, "myASN")
	}
	if m.Interface == "" && m.PeerAddress == "" {
		c.rep.add(NoEquivalent, s.id, s.field("peerAddress"), "missing; not converted")
		refuse = append(refuse, "peerAddress")
	}
	if (m.Interface != "" || m.VRF != "") && m.BFDProfile != "" {
		c.rep.add(NoEquivalent, s.id, s.field("bfdProfile"), "Herald has no BFD on an unnumbered (interface) or VRF session yet; not converted")
		refuse = append(refuse, "bfdProfile")
	}
	if len(refuse) > 0 || !c.claim(config.KindBGPPeer, it.obj.Name, s) {
		return
	}
	out := v1beta1.BGPPeer{TypeMeta: typeMeta(config.KindBGPPeer), ObjectMeta: c.meta(s, it.obj.ObjectMeta)}
	o := &out.Spec
	o.MyASN, o.PeerASN, o.DynamicASN = m.MyASN, m.PeerASN, m.DynamicASN
	if m.DynamicASN != "" {
		o.PeerASN = 0 // Herald takes exactly one of the two
	}
	o.PeerAddress, o.Interface, o.VRF = m.PeerAddress, m.Interface, m.VRF
	if m.Interface != "" {
		o.PeerAddress = ""
		c.rep.add(Differs, s.id, s.field("interface"), "Herald finds the router as the interface's one IPv6 link-local neighbour, from its router advertisements: on a node that forwards, set net.ipv6.conf.%s.accept_ra=2", m.Interface)
	}
	o.SourceAddress = m.SourceAddress
	if m.PeerPort != nil && *m.PeerPort != 0 {
		o.PeerPort = m.PeerPort
	}
	o.HoldTime, o.KeepaliveTime, o.ConnectTime = m.HoldTime, m.KeepaliveTime, m.ConnectTime
	switch {
	case m.HoldTime == nil && m.KeepaliveTime != nil:
		o.HoldTime = &metav1.Duration{Duration: 3 * m.KeepaliveTime.Duration}
		c.rep.add(Adjusted, s.id, s.field("holdTime"), "unset with keepaliveTime %s: MetalLB uses three times the keepalive, written as %s (Herald's default is 90s)", m.KeepaliveTime.Duration, o.HoldTime.Duration)
	case m.HoldTime == nil:
		c.rep.add(Differs, s.id, s.field("holdTime"), "unset: Herald uses a 90s hold time and a 30s keepalive, as MetalLB's native mode does; MetalLB's FRR mode leaves FRR's own timers")
	case m.HoldTime.Duration == 0:
		o.HoldTime, o.KeepaliveTime = nil, nil
		c.rep.add(NoEquivalent, s.id, s.field("holdTime"), "0 (no keepalives) is not supported by Herald; dropped, the session uses a 90s hold time")
	}
	o.RouterID = m.RouterID
	o.NodeSelectors = m.NodeSelectors
	o.Password = m.Password
	var defaults []string
	if ps := m.PasswordSecret; ps != nil {
		if ps.Name == "" {
			defaults = append(defaults, s.field("passwordSecret"))
		} else {
			o.PasswordSecret = &v1beta1.SecretRef{Name: ps.Name}
			ns := cmp.Or(ps.Namespace, it.obj.Namespace, "metallb-system")
			c.rep.add(Differs, s.id, s.field("passwordSecret"), "Herald reads the Secret in its own namespace: copy Secret %s/%s to herald-system", ns, ps.Name)
		}
	}
	o.BFDProfile = m.BFDProfile
	o.EBGPMultiHop = m.EBGPMultiHop != nil && *m.EBGPMultiHop
	o.EnableGracefulRestart = m.EnableGracefulRestart != nil && *m.EnableGracefulRestart
	o.DisableMP = m.DisableMP != nil && *m.DisableMP
	if m.DisableMP != nil && !*m.DisableMP {
		defaults = append(defaults, s.field("disableMP"))
	}
	switch {
	case m.DualStackAddressFamily != nil && *m.DualStackAddressFamily:
		c.rep.add(Adjusted, s.id, s.field("dualStackAddressFamily"), "Herald always carries both families on every session; dropped")
	case m.DualStackAddressFamily != nil:
		defaults = append(defaults, s.field("dualStackAddressFamily"))
	}
	if m.EBGPMultiHop != nil && !*m.EBGPMultiHop {
		defaults = append(defaults, s.field("ebgpMultiHop"))
	}
	if m.EnableGracefulRestart != nil && !*m.EnableGracefulRestart {
		defaults = append(defaults, s.field("enableGracefulRestart"))
	}
	c.dropped(s, defaults)
	c.out.Peers = append(c.out.Peers, out)
}

func (c *converter) convertL2(it item[mlbL2Adv]) {
	s, m := it.src, it.obj.Spec
	if !c.claim(config.KindL2Advertisement, it.obj.Name, s) {
		return
	}
	out := v1beta1.L2Advertisement{TypeMeta: typeMeta(config.KindL2Advertisement), ObjectMeta: c.meta(s, it.obj.ObjectMeta)}
	out.Spec.IPAddressPools = m.IPAddressPools
	out.Spec.IPAddressPoolSelectors = m.IPAddressPoolSelectors
	out.Spec.NodeSelectors = m.NodeSelectors
	out.Spec.Interfaces = m.Interfaces
	c.out.L2Advertisements = append(c.out.L2Advertisements, out)
}

func (c *converter) convertBGPAdv(it item[mlbBGPAdv]) {
	s, m := it.src, it.obj.Spec
	if !c.claim(config.KindBGPAdvertisement, it.obj.Name, s) {
		return
	}
	out := v1beta1.BGPAdvertisement{TypeMeta: typeMeta(config.KindBGPAdvertisement), ObjectMeta: c.meta(s, it.obj.ObjectMeta)}
	o := &out.Spec
	o.IPAddressPools = m.IPAddressPools
	o.IPAddressPoolSelectors = m.IPAddressPoolSelectors
	o.AggregationLength = m.AggregationLength
	o.AggregationLengthV6 = m.AggregationLengthV6
	switch {
	case m.LocalPref != nil && *m.LocalPref == 0:
		c.rep.add(Adjusted, s.id, s.field("localPref"), "0 means unset in MetalLB but a LOCAL_PREF of 0 in Herald; dropped")
	case m.LocalPref != nil:
		o.LocalPref = m.LocalPref
	}
	for i, cv := range m.Communities {
		v, ok := c.communityRef(s, s.field(fmt.Sprintf("communities[%d]", i)), cv)
		if !ok {
			continue
		}
		if slices.Contains(o.Communities, v) {
			c.rep.add(Adjusted, s.id, s.field(fmt.Sprintf("communities[%d]", i)), "%q is %q, already listed; dropped", cv, v)
			continue
		}
		o.Communities = append(o.Communities, v)
	}
	o.Peers = m.Peers
	o.NodeSelectors = m.NodeSelectors
	c.out.BGPAdvertisements = append(c.out.BGPAdvertisements, out)
}

func (c *converter) sortOutput() {
	byName := func(a, b metav1.Object) int { return cmp.Compare(a.GetName(), b.GetName()) }
	slices.SortStableFunc(c.out.BFDProfiles, func(a, b v1beta1.BFDProfile) int { return byName(&a, &b) })
	slices.SortStableFunc(c.out.Communities, func(a, b v1beta1.Community) int { return byName(&a, &b) })
	slices.SortStableFunc(c.out.Pools, func(a, b v1beta1.IPAddressPool) int { return byName(&a, &b) })
	slices.SortStableFunc(c.out.Peers, func(a, b v1beta1.BGPPeer) int { return byName(&a, &b) })
	slices.SortStableFunc(c.out.L2Advertisements, func(a, b v1beta1.L2Advertisement) int { return byName(&a, &b) })
	slices.SortStableFunc(c.out.BGPAdvertisements, func(a, b v1beta1.BGPAdvertisement) int { return byName(&a, &b) })
}

// judge runs the converted objects through Herald's configuration model,
// the one the controller judges with. An object it finds a problem with
// would not be put in effect: it is left out, and the report says why.
// Leaving one out may break the objects that name it, so this repeats
// until nothing is left to remove.
func (c *converter) judge() {
	for {
		_, problems := config.Build(c.out.ConfigInput(), nil)
		bad := map[string]bool{}
		for _, p := range problems {
			key := p.Kind + "/" + p.Name
			source := cmp.Or(c.owner[key], p.Kind+" "+p.Name)
			if p.Warning {
				c.rep.add(Differs, source, "", "Herald warns on %s: %s: %s (%s)", key, p.Field, p.Message, p.Reason)
				continue
			}
			c.rep.add(NoEquivalent, source, "", "Herald would not put %s in effect: %s: %s (%s); left out%s", key, p.Field, p.Message, p.Reason, c.conflictHint(p))
			bad[key] = true
		}
		if len(bad) == 0 {
			return
		}
		c.out.remove(bad)
		c.rep.Findings = slices.DeleteFunc(c.rep.Findings, func(f Finding) bool {
			return f.Severity == Converted && bad[strings.TrimPrefix(f.Message, "-> ")]
		})
	}
}

// conflictHint explains a localPref conflict between two advertisements
// whose aggregation lengths differ: MetalLB accepts it (their routes are
// different prefixes), Herald does not.
func (c *converter) conflictHint(p config.Problem) string {
	if p.Reason != config.ReasonLocalPrefConflict || p.Other == "" {
		return ""
	}
	find := func(name string) *v1beta1.BGPAdvertisement {
		i := slices.IndexFunc(c.out.BGPAdvertisements, func(a v1beta1.BGPAdvertisement) bool { return a.Name == name })
		if i < 0 {
			return nil
		}
		return &c.out.BGPAdvertisements[i]
	}
	a, o := find(p.Name), find(p.Other)
	if a == nil || o == nil {
		return ""
	}
	agg := func(x *v1beta1.BGPAdvertisement) string {
		return fmt.Sprintf("%d/%d", derefInt32(x.Spec.AggregationLength, 32), derefInt32(x.Spec.AggregationLengthV6, 128))
	}
	if agg(a) == agg(o) {
		return ""
	}
	return fmt.Sprintf(". MetalLB accepts it because the aggregation lengths differ (%s: %s, %s: %s, IPv4/IPv6), so the two advertise different prefixes; "+
		"Herald compares localPref per pool, peers and nodes whatever the aggregation, and has no faithful equivalent. Workarounds that change which routes go where: give the two advertisements disjoint nodeSelectors or peers, "+
		"or split the pool in two", p.Name, agg(a), p.Other, agg(o))
}

func derefInt32(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
