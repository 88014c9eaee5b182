package speaker

import (
	"net/netip"
	"slices"
	"strings"
)

// Group is a set of Services linked by shared IPs: they are elected as one
// unit, so that one node answers for each IP.
type Group struct {
	// Key is the election key: the group's lowest IP. It stays the same
	// when a Service starts or stops sharing one of the group's IPs, so the
	// IP does not move then.
	Key string
	// IPs are the IPs of every member, sorted.
	IPs []netip.Addr
	// Members are the Service names, sorted.
	Members []string
}

// Groups partitions Services into [Group]s incrementally: Services that
// share an IP, directly or through others, are in one group. A Groups is
// not safe for concurrent use.
type Groups struct {
	svcIPs map[string][]netip.Addr
	ipSvcs map[netip.Addr][]string
}

// NewGroups returns an empty partition.
func NewGroups() *Groups {
	return &Groups{svcIPs: make(map[string][]netip.Addr), ipSvcs: make(map[netip.Addr][]string)}
}

// KeyOf returns the key of the group of the named Service, and false if the
// Service is not known.
func (g *Groups) KeyOf(name string) (string, bool) {
	if _, ok := g.svcIPs[name]; !ok {
		return "", false
	}
	return g.group(name).Key, true
}

// Set gives the named Service the IPs ips (sorted, no duplicates; empty
// removes the Service) and returns the groups that the change touches, as
// they are now, and the keys of groups that no longer exist. Only the groups
// that held or now hold the Service are computed.
func (g *Groups) Set(name string, ips []netip.Addr) (touched []Group, gone []string) {
	old, known := g.svcIPs[name]
	if known && slices.Equal(old, ips) {
		return []Group{g.group(name)}, nil
	}
	// The groups the change can touch: the Service's old group, which may
	// split, and the groups of its new IPs, which it may merge.
	var seeds []string
	oldKeys := make(map[string]bool)
	addOld := func(s string) {
		og := g.group(s)
		if !oldKeys[og.Key] {
			oldKeys[og.Key] = true
			seeds = append(seeds, og.Members...)
		}
	}
	if known {
		addOld(name)
	}
	for _, ip := range ips {
		if ss := g.ipSvcs[ip]; len(ss) > 0 {
			addOld(ss[0])
		}
	}
	if known {
		for _, ip := range old {
			g.ipSvcs[ip] = slices.DeleteFunc(g.ipSvcs[ip], func(s string) bool { return s == name })
			if len(g.ipSvcs[ip]) == 0 {
				delete(g.ipSvcs, ip)
			}
		}
		delete(g.svcIPs, name)
	}
	if len(ips) > 0 {
		g.svcIPs[name] = slices.Clone(ips)
		for _, ip := range ips {
			g.ipSvcs[ip] = append(g.ipSvcs[ip], name)
		}
		seeds = append(seeds, name)
	}
	seen := make(map[string]bool)
	for _, s := range seeds {
		if seen[s] {
			continue
		}
		if _, ok := g.svcIPs[s]; !ok {
			continue
		}
		grp := g.group(s)
		for _, m := range grp.Members {
			seen[m] = true
		}
		touched = append(touched, grp)
		delete(oldKeys, grp.Key)
	}
	for k := range oldKeys {
		gone = append(gone, k)
	}
	slices.Sort(gone)
	slices.SortFunc(touched, func(a, b Group) int { return strings.Compare(a.Key, b.Key) })
	return touched, gone
}

// group walks the IPs shared with the named Service.
func (g *Groups) group(name string) Group {
	members := []string{name}
	seen := map[string]bool{name: true}
	var ips []netip.Addr
	for i := 0; i < len(members); i++ {
		for _, ip := range g.svcIPs[members[i]] {
			if slices.Contains(ips, ip) {
				continue
			}
			ips = append(ips, ip)
			for _, s := range g.ipSvcs[ip] {
				if !seen[s] {
					seen[s] = true
					members = append(members, s)
				}
			}
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	slices.Sort(members)
	grp := Group{IPs: ips, Members: members}
	if len(ips) > 0 {
		grp.Key = ips[0].String()
	}
	return grp
}
