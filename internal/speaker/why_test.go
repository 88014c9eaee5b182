package speaker

import (
	"testing"

	"github.com/heraldlb/herald/internal/election"
)

// TestStateReportsUnannounced: a key that no node may announce is reported
// once, by the lowest-named live node only, with the closest reason, and
// again when the reason changes; it stops being reported once announced.
func TestStateReportsUnannounced(t *testing.T) {
	mk := func(self string) *State {
		st := NewState(self, nil)
		keys := map[string]bool{}
		st.SetConfig(stateConfig(t, "198.18.0.200-198.18.0.250", []string{"eth9"}), keys)
		st.SetNode("n1", &election.Node{Name: "n1", Interfaces: []string{"eth0"}, Excluded: true}, keys)
		st.SetNode("n2", &election.Node{Name: "n2", Interfaces: []string{"eth0"}, Excluded: true}, keys)
		st.Settle(keys)
		st.SetService("ns/a", svcInfo("a", "198.18.0.200"), keys)
		st.SetService("ns/z", svcInfo("z", "198.18.1.7"), keys)
		st.SetService("ns/out", svcInfo("out", "203.0.113.9"), keys) // in no pool: no advertisement
		st.Reconcile(keys)
		return st
	}
	n1, n2 := mk("n1"), mk("n2")
	if n2.Reporter() != "n1" || n1.Reporter() != "n1" {
		t.Fatalf("reporter: n1 says %q, n2 says %q; want n1", n1.Reporter(), n2.Reporter())
	}
	if got := n2.UnannouncedIPs(); got != nil {
		t.Fatalf("n2 counts %v, want nothing (not the reporter)", got)
	}
	if got := n1.UnannouncedIPs(); got[election.ReasonExcluded] != 2 || got[election.ReasonNoAdvertisement] != 1 || len(got) != 2 {
		t.Fatalf("n1 counts %v, want 2 excluded, 1 without advertisement", got)
	}

	// A reconcile with nothing new reports nothing again.
	keys := map[string]bool{"198.18.0.200": true}
	if p := n1.Reconcile(keys); len(p.Unannounced) != 0 {
		t.Fatalf("reported again: %+v", p.Unannounced)
	}

	// n2 loses the label: it announces the l2 key; the zoned key now fails on
	// the interface, which is reported once.
	keys = map[string]bool{}
	n1.SetNode("n2", &election.Node{Name: "n2", Interfaces: []string{"eth0"}}, keys)
	p := n1.Reconcile(keys)
	if len(p.Unannounced) != 1 || p.Unannounced[0].Key != "198.18.1.7" || p.Unannounced[0].Why.Reason != election.ReasonNoInterface {
		t.Fatalf("after n2 lost the label: %+v", p.Unannounced)
	}
	if got := n1.UnannouncedIPs(); got[election.ReasonNoInterface] != 1 || got[election.ReasonExcluded] != 0 {
		t.Fatalf("counts %v, want 1 without interface", got)
	}
	if p := n1.Reconcile(map[string]bool{"198.18.1.7": true}); len(p.Unannounced) != 0 {
		t.Fatalf("reported twice: %+v", p.Unannounced)
	}

	// n1 leaves: n2 becomes the reporter and reports what is still unannounced.
	keys = map[string]bool{}
	n2.SetNode("n2", &election.Node{Name: "n2", Interfaces: []string{"eth0"}}, keys)
	n2.SetNode("n1", nil, keys)
	p = n2.Reconcile(keys)
	if n2.Reporter() != "n2" || len(p.Unannounced) != 2 || p.Unannounced[0].Why.Reason != election.ReasonNoInterface ||
		p.Unannounced[1].Why.Reason != election.ReasonNoAdvertisement {
		t.Fatalf("n2 as reporter: %q %+v", n2.Reporter(), p.Unannounced)
	}
}

func TestStateUnannouncedLocalEndpoints(t *testing.T) {
	st := newState(t)
	keys := map[string]bool{}
	info := svcInfo("local", "198.18.0.210")
	info.LocalTraffic, info.EndpointNodes = true, election.NewNodeSet("elsewhere")
	st.SetService("ns/local", info, keys)
	p := st.Reconcile(keys)
	if len(p.Unannounced) != 1 || p.Unannounced[0].Why.Reason != election.ReasonNoEndpoint {
		t.Fatalf("got %+v, want NoLocalEndpoint", p.Unannounced)
	}
	info2 := svcInfo("local", "198.18.0.210")
	info2.LocalTraffic, info2.EndpointNodes = true, election.NewNodeSet("n1")
	st.SetService("ns/local", info2, keys)
	p = st.Reconcile(keys)
	if len(p.Unannounced) != 0 || len(p.Announce) != 1 || st.UnannouncedIPs()[election.ReasonNoEndpoint] != 0 {
		t.Fatalf("with an endpoint: %+v, counts %v", p, st.UnannouncedIPs())
	}
}
