package speaker

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/election"
)

func ptr[T any](v T) *T { return &v }

func lbService(name string, ips ...string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"app": name}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return svc
}

func TestServiceInfoOf(t *testing.T) {
	tests := []struct {
		desc    string
		svc     func() *corev1.Service
		class   string
		ok      bool
		ips     []string
		local   bool
		epNodes []string
	}{
		{desc: "dual stack, sorted and deduplicated",
			svc: func() *corev1.Service {
				return lbService("a", "2001:db8::1", "198.18.0.200", "198.18.0.200", "not-an-ip")
			},
			ok: true, ips: []string{"198.18.0.200", "2001:db8::1"}},
		{desc: "no IP yet", svc: func() *corev1.Service { return lbService("a") }},
		{desc: "ClusterIP",
			svc: func() *corev1.Service {
				s := lbService("a", "198.18.0.200")
				s.Spec.Type = corev1.ServiceTypeClusterIP
				return s
			}},
		{desc: "another class",
			svc: func() *corev1.Service {
				s := lbService("a", "198.18.0.200")
				s.Spec.LoadBalancerClass = ptr("other")
				return s
			}},
		{desc: "our class", class: "herald",
			svc: func() *corev1.Service {
				s := lbService("a", "198.18.0.200")
				s.Spec.LoadBalancerClass = ptr("herald")
				return s
			}, ok: true, ips: []string{"198.18.0.200"}},
		{desc: "no class while we have one", class: "herald",
			svc: func() *corev1.Service { return lbService("a", "198.18.0.200") }},
		{desc: "local traffic reads endpoints",
			svc: func() *corev1.Service {
				s := lbService("a", "198.18.0.200")
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				return s
			}, ok: true, ips: []string{"198.18.0.200"}, local: true, epNodes: []string{"n1", "n3"}},
	}
	eps := []*discoveryv1.EndpointSlice{{Endpoints: []discoveryv1.Endpoint{
		{NodeName: ptr("n1")},
		{NodeName: ptr("n3"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true)}},
	}}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			info, ok := ServiceInfoOf(tc.svc(), eps, tc.class)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			var got []string
			for _, ip := range info.IPs {
				got = append(got, ip.String())
			}
			if !slices.Equal(got, tc.ips) {
				t.Errorf("IPs = %v, want %v", got, tc.ips)
			}
			if info.Name != "ns/a" || info.LocalTraffic != tc.local {
				t.Errorf("info = %+v", info)
			}
			if tc.local {
				if got := sortedSet(info.EndpointNodes); !slices.Equal(got, tc.epNodes) {
					t.Errorf("endpoint nodes = %v, want %v", got, tc.epNodes)
				}
			} else if info.EndpointNodes != nil {
				t.Errorf("endpoint nodes read under Cluster policy")
			}
		})
	}
}

func sortedSet(s election.NodeSet) []string {
	var out []string
	for n := range s {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func TestEndpointNodes(t *testing.T) {
	tests := []struct {
		desc string
		eps  []discoveryv1.Endpoint
		want []string
	}{
		{desc: "nil ready counts as ready", eps: []discoveryv1.Endpoint{{NodeName: ptr("a")}}, want: []string{"a"}},
		{desc: "not ready, not serving", eps: []discoveryv1.Endpoint{
			{NodeName: ptr("a"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}}}},
		{desc: "terminating but serving", eps: []discoveryv1.Endpoint{
			{NodeName: ptr("a"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}}},
			want: []string{"a"}},
		{desc: "no node name", eps: []discoveryv1.Endpoint{{}, {NodeName: ptr("")}}},
		{desc: "several slices and nodes", eps: []discoveryv1.Endpoint{
			{NodeName: ptr("b")}, {NodeName: ptr("a")}, {NodeName: ptr("b")}}, want: []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var slices []*discoveryv1.EndpointSlice
			for _, ep := range tc.eps {
				slices = append(slices, &discoveryv1.EndpointSlice{Endpoints: []discoveryv1.Endpoint{ep}})
			}
			if got := sortedSet(EndpointNodes(slices)); !equalStrings(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func equalStrings(a, b []string) bool { return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b)) }

func TestNodeOf(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}}}
	if got := NodeOf(n, []string{"eth0"}); got.Excluded || got.Name != "n1" || !slices.Equal(got.Interfaces, []string{"eth0"}) {
		t.Errorf("plain node: %+v", got)
	}
	n.Labels[LabelExcludeFromLB] = ""
	if !NodeOf(n, nil).Excluded {
		t.Error("exclude label ignored")
	}
	delete(n.Labels, LabelExcludeFromLB)
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}}
	if !NodeOf(n, nil).Excluded {
		t.Error("NetworkUnavailable ignored")
	}
}

func TestMeta(t *testing.T) {
	if got := DecodeMeta(EncodeMeta([]string{"eth0", "eth1"}, nil)); !slices.Equal(got, []string{"eth0", "eth1"}) {
		t.Errorf("round trip: %v", got)
	}
	if got := DecodeMeta(EncodeMeta(nil, nil)); got == nil || len(got) != 0 {
		t.Errorf("no interfaces must decode as empty, not unknown: %#v", got)
	}
	if DecodeMeta(nil) != nil || DecodeMeta([]byte("garbage")) != nil {
		t.Error("empty or bad meta must decode as unknown")
	}
	many := make([]string, 100)
	for i := range many {
		many[i] = "interface-with-a-long-name"
	}
	if b := EncodeMeta(many, nil); b != nil {
		t.Errorf("oversized meta encoded: %d bytes", len(b))
	}
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	pool := func(name string, addrs ...string) v1beta1.IPAddressPool {
		p := v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for _, a := range addrs {
			p.Spec.Addresses = append(p.Spec.Addresses, v1beta1.AddressRange(a))
		}
		return p
	}
	l2 := func(name string, pools []string, mutate func(*v1beta1.L2Advertisement)) v1beta1.L2Advertisement {
		a := v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
		a.Spec.IPAddressPools = pools
		if mutate != nil {
			mutate(&a)
		}
		return a
	}
	cfg, problems := config.Build(config.Input{
		Pools: []v1beta1.IPAddressPool{
			pool("l2", "198.18.0.200-198.18.0.250", "2001:db8:18::200-2001:db8:18::250"),
			pool("zoned", "198.18.1.0/24"),
			pool("bgp", "203.0.113.0/24"),
		},
		L2Advertisements: []v1beta1.L2Advertisement{
			l2("all", []string{"l2"}, nil),
			l2("zone-a", []string{"zoned"}, func(a *v1beta1.L2Advertisement) {
				a.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}}
				a.Spec.Interfaces = []string{"eth1"}
			}),
			l2("web-only", []string{"zoned"}, func(a *v1beta1.L2Advertisement) {
				a.Spec.ServiceSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "web"}}}
			}),
		},
	}, nil)
	if len(problems) > 0 {
		t.Fatalf("config problems: %v", problems)
	}
	return cfg
}

func TestElect(t *testing.T) {
	advs := NewAdvertisements(testConfig(t))
	info := func(name string, ips ...string) *ServiceInfo {
		i := &ServiceInfo{Name: "ns/" + name, Labels: map[string]string{"app": name}}
		for _, s := range ips {
			i.IPs = append(i.IPs, netip.MustParseAddr(s))
		}
		return i
	}
	zoneA := &election.Node{Name: "n1", Labels: map[string]string{"zone": "a"}, Interfaces: []string{"eth0", "eth1"}}
	zoneB := &election.Node{Name: "n2", Labels: map[string]string{"zone": "b"}, Interfaces: []string{"eth0"}}

	t.Run("dual stack announces both", func(t *testing.T) {
		svc, ips := advs.Elect("k", []*ServiceInfo{info("db", "198.18.0.200", "2001:db8:18::200")})
		if len(ips) != 2 || !svc.Eligible(zoneA) || !svc.Eligible(zoneB) {
			t.Errorf("ips %v, eligible %v %v", ips, svc.Eligible(zoneA), svc.Eligible(zoneB))
		}
		if _, all := svc.Interfaces(zoneB); !all {
			t.Error("advertisement without interfaces must allow all")
		}
	})
	t.Run("IP of a pool without L2 advertisement", func(t *testing.T) {
		svc, ips := advs.Elect("k", []*ServiceInfo{info("db", "203.0.113.5")})
		if ips != nil || svc.Eligible(zoneA) {
			t.Errorf("BGP-only IP elected: %v", ips)
		}
	})
	t.Run("node selector and interfaces", func(t *testing.T) {
		svc, ips := advs.Elect("k", []*ServiceInfo{info("db", "198.18.1.7")})
		if len(ips) != 1 || !svc.Eligible(zoneA) || svc.Eligible(zoneB) {
			t.Fatalf("ips %v, eligible %v %v", ips, svc.Eligible(zoneA), svc.Eligible(zoneB))
		}
		if names, all := svc.Interfaces(zoneA); all || !slices.Equal(names, []string{"eth1"}) {
			t.Errorf("interfaces %v %v", names, all)
		}
	})
	t.Run("service selector adds an advertisement", func(t *testing.T) {
		svc, _ := advs.Elect("k", []*ServiceInfo{info("web", "198.18.1.7")})
		if !svc.Eligible(zoneB) {
			t.Error("web-only advertisement not applied")
		}
	})
	t.Run("shared IP: local traffic needs endpoints of every local member", func(t *testing.T) {
		a, b := info("a", "198.18.0.201"), info("b", "198.18.0.201")
		a.LocalTraffic, a.EndpointNodes = true, election.NewNodeSet("n1", "n2")
		b.LocalTraffic, b.EndpointNodes = true, election.NewNodeSet("n2")
		svc, _ := advs.Elect("k", []*ServiceInfo{a, b})
		if svc.Eligible(zoneA) || !svc.Eligible(zoneB) {
			t.Errorf("eligible n1 %v n2 %v, want false true", svc.Eligible(zoneA), svc.Eligible(zoneB))
		}
		if a.EndpointNodes.Has("n1") == false {
			t.Error("Elect modified a member's endpoint set")
		}
	})
	t.Run("no configuration", func(t *testing.T) {
		if _, ips := NewAdvertisements(nil).Elect("k", []*ServiceInfo{info("a", "198.18.0.200")}); ips != nil {
			t.Error("announced without configuration")
		}
	})
}
