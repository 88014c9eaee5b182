package bgpwhy

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/election"
)

func bgpAnn(node string, ips []string, peers ...string) v1beta1.ServiceAnnouncementStatus {
	return v1beta1.ServiceAnnouncementStatus{Service: "web", Protocol: v1beta1.ProtocolBGP, Node: node, IPs: ips, Peers: peers}
}

func TestJudge(t *testing.T) {
	ip := []string{"203.0.113.1"}
	states := map[string]string{
		"n1/edge": "Established",
		"n2/edge": "Active",
		"n1/core": "Idle",
		"n3/edge": "Connect",
	}
	state := func(node, peer string) (string, bool) {
		s, ok := states[node+"/"+peer]
		return s, ok
	}
	for _, c := range []struct {
		name   string
		anns   []v1beta1.ServiceAnnouncementStatus
		reason string
		up     int
		words  []string
	}{
		{name: "no advertising node says nothing", anns: nil},
		{name: "an L2 object is not BGP's", anns: []v1beta1.ServiceAnnouncementStatus{{Protocol: v1beta1.ProtocolL2, Node: "n2", IPs: ip}}},
		{name: "one established session is enough", anns: []v1beta1.ServiceAnnouncementStatus{bgpAnn("n1", ip, "edge", "core"), bgpAnn("n2", ip, "edge")}, up: 1},
		{name: "every session down", anns: []v1beta1.ServiceAnnouncementStatus{bgpAnn("n2", ip, "edge"), bgpAnn("n3", ip, "edge")},
			reason: ReasonNoSession, words: []string{"(n2,n3)", "n2 to peer edge: Active", "n3 to peer edge: Connect"}},
		{name: "established to a peer the node does not advertise to does not count",
			anns: []v1beta1.ServiceAnnouncementStatus{bgpAnn("n1", ip, "core")}, reason: ReasonNoSession, words: []string{"n1 to peer core: Idle"}},
		{name: "a session without a state object is down", anns: []v1beta1.ServiceAnnouncementStatus{bgpAnn("n4", ip, "edge")},
			reason: ReasonNoSession, words: []string{"n4 to peer edge: no BGPSessionState"}},
		{name: "a node without a peer", anns: []v1beta1.ServiceAnnouncementStatus{bgpAnn("n5", ip)},
			reason: ReasonNoSession, words: []string{"no BGPPeer on n5"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := Judge(c.anns, state, Coverage{})
			if v.Reason != c.reason || v.Up != c.up {
				t.Fatalf("reason %q up %d, want %q %d: %+v", v.Reason, v.Up, c.reason, c.up, v)
			}
			msg := v.Message()
			for _, w := range c.words {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestTrackerReportsOncePerTransition(t *testing.T) {
	tr := NewTracker()
	t0 := time.Unix(1000, 0)
	down := Verdict{Reason: ReasonNoSession, Nodes: []string{"n1"}, IPs: []string{"203.0.113.1", "2001:db8::1"}}
	tr.Set("ns/web", down, t0)
	if d := tr.Due(t0.Add(ReportDelay - time.Second)); len(d) != 0 {
		t.Fatalf("reported before the delay: %+v", d)
	}
	if d := tr.Due(t0.Add(ReportDelay)); len(d) != 1 || d[0].Service != "ns/web" {
		t.Fatalf("due after the delay: %+v", d)
	}
	// A resync decides the same: nothing new, and the delay does not restart.
	for i := 0; i < 3; i++ {
		tr.Set("ns/web", down, t0.Add(time.Duration(10+i)*time.Second))
		if d := tr.Due(t0.Add(time.Duration(10+i) * time.Second)); len(d) != 0 {
			t.Fatalf("resync %d reported again: %+v", i, d)
		}
	}
	if n := tr.IPs()[ReasonNoSession]; n != 2 {
		t.Errorf("IPs counted %d, want 2", n)
	}
	// Fixed, then broken again: a second report.
	tr.Set("ns/web", Verdict{}, t0.Add(20*time.Second))
	if n := tr.IPs()[ReasonNoSession]; n != 0 {
		t.Errorf("IPs counted %d after the fix, want 0", n)
	}
	tr.Set("ns/web", down, t0.Add(30*time.Second))
	if d := tr.Due(t0.Add(30*time.Second + ReportDelay)); len(d) != 1 {
		t.Fatalf("second breakage not reported: %+v", d)
	}
	// Broken for another reason: one more report, counted under it.
	none := Verdict{Reason: ReasonNoNode, IPs: down.IPs}
	tr.Set("ns/web", none, t0.Add(35*time.Second))
	if d := tr.Due(t0.Add(35*time.Second + ReportDelay)); len(d) != 1 || d[0].Verdict.Reason != ReasonNoNode {
		t.Fatalf("change of reason not reported: %+v", d)
	}
	if n := tr.IPs(); n[ReasonNoNode] != 2 || n[ReasonNoSession] != 0 {
		t.Errorf("IPs %v, want 2 under %s alone", n, ReasonNoNode)
	}
	tr.Set("ns/web", Verdict{}, t0.Add(39*time.Second))
	// A flap shorter than the delay is never reported.
	tr.Set("ns/api", down, t0.Add(40*time.Second))
	tr.Set("ns/api", Verdict{}, t0.Add(42*time.Second))
	if d := tr.Due(t0.Add(60 * time.Second)); len(d) != 0 {
		t.Fatalf("a flap was reported: %+v", d)
	}
}

func TestJudgeNoAdvertisingNode(t *testing.T) {
	ips := []string{"203.0.113.7", "2001:db8::7"}
	edge := Ad{Name: "edge-ad", Peers: []string{"edge"}}
	ghost := Ad{Name: "ghost-ad", Peers: []string{"ghost"}}
	rack1 := Ad{Name: "rack1-ad", Selects: func(n string) bool { return n == "n9" }}
	withEdge := []Node{{Name: "n1", Peers: []string{"edge"}}, {Name: "n2", Peers: []string{"edge", "core"}}}
	edgeAnn := []v1beta1.ServiceAnnouncementStatus{bgpAnn("n1", ips[:1], "edge")}
	up := func(string, string) (string, bool) { return Established, true }
	for _, c := range []struct {
		name  string
		anns  []v1beta1.ServiceAnnouncementStatus
		cov   Coverage
		why   election.Reason // "" when no NoAdvertisingNode verdict
		words []string
	}{
		{name: "the advertisement names a peer no node has", cov: Coverage{IPs: ips, Ads: []Ad{ghost}, Nodes: withEdge},
			why: ReasonNoPeer, words: []string{"no selected node has a BGPPeer", "2 without a matching peer", "BGPAdvertisement ghost-ad"}},
		{name: "an advertisement for every peer on nodes without any", cov: Coverage{IPs: ips, Ads: []Ad{{Name: "all"}}, Nodes: []Node{{Name: "n1"}}},
			why: ReasonNoPeer, words: []string{"1 without a matching peer"}},
		{name: "nodeSelectors select no node", cov: Coverage{IPs: ips, Ads: []Ad{rack1}, Nodes: withEdge},
			why: election.ReasonNotSelected, words: []string{"no node is selected by the nodeSelectors of a BGPAdvertisement", "2 not selected"}},
		{name: "externalTrafficPolicy Local without a ready endpoint on a peered node",
			cov: Coverage{IPs: ips, Ads: []Ad{edge}, Local: true, Nodes: []Node{{Name: "n1", Peers: []string{"edge"}}, {Name: "n3", Endpoint: true}}},
			why: election.ReasonNoEndpoint, words: []string{"externalTrafficPolicy is Local and no node with a BGP peer has a ready endpoint", "1 without a local endpoint, 1 without a matching peer"}},
		{name: "every node excluded", cov: Coverage{IPs: ips, Ads: []Ad{edge}, Nodes: []Node{{Name: "n1", Excluded: true, Peers: []string{"edge"}}}},
			why: election.ReasonExcluded, words: []string{"every node is excluded", "1 excluded"}},
		{name: "no live node", cov: Coverage{IPs: ips, Ads: []Ad{edge}},
			why: election.ReasonNoLiveNode, words: []string{"no speaker is running on a node"}},
		{name: "layer 2 announces it: not BGP's to report", cov: Coverage{IPs: ips, Ads: []Ad{ghost}, L2: true, Nodes: withEdge}},
		{name: "no BGPAdvertisement covers it: not a BGP case", cov: Coverage{IPs: ips, Nodes: withEdge}},
		{name: "a node may advertise it but wrote no object yet: nothing to say", cov: Coverage{IPs: ips, Ads: []Ad{edge}, Nodes: withEdge}},
		{name: "a node advertises it: sessions decide", anns: edgeAnn, cov: Coverage{IPs: ips, Ads: []Ad{edge}, Nodes: withEdge}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := Judge(c.anns, up, c.cov)
			if c.why == "" {
				if v.Reason != "" {
					t.Fatalf("reason %q (%s), want none", v.Reason, v.Message())
				}
				return
			}
			if v.Reason != ReasonNoNode || v.Why != c.why {
				t.Fatalf("reason %q why %q, want %q %q: %+v", v.Reason, v.Why, ReasonNoNode, c.why, v)
			}
			if len(v.IPs) != 2 {
				t.Errorf("IPs %v, want the Service's two", v.IPs)
			}
			msg := v.Message()
			for _, w := range c.words {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}
