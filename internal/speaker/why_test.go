package speaker

import (
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/election"
)

// report asks st for its due reports now and again after ReportDelay.
func report(st *State, now time.Time) []Unannounced {
	if early := st.Report(now); len(early) != 0 {
		return append([]Unannounced{{Key: "reported before ReportDelay"}}, early...)
	}
	return st.Report(now.Add(ReportDelay))
}

// TestStateReportsUnannounced: a key that no node may announce is reported
// once, by the lowest-named live node only, with the closest reason, after
// ReportDelay, and again when the reason changes.
func TestStateReportsUnannounced(t *testing.T) {
	now := time.Unix(1000, 0)
	mk := func(self string) *State {
		st := NewState(self, nil)
		keys := map[string]bool{}
		st.SetConfig(stateConfig(t, "198.18.0.200-198.18.0.250", []string{"eth9"}), keys, nil)
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
	if got := report(n2, now); len(got) != 0 || n2.UnannouncedIPs() != nil {
		t.Fatalf("n2 reports %+v, counts %v; want nothing (not the reporter)", got, n2.UnannouncedIPs())
	}
	if got := report(n1, now); len(got) != 3 || got[0].Why.Reason != election.ReasonExcluded || got[2].Why.Reason != election.ReasonNoAdvertisement {
		t.Fatalf("n1 reports %+v", got)
	}
	if got := n1.UnannouncedIPs(); got[election.ReasonExcluded] != 2 || got[election.ReasonNoAdvertisement] != 1 || len(got) != 2 {
		t.Fatalf("n1 counts %v, want 2 excluded, 1 without advertisement", got)
	}
	now = now.Add(time.Minute)
	n1.Reconcile(map[string]bool{"198.18.0.200": true})
	if got := report(n1, now); len(got) != 0 {
		t.Fatalf("reported again: %+v", got)
	}

	// n2 loses the label: it announces the l2 key; the zoned key now fails on
	// the interface, which is reported once.
	keys := map[string]bool{}
	n1.SetNode("n2", &election.Node{Name: "n2", Interfaces: []string{"eth0"}}, keys)
	n1.Reconcile(keys)
	got := report(n1, now)
	if len(got) != 1 || got[0].Key != "198.18.1.7" || got[0].Why.Reason != election.ReasonNoInterface {
		t.Fatalf("after n2 lost the label: %+v", got)
	}
	if c := n1.UnannouncedIPs(); c[election.ReasonNoInterface] != 1 || c[election.ReasonExcluded] != 0 {
		t.Fatalf("counts %v, want 1 without interface", c)
	}
	n1.Reconcile(map[string]bool{"198.18.1.7": true})
	if got := report(n1, now.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("reported twice: %+v", got)
	}

	// n1 leaves: n2 becomes the reporter and reports what is still unannounced.
	keys = map[string]bool{}
	n2.SetNode("n2", &election.Node{Name: "n2", Interfaces: []string{"eth0"}}, keys)
	n2.SetNode("n1", nil, keys)
	n2.Reconcile(keys)
	got = report(n2, now)
	if n2.Reporter() != "n2" || len(got) != 2 || got[0].Why.Reason != election.ReasonNoInterface || got[1].Why.Reason != election.ReasonNoAdvertisement {
		t.Fatalf("n2 as reporter: %q %+v", n2.Reporter(), got)
	}
}

// A reason that lasts less than ReportDelay (a partial view at start) is
// never reported.
func TestStateReportDelay(t *testing.T) {
	now := time.Unix(1000, 0)
	st := newState(t)
	keys := map[string]bool{}
	info := svcInfo("local", "198.18.0.210")
	info.LocalTraffic, info.EndpointNodes = true, election.NewNodeSet("elsewhere")
	st.SetService("ns/local", info, keys)
	st.Reconcile(keys)
	if got := st.Report(now); len(got) != 0 {
		t.Fatalf("reported at once: %+v", got)
	}
	info2 := svcInfo("local", "198.18.0.210")
	info2.LocalTraffic, info2.EndpointNodes = true, election.NewNodeSet("n1")
	st.SetService("ns/local", info2, keys)
	if p := st.Reconcile(keys); len(p.Announce) != 1 {
		t.Fatalf("with an endpoint: %+v", p)
	}
	if got := st.Report(now.Add(ReportDelay)); len(got) != 0 || st.UnannouncedIPs()[election.ReasonNoEndpoint] != 0 {
		t.Fatalf("reported a reason that lasted less than ReportDelay: %+v", got)
	}
	st.SetService("ns/local", info, keys)
	st.Reconcile(keys)
	if got := report(st, now.Add(time.Minute)); len(got) != 1 || got[0].Why.Reason != election.ReasonNoEndpoint {
		t.Fatalf("got %+v, want NoLocalEndpoint", got)
	}
}
