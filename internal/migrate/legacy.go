package migrate

import (
	"fmt"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The keys of the pre-0.13 configuration, per section.
func legacyKeys(section string) []string {
	switch section {
	case "":
		return []string{"peers", "bgp-communities", "address-pools", "bfd-profiles"}
	case "peers":
		return []string{"my-asn", "peer-asn", "peer-address", "source-address", "peer-port", "hold-time", "keepalive-time",
			"router-id", "node-selectors", "password", "bfd-profile", "ebgp-multihop"}
	case "address-pools":
		return []string{"name", "protocol", "addresses", "auto-assign", "avoid-buggy-ips", "bgp-advertisements"}
	case "bgp-advertisements":
		return []string{"aggregation-length", "aggregation-length-v6", "localpref", "communities"}
	case "bfd-profiles":
		return []string{"name", "receive-interval", "transmit-interval", "detect-multiplier", "echo-interval", "echo-mode",
			"passive-mode", "minimum-ttl"}
	}
	return nil
}

// unknownKeys reports the keys of m that section does not have.
func (c *converter) unknownKeys(id, prefix, section string, m any) {
	obj, _ := m.(map[string]any)
	known := legacyKeys(section)
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if !slices.Contains(known, k) {
			c.rep.add(NoEquivalent, id, prefix+k, "unknown to this converter; dropped")
		}
	}
}

// collectLegacy turns MetalLB's pre-0.13 ConfigMap into the custom
// resources MetalLB's own converter (configmaptocrs) writes, named after
// what they come from: a pool's advertisements take the pool's name, and
// the peers are peer1, peer2... as MetalLB's converter names them.
func (c *converter) collectLegacy(id string, raw map[string]any) {
	data, _ := raw["data"].(map[string]any)
	text, _ := data["config"].(string)
	var generic map[string]any
	var cfg legacyConfig
	if err := yaml.Unmarshal([]byte(text), &generic); err != nil {
		c.rep.add(NoEquivalent, id, "data.config", "not YAML (%v); not converted", err)
		return
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		c.rep.add(NoEquivalent, id, "data.config", "cannot be decoded (%v); not converted", err)
		return
	}
	c.unknownKeys(id, "data.config.", "", generic)
	section := func(name string, i int) any {
		list, _ := generic[name].([]any)
		if i < len(list) {
			return list[i]
		}
		return nil
	}
	rename := func(prefix, kind, name string) string {
		n := heraldAliasName(name)
		switch {
		case n == name:
		case kind == kindIPAddressPool:
			c.rep.add(Differs, id, prefix+"name", "pool name %q written as %q (a Kubernetes name): Services that name the pool in the address-pool annotation must use the new name", name, n)
		default:
			c.rep.add(Adjusted, id, prefix+"name", "%s name %q written as %q (a Kubernetes name); the objects that name it follow", kind, name, n)
		}
		return n
	}

	bfdNames := map[string]string{}
	for i, b := range cfg.BFDProfiles {
		prefix := fmt.Sprintf("data.config.bfd-profiles[%d].", i)
		c.unknownKeys(id, prefix, "bfd-profiles", section("bfd-profiles", i))
		var it item[mlbBFD]
		it.src = src{id: id, prefix: prefix, legacy: true}
		it.obj.Name = rename(prefix, kindBFDProfile, b.Name)
		bfdNames[b.Name] = it.obj.Name
		sp := &it.obj.Spec
		sp.ReceiveInterval, sp.TransmitInterval, sp.DetectMultiplier = b.ReceiveInterval, b.TransmitInterval, b.DetectMultiplier
		sp.EchoInterval, sp.EchoMode, sp.PassiveMode, sp.MinimumTTL = b.EchoInterval, b.EchoMode, b.PassiveMode, b.MinimumTTL
		c.bfds = append(c.bfds, it)
	}

	if len(cfg.BGPCommunities) > 0 {
		// The prefix makes the fields read "data.config.bgp-communities[i]",
		// i in the order of the alias names.
		var it item[mlbCommunity]
		it.src = src{id: id, prefix: "data.config.bgp-", legacy: true}
		it.obj.Name = "communities"
		for _, name := range slices.Sorted(maps.Keys(cfg.BGPCommunities)) {
			it.obj.Spec.Communities = append(it.obj.Spec.Communities, struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			}{name, cfg.BGPCommunities[name]})
		}
		c.comms = append(c.comms, it)
	}

	for i, p := range cfg.Pools {
		prefix := fmt.Sprintf("data.config.address-pools[%d].", i)
		c.unknownKeys(id, prefix, "address-pools", section("address-pools", i))
		s := src{id: id, prefix: prefix, legacy: true}
		var it item[mlbPool]
		it.src = s
		it.obj.Name = rename(prefix, kindIPAddressPool, p.Name)
		it.obj.Spec.Addresses, it.obj.Spec.AutoAssign, it.obj.Spec.AvoidBuggyIPs = p.Addresses, p.AutoAssign, p.AvoidBuggyIPs
		c.pools = append(c.pools, it)
		pool := it.obj.Name
		switch p.Protocol {
		case "layer2":
			var l2 item[mlbL2Adv]
			l2.src = s
			l2.obj.Name = pool
			l2.obj.Spec.IPAddressPools = []string{pool}
			c.l2 = append(c.l2, l2)
		case "bgp":
			advs := p.BGPAdvertisements
			if len(advs) == 0 {
				advs = []legacyBGPAdv{{}}
			}
			rawPool, _ := section("address-pools", i).(map[string]any)
			rawAdvs, _ := rawPool["bgp-advertisements"].([]any)
			for j, a := range advs {
				as := src{id: id, prefix: fmt.Sprintf("%sbgp-advertisements[%d].", prefix, j), legacy: true}
				if j < len(rawAdvs) {
					c.unknownKeys(id, as.prefix, "bgp-advertisements", rawAdvs[j])
				}
				var adv item[mlbBGPAdv]
				adv.src = as
				adv.obj.Name = pool
				if j > 0 {
					adv.obj.Name = fmt.Sprintf("%s-%d", pool, j+1)
				}
				sp := &adv.obj.Spec
				sp.IPAddressPools = []string{pool}
				sp.AggregationLength, sp.AggregationLengthV6, sp.LocalPref = a.AggregationLength, a.AggregationLengthV6, a.LocalPref
				sp.Communities = a.Communities
				c.bgp = append(c.bgp, adv)
			}
		default:
			c.rep.add(NoEquivalent, id, prefix+"protocol", "%q is neither layer2 nor bgp; the pool is converted without an advertisement", p.Protocol)
		}
	}

	for i, p := range cfg.Peers {
		prefix := fmt.Sprintf("data.config.peers[%d].", i)
		c.unknownKeys(id, prefix, "peers", section("peers", i))
		var it item[mlbPeer]
		it.src = src{id: id, prefix: prefix, legacy: true}
		it.obj.Name = fmt.Sprintf("peer%d", i+1)
		sp := &it.obj.Spec
		sp.MyASN, sp.PeerASN, sp.PeerAddress, sp.SourceAddress = p.MyASN, p.PeerASN, p.PeerAddress, p.SourceAddress
		if p.PeerPort != 0 {
			sp.PeerPort = &p.PeerPort
		}
		ok := true
		for _, t := range []struct {
			field, value string
			dst          **metav1.Duration
		}{{"hold-time", p.HoldTime, &sp.HoldTime}, {"keepalive-time", p.KeepaliveTime, &sp.KeepaliveTime}} {
			if t.value == "" {
				continue
			}
			d, err := time.ParseDuration(t.value)
			if err != nil {
				c.rep.add(NoEquivalent, id, prefix+t.field, "%q is not a duration; the peer is not converted", t.value)
				ok = false
				continue
			}
			*t.dst = &metav1.Duration{Duration: d}
		}
		sp.RouterID, sp.Password = p.RouterID, p.Password
		sp.BFDProfile = p.BFDProfile
		if n, renamed := bfdNames[p.BFDProfile]; renamed {
			sp.BFDProfile = n
		}
		if p.EBGPMultiHop {
			sp.EBGPMultiHop = &p.EBGPMultiHop
		}
		for _, ns := range p.NodeSelectors {
			sel := metav1.LabelSelector{MatchLabels: ns.MatchLabels}
			for _, e := range ns.MatchExpressions {
				sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
					Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values,
				})
			}
			sp.NodeSelectors = append(sp.NodeSelectors, sel)
		}
		if ok {
			c.peers = append(c.peers, it)
		}
	}
}
