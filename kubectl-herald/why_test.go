package main

import (
	"bytes"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/api/v1beta1"
)

func whyBase() whyInput {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{"herald.io/ip-allocated-from-pool": "l2"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.18.0.200"}}}},
	}
	return whyInput{
		svc:   svc,
		pools: []v1beta1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "l2"}}},
		l2:    []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}}}},
		nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, {ObjectMeta: metav1.ObjectMeta{Name: "node2"}}},
		events: []corev1.Event{{Reason: "Announcing", Message: "announcing 198.18.0.200 from node node1 on eth0 via ARP",
			LastTimestamp: metav1.Now()}},
	}
}

func TestDiagnose(t *testing.T) {
	excluded := map[string]string{"node.kubernetes.io/exclude-from-external-load-balancers": ""}
	for _, c := range []struct {
		name   string
		change func(in *whyInput)
		want   string // prefix of Broken; "" for none
	}{
		{"healthy", func(*whyInput) {}, ""},
		{"other class", func(in *whyInput) { c := "other"; in.svc.Spec.LoadBalancerClass = &c }, "class: "},
		{"no pool selects", func(in *whyInput) {
			in.svc.Status.LoadBalancer.Ingress = nil
			in.events = []corev1.Event{{Reason: "AllocationFailed", Message: "no pool selects this Service: ..."}}
		}, "allocation: no address: no pool selects this Service"},
		{"pool exhausted", func(in *whyInput) {
			in.svc.Status.LoadBalancer.Ingress = nil
			in.events = []corev1.Event{{Reason: "AllocationFailed", Message: `pool "l2" is exhausted`}}
		}, `allocation: no address: pool "l2" is exhausted`},
		{"no advertisement", func(in *whyInput) { in.l2 = nil }, "advertisement: "},
		{"every node excluded", func(in *whyInput) {
			in.nodes[0].Labels, in.nodes[1].Labels = excluded, excluded
		}, "eligibility: no node may announce"},
		{"ETP Local without endpoints", func(in *whyInput) {
			in.svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			in.slices = []discoveryv1.EndpointSlice{}
		}, "eligibility: externalTrafficPolicy is Local and the Service has no ready endpoint"},
		{"speaker says not announced", func(in *whyInput) {
			in.events = append(in.events, corev1.Event{Reason: "NotAnnounced", Message: "no node announces", LastTimestamp: metav1.NewTime(in.events[0].LastTimestamp.Add(1e9))})
		}, "announcement: no node announces"},
		{"BGP session down", func(in *whyInput) {
			in.l2 = nil
			in.bgpAds = []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"l2"}}}}
			in.peers = []v1beta1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "router"}}}
			in.sessions = []v1beta1.BGPSessionState{{ObjectMeta: metav1.ObjectMeta{Name: "node1-router"}, Status: v1beta1.BGPSessionStateStatus{State: "Active"}}}
		}, "bgp: no BGP session is established"},
		{"BGPAdvertisement for a peer no node has", func(in *whyInput) {
			in.l2 = nil
			in.bgpAds = []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"l2"}, Peers: []string{"ghost"}}}}
			in.peers = []v1beta1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "router"}}}
			in.sessions = []v1beta1.BGPSessionState{{ObjectMeta: metav1.ObjectMeta{Name: "node1-router"}, Status: v1beta1.BGPSessionStateStatus{Node: "node1", Peer: "router", State: "Established"}}}
		}, "bgp: no node advertises it in BGP mode: no selected node has a BGPPeer the BGPAdvertisement advertises to (2 without a matching peer) (BGPAdvertisement b)"},
		{"BGPAdvertisement whose nodeSelectors select no node", func(in *whyInput) {
			in.l2 = nil
			in.bgpAds = []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"l2"},
				NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "nowhere"}}}}}}
			in.peers = []v1beta1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "router"}}}
		}, "bgp: no node advertises it in BGP mode: no node is selected by the nodeSelectors"},
		{"every session of the advertising nodes down", func(in *whyInput) {
			in.l2 = nil
			in.bgpAds = []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"l2"}}}}
			in.announcements = []v1beta1.ServiceAnnouncement{
				{Status: v1beta1.ServiceAnnouncementStatus{Service: "web", Protocol: "BGP", Node: "node1", IPs: []string{"198.18.0.200"}, Peers: []string{"core"}}},
			}
			// node2's session is up, but node2 does not advertise the Service.
			in.sessions = []v1beta1.BGPSessionState{
				{ObjectMeta: metav1.ObjectMeta{Name: "node1-core"}, Status: v1beta1.BGPSessionStateStatus{Node: "node1", Peer: "core", State: "Active"}},
				{ObjectMeta: metav1.ObjectMeta{Name: "node2-edge"}, Status: v1beta1.BGPSessionStateStatus{Node: "node2", Peer: "edge", State: "Established"}},
			}
		}, "bgp: no BGP session is established on the nodes that advertise it (node1), so no router learns the route: node1 to peer core: Active"},
		{"one advertising node's session up", func(in *whyInput) {
			in.l2 = nil
			in.bgpAds = []v1beta1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"l2"}}}}
			in.announcements = []v1beta1.ServiceAnnouncement{
				{Status: v1beta1.ServiceAnnouncementStatus{Service: "web", Protocol: "BGP", Node: "node1", IPs: []string{"198.18.0.200"}, Peers: []string{"edge"}}},
				{Status: v1beta1.ServiceAnnouncementStatus{Service: "web", Protocol: "BGP", Node: "node2", IPs: []string{"198.18.0.200"}, Peers: []string{"edge"}}},
			}
			in.sessions = []v1beta1.BGPSessionState{
				{ObjectMeta: metav1.ObjectMeta{Name: "node1-edge"}, Status: v1beta1.BGPSessionStateStatus{Node: "node1", Peer: "edge", State: "Active"}},
				{ObjectMeta: metav1.ObjectMeta{Name: "node2-edge"}, Status: v1beta1.BGPSessionStateStatus{Node: "node2", Peer: "edge", State: "Established"}},
			}
		}, ""},
		{"the ServiceAnnouncement is the truth, not an older NotAnnounced event", func(in *whyInput) {
			in.events = append(in.events, corev1.Event{Reason: "NotAnnounced", Message: "no node announces", LastTimestamp: metav1.NewTime(in.events[0].LastTimestamp.Add(1e9))})
			in.announcements = []v1beta1.ServiceAnnouncement{{Status: v1beta1.ServiceAnnouncementStatus{Service: "web", Protocol: "L2", Node: "node2", IPs: []string{"198.18.0.200"}}}}
		}, ""},
		{"IPVS without strictARP", func(in *whyInput) {
			in.kubeProxy = &corev1.ConfigMap{Data: map[string]string{"config.conf": "mode: ipvs\nipvs:\n  strictARP: false\n"}}
		}, "strictARP: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := whyBase()
			c.change(&in)
			r := diagnose(in)
			if (c.want == "") != (r.Broken == "") || !strings.HasPrefix(r.Broken, c.want) {
				t.Fatalf("broken %q, want prefix %q; links %+v", r.Broken, c.want, r.Links)
			}
			var buf bytes.Buffer
			if err := printWhy(&buf, r, ""); err != nil {
				t.Fatal(err)
			}
			if c.want != "" && !strings.Contains(buf.String(), "Broken link: "+r.Broken) {
				t.Errorf("table lacks the broken link:\n%s", buf.String())
			}
		})
	}
}
