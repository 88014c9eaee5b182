package speaker

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/bgpwhy"
)

// TestJudgeBGPNoAdvertisingNode: the reporter's edge gives bgpwhy.Judge the
// facts of the cache. A Service in a pool whose only BGPAdvertisement names
// a peer this node does not have is NoAdvertisingNode; an .l2 object, or a
// node that now has the peer (its object not written yet), says nothing. A
// Node heartbeat re-judges nothing; a label change re-judges every Service.
func TestJudgeBGPNoAdvertisingNode(t *testing.T) {
	f := newSpeakerFixture(t, lbService("lonely", "203.0.113.112"))
	s := f.s
	s.bgpRep = &bgpReporter{
		sessions: cache.NewSharedIndexInformer(&cache.ListWatch{}, &v1beta1.BGPSessionState{}, 0, cache.Indexers{}),
		tracker:  bgpwhy.NewTracker(), svcs: map[string]bool{}, nodeFP: map[string]string{},
	}
	add := func(inf cache.SharedIndexInformer, obj any) {
		t.Helper()
		if err := inf.GetStore().Update(obj); err != nil {
			t.Fatal(err)
		}
	}
	add(s.herald.Pools, accepted(t, &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.112/28"}}}))
	add(s.herald.BGPAdvertisements, accepted(t, &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "lonely"},
		Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}, Peers: []string{"core"}}}))
	peer := func(sel map[string]string) *v1beta1.BGPPeer {
		p := &v1beta1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "core"},
			Spec: v1beta1.BGPPeerSpec{MyASN: 64512, PeerASN: 64512, PeerAddress: "198.18.0.2"}}
		if sel != nil {
			p.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: sel}}
		}
		return accepted(t, p)
	}
	add(s.herald.Peers, peer(map[string]string{"rack": "r2"}))
	s.pend.mark(func() { s.pend.config, s.pend.peers = true, true })
	f.step()
	s.applySettled()
	for deadline := time.Now().Add(5 * time.Second); s.st.Info("ns/lonely") == nil || len(s.st.LiveNodes()) == 0; f.step() {
		if time.Now().After(deadline) {
			t.Fatal("the Service or node n1 never reached the state")
		}
		time.Sleep(10 * time.Millisecond)
	}

	v := s.judgeBGP("ns/lonely")
	if v.Reason != bgpwhy.ReasonNoNode || v.Why != bgpwhy.ReasonNoPeer || v.NodeReasons[bgpwhy.ReasonNoPeer] != 1 {
		t.Fatalf("verdict %+v (%s), want NoAdvertisingNode: n1 without the peer", v, v.Message())
	}
	t.Logf("verdict: %s", v.Message())
	if v := s.judgeBGP("ns/absent"); v.Reason != "" {
		t.Errorf("a Service that does not exist: %+v", v)
	}

	// Announced in layer 2: not BGP's to report.
	l2 := &v1beta1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lonely.l2"},
		Status: v1beta1.ServiceAnnouncementStatus{Service: "lonely", Protocol: v1beta1.ProtocolL2, Node: "n1", IPs: []string{"203.0.113.112"}}}
	add(s.ann.inf, l2)
	if v := s.judgeBGP("ns/lonely"); v.Reason != "" {
		t.Errorf("with an .l2 object: %+v", v)
	}
	if err := s.ann.inf.GetStore().Delete(l2); err != nil {
		t.Fatal(err)
	}

	// A Node status heartbeat re-judges nothing; a label change, every
	// Service (the peers' and advertisements' nodeSelectors read labels).
	s.bgpChanged(nil, []string{"n1"}, false)
	s.bgpRep.all = false
	ctx := context.Background()
	n, err := f.kube.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue})
	if n, err = f.kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitNode(t, s, func(l map[string]string, conds int) bool { return conds == 1 })
	s.bgpChanged(nil, []string{"n1"}, false)
	if s.bgpRep.all {
		t.Error("a Node status change re-judges every Service")
	}
	n.Labels = map[string]string{"rack": "r2"}
	if _, err := f.kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitNode(t, s, func(l map[string]string, _ int) bool { return l["rack"] == "r2" })
	s.bgpChanged(nil, []string{"n1"}, false)
	if !s.bgpRep.all {
		t.Error("a Node label change does not re-judge every Service")
	}
	// n1 now has peer core: it may advertise, its object is not written
	// yet; nothing to say.
	if v := s.judgeBGP("ns/lonely"); v.Reason != "" {
		t.Errorf("a node that may advertise: %+v (%s)", v, v.Message())
	}
}

func waitNode(t *testing.T, s *Speaker, ok func(labels map[string]string, conds int) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if n, err := s.nodes.Get("n1"); err == nil && ok(n.Labels, len(n.Status.Conditions)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the Node informer did not see the change")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
