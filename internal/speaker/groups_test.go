package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func keys(gs []Group) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Key)
	}
	return out
}

func TestGroups(t *testing.T) {
	type step struct {
		svc     string
		ips     []string
		touched []string // keys
		gone    []string
		members map[string][]string // key -> members, checked after the step
	}
	tests := []struct {
		desc  string
		steps []step
	}{
		{desc: "dual stack is one key, the lowest IP", steps: []step{
			{svc: "a", ips: []string{"2001:db8::1", "10.0.0.1"}, touched: []string{"10.0.0.1"},
				members: map[string][]string{"10.0.0.1": {"a"}}},
		}},
		{desc: "sharing an IP merges, unsharing splits", steps: []step{
			{svc: "a", ips: []string{"10.0.0.1"}, touched: []string{"10.0.0.1"}},
			{svc: "b", ips: []string{"10.0.0.2"}, touched: []string{"10.0.0.2"}},
			{svc: "c", ips: []string{"10.0.0.1", "10.0.0.2"}, touched: []string{"10.0.0.1"}, gone: []string{"10.0.0.2"},
				members: map[string][]string{"10.0.0.1": {"a", "b", "c"}}},
			{svc: "c", ips: nil, touched: []string{"10.0.0.1", "10.0.0.2"},
				members: map[string][]string{"10.0.0.1": {"a"}, "10.0.0.2": {"b"}}},
		}},
		{desc: "a sharing Service keeps the key", steps: []step{
			{svc: "a", ips: []string{"10.0.0.5"}, touched: []string{"10.0.0.5"}},
			{svc: "b", ips: []string{"10.0.0.5"}, touched: []string{"10.0.0.5"},
				members: map[string][]string{"10.0.0.5": {"a", "b"}}},
			{svc: "a", ips: nil, touched: []string{"10.0.0.5"},
				members: map[string][]string{"10.0.0.5": {"b"}}},
			{svc: "b", ips: nil, gone: []string{"10.0.0.5"}},
		}},
		{desc: "moving into a group with a lower IP retires the old key", steps: []step{
			{svc: "x", ips: []string{"10.0.0.9"}, touched: []string{"10.0.0.9"}},
			{svc: "y", ips: []string{"10.0.0.1"}, touched: []string{"10.0.0.1"}},
			{svc: "y", ips: []string{"10.0.0.1", "10.0.0.9"}, touched: []string{"10.0.0.1"}, gone: []string{"10.0.0.9"},
				members: map[string][]string{"10.0.0.1": {"x", "y"}}},
		}},
		{desc: "unchanged IPs touch the group only", steps: []step{
			{svc: "a", ips: []string{"10.0.0.1"}, touched: []string{"10.0.0.1"}},
			{svc: "a", ips: []string{"10.0.0.1"}, touched: []string{"10.0.0.1"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			g := NewGroups()
			for i, st := range tc.steps {
				touched, gone := g.Set(st.svc, addrs(st.ips...))
				if !equalStrings(keys(touched), st.touched) || !equalStrings(gone, st.gone) {
					t.Fatalf("step %d: touched %v gone %v, want %v %v", i, keys(touched), gone, st.touched, st.gone)
				}
				for key, want := range st.members {
					found := false
					for _, grp := range touched {
						if grp.Key == key {
							found = true
							if !slices.Equal(grp.Members, want) {
								t.Errorf("step %d: group %s members %v, want %v", i, key, grp.Members, want)
							}
						}
					}
					if !found {
						t.Errorf("step %d: group %s not touched", i, key)
					}
				}
			}
		})
	}
}

// TestGroupsOrderIndependent checks that every speaker, whatever order it
// sees the Services in, computes the same keys.
func TestGroupsOrderIndependent(t *testing.T) {
	svcs := map[string][]netip.Addr{}
	for i := range 50 {
		svcs[fmt.Sprintf("s%d", i)] = addrs(fmt.Sprintf("10.0.0.%d", i%17), fmt.Sprintf("2001:db8::%x", i%5+i))
	}
	names := make([]string, 0, len(svcs))
	for n := range svcs {
		names = append(names, n)
	}
	slices.Sort(names)
	keysOf := func(order []string) map[string]string {
		g := NewGroups()
		for _, n := range order {
			g.Set(n, svcs[n])
		}
		out := map[string]string{}
		for _, n := range names {
			out[n], _ = g.KeyOf(n)
		}
		return out
	}
	want := keysOf(names)
	rev := slices.Clone(names)
	slices.Reverse(rev)
	got := keysOf(rev)
	for _, n := range names {
		if got[n] != want[n] {
			t.Errorf("%s: key %s in reverse order, %s in order", n, got[n], want[n])
		}
	}
}
