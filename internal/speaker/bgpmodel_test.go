package speaker

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/bgp"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/election"
)

func bgpTestConfig(t *testing.T) *config.Config {
	t.Helper()
	zone := func(z string) []metav1.LabelSelector {
		return []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": z}}}
	}
	peer := func(name, addr string, asn int64, mutate func(*v1beta1.BGPPeerSpec)) v1beta1.BGPPeer {
		p := v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.BGPPeerSpec{MyASN: 64600, PeerASN: asn, PeerAddress: addr}}
		if mutate != nil {
			mutate(&p.Spec)
		}
		return p
	}
	cfg, problems := config.Build(config.Input{
		Pools: []v1beta1.IPAddressPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/25", "2001:db8:203::/64"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "agg"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.128/25"}}},
		},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{
			{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Spec: v1beta1.BGPAdvertisementSpec{
				IPAddressPools: []string{"bgp"}, Communities: []v1beta1.CommunityValue{"65000:100", "large:64600:1:2", "no-export-alias"},
				LocalPref: ptr(int64(200)),
			}},
			{ObjectMeta: metav1.ObjectMeta{Name: "agg"}, Spec: v1beta1.BGPAdvertisementSpec{
				IPAddressPools: []string{"agg"}, AggregationLength: ptr(int32(26)), Peers: []string{"r1"},
				NodeSelectors: zone("a"), ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "web"}}},
			}},
		},
		Communities: []v1beta1.Community{{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: v1beta1.CommunitySpec{
			Communities: []v1beta1.CommunityAlias{{Name: "no-export-alias", Value: "65535:65281"}},
		}}},
		BFDProfiles: []v1beta1.BFDProfile{
			{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ptr(int32(300)), TransmitInterval: ptr(int32(300)), DetectMultiplier: ptr(int32(3))}},
			{ObjectMeta: metav1.ObjectMeta{Name: "passive"}, Spec: v1beta1.BFDProfileSpec{PassiveMode: true}},
		},
		Peers: []v1beta1.BGPPeer{
			peer("r1", "198.18.0.2", 64512, func(s *v1beta1.BGPPeerSpec) {
				s.BFDProfile = "fast"
				s.PasswordSecret = &v1beta1.SecretRef{Name: "pw"}
			}),
			peer("r2", "198.18.0.3", 64600, func(s *v1beta1.BGPPeerSpec) { s.NodeSelectors = zone("a"); s.RouterID = "10.0.0.1" }),
			peer("r3", "198.18.5.3", 64513, func(s *v1beta1.BGPPeerSpec) { s.EBGPMultiHop = true; s.EnableGracefulRestart = true }),
			peer("r4", "198.18.0.4", 64512, func(s *v1beta1.BGPPeerSpec) { s.NodeSelectors = zone("b"); s.BFDProfile = "passive" }),
		},
		Secrets: map[string]map[string][]byte{"pw": {"password": []byte("s3cret")}},
	}, nil)
	for _, p := range problems {
		if !p.Warning {
			t.Fatalf("config problem: %v", p)
		}
	}
	return cfg
}

func TestBGPNodeOf(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{LabelExcludeFromLB: ""}}}
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeHostName, Address: "n1"},
		{Type: corev1.NodeInternalIP, Address: "2001:db8:18::11"},
		{Type: corev1.NodeInternalIP, Address: "198.18.0.11"},
		{Type: corev1.NodeInternalIP, Address: "198.18.0.99"},
	}
	got := BGPNodeOf(n)
	if got.IPv4 != netip.MustParseAddr("198.18.0.11") || got.IPv6 != netip.MustParseAddr("2001:db8:18::11") || !got.Excluded {
		t.Errorf("BGPNodeOf = %+v", got)
	}
}

func TestPlanPeers(t *testing.T) {
	cfg := bgpTestConfig(t)
	v4, v6 := netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("2001:db8:18::11")
	tests := []struct {
		desc      string
		labels    map[string]string
		noIPv4    bool
		want      []string
		routerID  string
		problemOn string
	}{
		{desc: "no labels: unselected peers skipped", want: []string{"r1", "r3"}, routerID: "198.18.0.11"},
		{desc: "zone a: routerID of r2", labels: map[string]string{"zone": "a"}, want: []string{"r1", "r2", "r3"}, routerID: "10.0.0.1"},
		{desc: "zone b: passive BFD", labels: map[string]string{"zone": "b"}, want: []string{"r1", "r3", "r4"}, routerID: "198.18.0.11"},
		{desc: "no IPv4: no router ID", noIPv4: true, want: []string{"r1", "r3"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			node := BGPNode{Name: "n1", Labels: tc.labels, IPv4: v4, IPv6: v6}
			if tc.noIPv4 {
				node.IPv4 = netip.Addr{}
			}
			plan := PlanPeers(cfg, node)
			var names []string
			for _, p := range plan.Peers {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("peers = %v, want %v", names, tc.want)
			}
			if got := plan.RouterID; (tc.routerID == "" && got.IsValid()) || (tc.routerID != "" && got.String() != tc.routerID) {
				t.Errorf("router ID = %v, want %q", got, tc.routerID)
			}
			if plan.ASN != 64600 {
				t.Errorf("ASN = %d", plan.ASN)
			}
			if tc.problemOn != "" && plan.Problems[tc.problemOn] == "" {
				t.Errorf("no problem on %s: %v", tc.problemOn, plan.Problems)
			}
		})
	}
	plan := PlanPeers(cfg, BGPNode{Name: "n1", IPv4: v4, IPv6: v6})
	r1, r3 := plan.Peers[0], plan.Peers[1]
	if r1.Password != "s3cret" || r1.BFD == nil || r1.BFD.TransmitInterval != 300*time.Millisecond || r1.BFD.DetectMultiplier != 3 {
		t.Errorf("r1 = %+v, BFD %+v", r1, r1.BFD)
	}
	if r1.NextHopIPv4 != v4 || r1.NextHopIPv6 != v6 || r1.Port != 179 || r1.HoldTime != 90*time.Second {
		t.Errorf("r1 next hops/port/hold = %v %v %d %v", r1.NextHopIPv4, r1.NextHopIPv6, r1.Port, r1.HoldTime)
	}
	if r3.EBGPMultiHopTTL != 255 || !r3.GracefulRestart || r3.BFD != nil {
		t.Errorf("r3 = %+v", r3)
	}
}

func TestPlanAdvertisements(t *testing.T) {
	cfg := bgpTestConfig(t)
	svc := func(name string, labels map[string]string, local []string, ips ...string) *ServiceInfo {
		info := &ServiceInfo{Name: "ns/" + name, Labels: labels}
		for _, ip := range ips {
			info.IPs = append(info.IPs, netip.MustParseAddr(ip))
		}
		if local != nil {
			info.LocalTraffic = true
			info.EndpointNodes = election.NodeSet{}
			for _, n := range local {
				info.EndpointNodes[n] = struct{}{}
			}
		}
		return info
	}
	web := map[string]string{"app": "web"}
	zoneA := map[string]string{"zone": "a"}
	tests := []struct {
		desc    string
		node    BGPNode
		members []*ServiceInfo
		want    []string // prefix[/peers]
	}{
		{desc: "cluster, dual stack", node: BGPNode{Name: "n1"},
			members: []*ServiceInfo{svc("a", nil, nil, "203.0.113.5", "2001:db8:203::5")},
			want:    []string{"203.0.113.5/32", "2001:db8:203::5/128"}},
		{desc: "excluded node advertises nothing", node: BGPNode{Name: "n1", Excluded: true},
			members: []*ServiceInfo{svc("a", nil, nil, "203.0.113.5")}},
		{desc: "local: endpoint here", node: BGPNode{Name: "n1"},
			members: []*ServiceInfo{svc("a", nil, []string{"n1"}, "203.0.113.5")}, want: []string{"203.0.113.5/32"}},
		{desc: "local: no endpoint here", node: BGPNode{Name: "n2"},
			members: []*ServiceInfo{svc("a", nil, []string{"n1"}, "203.0.113.5")}},
		{desc: "shared IP under local needs every holder's endpoint", node: BGPNode{Name: "n1"},
			members: []*ServiceInfo{svc("a", nil, []string{"n1"}, "203.0.113.5"), svc("b", nil, []string{"n2"}, "203.0.113.5")}},
		{desc: "aggregated, peer-restricted, selected node and service", node: BGPNode{Name: "n1", Labels: zoneA},
			members: []*ServiceInfo{svc("w", web, nil, "203.0.113.130")}, want: []string{"203.0.113.128/26/r1"}},
		{desc: "node selector not matched", node: BGPNode{Name: "n1"},
			members: []*ServiceInfo{svc("w", web, nil, "203.0.113.130")}},
		{desc: "service selector not matched", node: BGPNode{Name: "n1", Labels: zoneA},
			members: []*ServiceInfo{svc("x", nil, nil, "203.0.113.130")}},
		{desc: "IP outside every pool", node: BGPNode{Name: "n1"},
			members: []*ServiceInfo{svc("a", nil, nil, "198.51.100.7")}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var got []string
			for _, a := range PlanAdvertisements(cfg, tc.node, tc.members) {
				s := a.Prefix.String()
				for _, p := range a.Peers {
					s += "/" + p
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	ads := PlanAdvertisements(cfg, BGPNode{Name: "n1"}, []*ServiceInfo{svc("a", nil, nil, "203.0.113.5")})
	a := ads[0]
	if a.LocalPref != 200 || !slices.Equal(a.Communities, []uint32{65000<<16 | 100, 65535<<16 | 65281}) ||
		!slices.Equal(a.LargeCommunities, []bgp.LargeCommunity{{GlobalAdmin: 64600, LocalData1: 1, LocalData2: 2}}) {
		t.Errorf("attributes = %+v", a)
	}
	if !sameAdvertisements(ads, PlanAdvertisements(cfg, BGPNode{Name: "n1"}, []*ServiceInfo{svc("a", nil, nil, "203.0.113.5")})) {
		t.Error("same plan compares unequal")
	}
}
