package bgpwhy

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/api/v1beta1"
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
			v := Judge(c.anns, state)
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
	// A flap shorter than the delay is never reported.
	tr.Set("ns/api", down, t0.Add(40*time.Second))
	tr.Set("ns/api", Verdict{}, t0.Add(42*time.Second))
	if d := tr.Due(t0.Add(60 * time.Second)); len(d) != 0 {
		t.Fatalf("a flap was reported: %+v", d)
	}
}
