package controller

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/config"
)

func svc(mut func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 53, Protocol: corev1.ProtocolUDP}},
			Selector:   map[string]string{"app": "web"},
		},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

func TestRequestFor(t *testing.T) {
	dual := corev1.IPFamilyPolicyRequireDualStack
	tests := []struct {
		desc     string
		svc      *corev1.Service
		check    func(t *testing.T, r allocator.Request)
		warnings int
		err      string
	}{
		{desc: "plain service", svc: svc(nil), check: func(t *testing.T, r allocator.Request) {
			if r.Key != "ns/web" || r.Namespace != "ns" || r.ServiceLabels["app"] != "web" || !slices.Equal(r.Families, []config.Family{config.IPv4}) ||
				r.FamilyPolicy != allocator.SingleStack || len(r.RequestedIPs) != 0 || r.BackendKey != "" || len(r.Ports) != 2 || r.Ports[1].Protocol != "UDP" {
				t.Errorf("request = %+v", r)
			}
		}},
		{desc: "herald annotations", svc: svc(func(s *corev1.Service) {
			s.Annotations = map[string]string{AnnotationLoadBalancerIPs: "203.0.113.7, 2001:db8::7", AnnotationAddressPool: "gold", AnnotationAllowSharedIP: "k"}
			s.Spec.LoadBalancerIP = "203.0.113.99" // the annotation wins
		}), check: func(t *testing.T, r allocator.Request) {
			want := []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::7")}
			if !slices.Equal(r.RequestedIPs, want) || r.Pool != "gold" || r.SharingKey != "k" {
				t.Errorf("request = %+v", r)
			}
		}},
		{desc: "MetalLB spellings are honoured with a warning each", svc: svc(func(s *corev1.Service) {
			s.Annotations = map[string]string{"metallb.io/address-pool": "gold", "metallb.universe.tf/allow-shared-ip": "k"}
		}), warnings: 2, check: func(t *testing.T, r allocator.Request) {
			if r.Pool != "gold" || r.SharingKey != "k" {
				t.Errorf("request = %+v", r)
			}
		}},
		{desc: "spec.loadBalancerIP", svc: svc(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "203.0.113.9" }), check: func(t *testing.T, r allocator.Request) {
			if !slices.Equal(r.RequestedIPs, []netip.Addr{netip.MustParseAddr("203.0.113.9")}) {
				t.Errorf("requested = %v", r.RequestedIPs)
			}
		}},
		{desc: "dual stack", svc: svc(func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
			s.Spec.IPFamilyPolicy = &dual
		}), check: func(t *testing.T, r allocator.Request) {
			if !slices.Equal(r.Families, []config.Family{config.IPv6, config.IPv4}) || r.FamilyPolicy != allocator.RequireDualStack {
				t.Errorf("request = %+v", r)
			}
		}},
		{desc: "ETP Local keys the backends by selector", svc: svc(func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}), check: func(t *testing.T, r allocator.Request) {
			if r.BackendKey != "selector:app=web" {
				t.Errorf("backend key = %q", r.BackendKey)
			}
		}},
		{desc: "ETP Local without selector shares with nobody", svc: svc(func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Selector = nil
		}), check: func(t *testing.T, r allocator.Request) {
			if r.BackendKey != "service:ns/web" {
				t.Errorf("backend key = %q", r.BackendKey)
			}
		}},
		{desc: "garbage in the annotation", svc: svc(func(s *corev1.Service) {
			s.Annotations = map[string]string{AnnotationLoadBalancerIPs: "203.0.113.7,nope"}
		}), err: `annotation herald.io/loadBalancerIPs: "nope" is not an IP address`},
		{desc: "garbage in spec.loadBalancerIP", svc: svc(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "1.2.3" }), err: `spec.loadBalancerIP: "1.2.3" is not an IP address`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r, warnings, err := RequestFor(tc.svc, map[string]string{"team": "a"})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != tc.warnings {
				t.Errorf("warnings = %v, want %d", warnings, tc.warnings)
			}
			if r.NamespaceLabels["team"] != "a" {
				t.Errorf("namespace labels = %v", r.NamespaceLabels)
			}
			tc.check(t, r)
		})
	}
}

func TestManages(t *testing.T) {
	other := "other"
	for _, tc := range []struct {
		desc    string
		svc     *corev1.Service
		lbClass string
		want    bool
	}{
		{"LoadBalancer without class, default", svc(nil), "", true},
		{"ClusterIP", svc(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }), "", false},
		{"other class, default", svc(func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other }), "", false},
		{"matching class", svc(func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other }), "other", true},
		{"no class when a class is configured", svc(nil), "other", false},
	} {
		if got := Manages(tc.svc, tc.lbClass); got != tc.want {
			t.Errorf("%s: Manages = %v", tc.desc, got)
		}
	}
}

func TestIngress(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")}
	in := ingressFor(addrs)
	if !sameIngress(in, addrs) || *in[0].IPMode != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ingress = %+v", in)
	}
	if sameIngress(in[:1], addrs) || sameIngress([]corev1.LoadBalancerIngress{{IP: "203.0.113.1"}, {IP: "2001:db8::1"}}, addrs) {
		t.Error("sameIngress accepts a status without ipMode or with a missing address")
	}
	if got := poolAnnotation(allocator.Allocation{IPs: addrs, Pools: []string{"a", "a"}}); got != "a" {
		t.Errorf("pool annotation = %q", got)
	}
}
