package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/election"
)

// stateConfig builds a snapshot with pools "l2" (198.18.0.200-250) and
// "zoned" (198.18.1.0/24), each with its own L2Advertisement; zonedIfaces
// are the interfaces of zoned's, extra pools are added without one.
func stateConfig(t *testing.T, l2Range string, zonedIfaces []string, extra ...string) *config.Config {
	t.Helper()
	in := config.Input{
		Pools: []v1beta1.IPAddressPool{
			{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{v1beta1.AddressRange(l2Range)}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "zoned"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"198.18.1.0/24"}}},
		},
		L2Advertisements: []v1beta1.L2Advertisement{
			{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "zone"}, Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"zoned"}, Interfaces: zonedIfaces}},
		},
	}
	for i, r := range extra {
		in.Pools = append(in.Pools, v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("extra%d", i)},
			Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{v1beta1.AddressRange(r)}}})
	}
	cfg, problems := config.Build(in, nil)
	if len(problems) > 0 {
		t.Fatalf("config problems: %v", problems)
	}
	return cfg
}

func svcInfo(name string, ips ...string) *ServiceInfo {
	i := &ServiceInfo{Name: "ns/" + name}
	for _, s := range ips {
		i.IPs = append(i.IPs, netip.MustParseAddr(s))
	}
	slices.SortFunc(i.IPs, netip.Addr.Compare)
	return i
}

func node(name string) *election.Node {
	return &election.Node{Name: name, Interfaces: []string{"eth0", "eth1"}}
}

func announcedIPs(p Plan) []netip.Addr {
	var out []netip.Addr
	for _, a := range p.Announce {
		out = append(out, a.IP)
	}
	return out
}

// newState is a settled state of node n1, alone, with the standard
// configuration.
func newState(t *testing.T) *State {
	t.Helper()
	st := NewState("n1", nil)
	keys := map[string]bool{}
	st.SetConfig(stateConfig(t, "198.18.0.200-198.18.0.250", nil), keys, nil)
	st.SetNode("n1", node("n1"), keys)
	st.Settle(keys)
	st.Reconcile(keys)
	return st
}

func TestStateSettleGate(t *testing.T) {
	st := NewState("n1", nil)
	keys := map[string]bool{}
	st.SetConfig(stateConfig(t, "198.18.0.200-198.18.0.250", nil), keys, nil)
	st.SetNode("n1", node("n1"), keys)
	st.SetService("ns/a", svcInfo("a", "198.18.0.200"), keys)
	if p := st.Reconcile(keys); !p.Empty() {
		t.Fatalf("an unsettled node announced: %+v", p)
	}
	if got := st.Announced(); len(got) != 0 {
		t.Fatalf("unsettled node records %v as announced", got)
	}
	keys = map[string]bool{}
	st.Settle(keys)
	p := st.Reconcile(keys)
	if len(p.Announce) != 1 || p.Announce[0].IP.String() != "198.18.0.200" || !p.Announce[0].New || p.Announce[0].Interfaces != nil {
		t.Fatalf("after settling: plan %+v, want a new announcement of 198.18.0.200 on every interface", p)
	}
	if p := st.Reconcile(map[string]bool{"198.18.0.200": true}); !p.Empty() {
		t.Fatalf("reconciling again changed something: %+v", p)
	}
}

// TestStateFailover: a node that joins takes some keys; this node withdraws
// exactly those, and the plan names the new owner.
func TestStateFailover(t *testing.T) {
	st := newState(t)
	keys := map[string]bool{}
	for i := range 20 {
		st.SetService(fmt.Sprintf("ns/s%d", i), svcInfo(fmt.Sprintf("s%d", i), fmt.Sprintf("198.18.0.%d", 200+i)), keys)
	}
	if p := st.Reconcile(keys); len(p.Announce) != 20 || len(p.Withdraw) != 0 {
		t.Fatalf("alone, node n1 announces %d and withdraws %d, want 20 and 0", len(p.Announce), len(p.Withdraw))
	}
	keys = map[string]bool{}
	st.SetNode("n2", node("n2"), keys)
	p := st.Reconcile(keys)
	if len(p.Withdraw) == 0 || len(p.Withdraw) == 20 {
		t.Fatalf("n2 joined and n1 withdrew %d of 20 keys", len(p.Withdraw))
	}
	if len(p.Announce) != 0 {
		t.Fatalf("n1 announced %v when n2 joined", announcedIPs(p))
	}
	for _, s := range p.Stopped {
		if s.Next != "n2" {
			t.Errorf("key %s stopped with next owner %q, want n2", s.Key, s.Next)
		}
		if owner, _ := st.Owner(s.Key); owner != "n2" {
			t.Errorf("key %s withdrawn but owned by %s", s.Key, owner)
		}
	}
	for _, ip := range st.Announced() {
		if owner, _ := st.Owner(ip.String()); owner != "n1" {
			t.Errorf("n1 still announces %s, owned by %s", ip, owner)
		}
	}
	given := len(p.Withdraw)
	keys = map[string]bool{}
	st.SetNode("n2", nil, keys)
	p = st.Reconcile(keys)
	if len(p.Announce) != given || len(st.Announced()) != 20 {
		t.Fatalf("n2 left: n1 took back %d keys (it had given %d), announces %d", len(p.Announce), given, len(st.Announced()))
	}
}

// TestStateIPMovesBetweenKeys: when a Service starts sharing an IP with one
// of a lower key, the IP changes keys; withdrawals come first in the plan,
// so it ends up announced.
func TestStateIPMovesBetweenKeys(t *testing.T) {
	st := newState(t)
	keys := map[string]bool{}
	st.SetService("ns/a", svcInfo("a", "198.18.0.210"), keys)
	st.Reconcile(keys)
	keys = map[string]bool{}
	st.SetService("ns/b", svcInfo("b", "198.18.0.205", "198.18.0.210"), keys)
	p := st.Reconcile(keys)
	x := netip.MustParseAddr("198.18.0.210")
	if !slices.Contains(p.Withdraw, x) || !slices.Contains(announcedIPs(p), x) {
		t.Fatalf("plan %+v: the IP must be withdrawn from its old key and announced under the new one", p)
	}
	if got := st.Announced(); len(got) != 2 {
		t.Fatalf("announced %v, want both IPs", got)
	}
	keys = map[string]bool{}
	st.SetService("ns/b", nil, keys)
	st.SetService("ns/a", nil, keys)
	p = st.Reconcile(keys)
	if len(p.Withdraw) != 2 || len(st.Announced()) != 0 {
		t.Fatalf("Services deleted: plan %+v, still announced %v", p, st.Announced())
	}
}

// TestStateConfigIncremental: a snapshot re-elects only the keys of the
// pools it changes for layer 2.
func TestStateConfigIncremental(t *testing.T) {
	st := newState(t)
	keys := map[string]bool{}
	for i := range 10 {
		st.SetService(fmt.Sprintf("ns/l%d", i), svcInfo("l", fmt.Sprintf("198.18.0.%d", 200+i)), keys)
		st.SetService(fmt.Sprintf("ns/z%d", i), svcInfo("z", fmt.Sprintf("198.18.1.%d", 10+i)), keys)
	}
	st.Reconcile(keys)
	elections := func(cfg *config.Config) (uint64, Plan) {
		t.Helper()
		before := st.Elections()
		keys := map[string]bool{}
		st.SetConfig(cfg, keys, nil)
		return st.Elections() - before, st.Reconcile(keys)
	}
	if n, _ := elections(stateConfig(t, "198.18.0.200-198.18.0.250", nil)); n != 0 {
		t.Errorf("the same configuration, built again, ran %d elections", n)
	}
	if n, _ := elections(stateConfig(t, "198.18.0.200-198.18.0.250", nil, "203.0.113.0/24")); n != 0 {
		t.Errorf("a new pool that holds none of the IPs ran %d elections", n)
	}
	n, p := elections(stateConfig(t, "198.18.0.200-198.18.0.250", []string{"eth1"}, "203.0.113.0/24"))
	if n != 10 {
		t.Errorf("changing the zoned pool's advertisement ran %d elections, want its 10 keys", n)
	}
	if len(p.Announce) != 10 || p.Announce[0].New || !slices.Equal(p.Announce[0].Interfaces, []string{"eth1"}) {
		t.Errorf("the zoned IPs must move to eth1 only: %+v", p.Announce)
	}
	n, p = elections(stateConfig(t, "198.18.0.205-198.18.0.250", []string{"eth1"}, "203.0.113.0/24"))
	if n != 10 {
		t.Errorf("shrinking the l2 pool ran %d elections, want its 10 keys", n)
	}
	if len(p.Withdraw) != 5 {
		t.Errorf("shrinking the l2 pool withdrew %v, want the 5 IPs out of it", p.Withdraw)
	}
}

// TestStateConfigBGPKeys: a snapshot hands BGP planning only the keys of
// the pools whose BGP settings it changes, and elects nothing for them.
func TestStateConfigBGPKeys(t *testing.T) {
	withBGP := func(localPref int64) *config.Config {
		cfg := stateConfig(t, "198.18.0.200-198.18.0.250", nil)
		in := config.Input{
			Pools: []v1beta1.IPAddressPool{
				{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"198.18.0.200-198.18.0.250"}}},
				{ObjectMeta: metav1.ObjectMeta{Name: "zoned"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"198.18.1.0/24"}}},
			},
			BGPAdvertisements: []v1beta1.BGPAdvertisement{
				{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"l2"}}},
				{ObjectMeta: metav1.ObjectMeta{Name: "zoned"}, Spec: v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"zoned"}, LocalPref: &localPref}},
			},
		}
		b, problems := config.Build(in, nil)
		if len(problems) > 0 {
			t.Fatalf("config problems: %v", problems)
		}
		cfg.BGPAdvertisements = b.BGPAdvertisements
		return cfg
	}
	st := newState(t)
	keys := map[string]bool{}
	st.SetConfig(withBGP(100), keys, nil)
	for i := range 10 {
		st.SetService(fmt.Sprintf("ns/l%d", i), svcInfo("l", fmt.Sprintf("198.18.0.%d", 200+i)), keys)
		st.SetService(fmt.Sprintf("ns/z%d", i), svcInfo("z", fmt.Sprintf("198.18.1.%d", 10+i)), keys)
	}
	st.Reconcile(keys)
	touched := func(cfg *config.Config) (uint64, map[string]bool) {
		t.Helper()
		before := st.Elections()
		keys, bgpKeys := map[string]bool{}, map[string]bool{}
		st.SetConfig(cfg, keys, bgpKeys)
		st.Reconcile(keys)
		return st.Elections() - before, bgpKeys
	}
	if n, bk := touched(withBGP(100)); n != 0 || len(bk) != 0 {
		t.Errorf("the same configuration, built again: %d elections, BGP keys %v", n, bk)
	}
	n, bk := touched(withBGP(200))
	if n != 0 {
		t.Errorf("a BGP-only change ran %d layer 2 elections", n)
	}
	if len(bk) != 10 {
		t.Fatalf("changing the zoned pool's BGPAdvertisement touched BGP keys %v, want the 10 keys of zoned", bk)
	}
	for k := range bk {
		for _, m := range st.Members(k) {
			if info := st.Info(m); info == nil || !netip.MustParsePrefix("198.18.1.0/24").Contains(info.IPs[0]) {
				t.Errorf("key %s of %s is not in pool zoned", k, m)
			}
		}
	}
}

// TestStatePreferredNodes: an L2Advertisement's preferredNodeSelectors
// give the IP to the preferred node while it is a candidate, whatever the
// hash says; a configuration that only adds the preference re-elects.
func TestStatePreferredNodes(t *testing.T) {
	ip := "198.18.0.200"
	key := ip // the election key of a group is its lowest IP
	names := []string{"n1", "n2", "n3"}
	// The node the hash would not pick, so the preference must do it.
	preferred := election.Rank(key, names)[2]
	build := func(prefer bool) *config.Config {
		l2 := v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}}
		if prefer {
			l2.PreferredNodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"role": "edge"}}}
		}
		cfg, problems := config.Build(config.Input{
			Pools: []v1beta1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "l2"},
				Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"198.18.0.200-198.18.0.250"}}}},
			L2Advertisements: []v1beta1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "all"}, Spec: l2}},
		}, nil)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		return cfg
	}
	st := NewState("n1", nil)
	keys := map[string]bool{}
	st.SetConfig(build(false), keys, nil)
	for _, n := range names {
		c := node(n)
		if n == preferred {
			c.Labels = map[string]string{"role": "edge"}
		}
		st.SetNode(n, c, keys)
	}
	st.SetService("ns/web", svcInfo("web", ip), keys)
	if o, _ := st.Owner(key); o != election.Rank(key, names)[0] {
		t.Fatalf("owner %q without a preference, want the hash's %q", o, election.Rank(key, names)[0])
	}
	st.SetConfig(build(true), keys, nil)
	if o, _ := st.Owner(key); o != preferred {
		t.Fatalf("owner %q, want the preferred %q", o, preferred)
	}
	st.SetNode(preferred, nil, keys)
	if o, _ := st.Owner(key); o != election.Rank(key, names)[0] {
		t.Fatalf("owner %q once the preferred node left, want %q", o, election.Rank(key, names)[0])
	}
}
