package election

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// anyAd admits every node on any interface.
var anyAd = []Advertisement{{}}

func svc(key string) Service { return Service{Key: key, Advertisements: anyAd} }

func nodeNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%d", i)
	}
	return names
}

func keys(n int) []string {
	k := make([]string, n)
	for i := range k {
		k[i] = fmt.Sprintf("ns-%d/svc-%d", i%7, i)
	}
	return k
}

// build returns a table holding nodes and services, inserted in a random
// order given by seed, mixing node and service insertions.
func build(t testing.TB, nodes []Node, svcs []Service, seed uint64) *Table {
	t.Helper()
	type op struct {
		n *Node
		s *Service
	}
	var ops []op
	for i := range nodes {
		ops = append(ops, op{n: &nodes[i]})
	}
	for i := range svcs {
		ops = append(ops, op{s: &svcs[i]})
	}
	r := rand.New(rand.NewPCG(seed, seed))
	r.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	tb := NewTable()
	for _, o := range ops {
		if o.n != nil {
			tb.SetNode(*o.n)
		} else {
			tb.SetService(*o.s)
		}
	}
	return tb
}

func plainNodes(names []string) []Node {
	ns := make([]Node, len(names))
	for i, n := range names {
		ns[i] = Node{Name: n}
	}
	return ns
}

func TestScoreIsStable(t *testing.T) {
	// These values are a contract between speaker versions: if this test
	// fails, mixed-version clusters would disagree on owners. They were
	// cross-checked with an independent implementation of the documented
	// function (FNV-1a 64 over key, 0xff, node; then fmix64).
	tests := []struct {
		desc string
		node string
		key  string
		want uint64
	}{
		{desc: "empty", node: "", key: "", want: 0x1bbd5c813c69a8d7},
		{desc: "typical", node: "worker-1", key: "default/web", want: 0x67a87b8491f3459e},
		{desc: "fqdn node", node: "node-a.example.com", key: "kube-system/ingress", want: 0xbdc677fe9b5ce75f},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if s := Score(tc.node, tc.key); s != tc.want {
				t.Fatalf("Score(%q, %q) = %#x, want %#x", tc.node, tc.key, s, tc.want)
			}
		})
	}
	if Score("ab", "c") == Score("a", "bc") {
		t.Errorf("Score does not separate node and key")
	}
}

func TestSameInputsSameOwner(t *testing.T) {
	tests := []struct {
		desc  string
		nodes int
		keys  int
	}{
		{desc: "3 nodes 100 keys", nodes: 3, keys: 100},
		{desc: "5 nodes 1000 keys", nodes: 5, keys: 1000},
		{desc: "50 nodes 2000 keys", nodes: 50, keys: 2000},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			nodes := plainNodes(nodeNames(tc.nodes))
			var svcs []Service
			for _, k := range keys(tc.keys) {
				svcs = append(svcs, svc(k))
			}
			a := build(t, nodes, svcs, 1)
			b := build(t, nodes, svcs, 2)
			names := nodeNames(tc.nodes)
			for _, s := range svcs {
				oa, _ := a.Owner(s.Key)
				ob, _ := b.Owner(s.Key)
				want, _ := Owner(s.Key, names, nil)
				if oa != ob || oa != want {
					t.Fatalf("key %q: table A says %q, table B says %q, Owner says %q", s.Key, oa, ob, want)
				}
				if r := Rank(s.Key, names); r[0] != want {
					t.Fatalf("key %q: Rank()[0] = %q, Owner = %q", s.Key, r[0], want)
				}
			}
		})
	}
}

func TestNodeLeaveMovesOnlyItsKeys(t *testing.T) {
	tests := []struct {
		desc   string
		nodes  int
		leaver int
	}{
		{desc: "3 nodes, first leaves", nodes: 3, leaver: 0},
		{desc: "5 nodes, middle leaves", nodes: 5, leaver: 2},
		{desc: "10 nodes, last leaves", nodes: 10, leaver: 9},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			names := nodeNames(tc.nodes)
			var svcs []Service
			for _, k := range keys(1000) {
				svcs = append(svcs, svc(k))
			}
			tb := build(t, plainNodes(names), svcs, 3)
			before := map[string]string{}
			for _, s := range svcs {
				before[s.Key], _ = tb.Owner(s.Key)
			}
			leaver := names[tc.leaver]
			owned := tb.Owned(leaver)
			changes := tb.RemoveNode(leaver)
			if len(changes) != len(owned) {
				t.Fatalf("%d changes, want %d (the keys %s owned)", len(changes), len(owned), leaver)
			}
			for _, c := range changes {
				if c.Old != leaver || c.New == "" || c.New == leaver {
					t.Fatalf("unexpected change %+v", c)
				}
			}
			for _, s := range svcs {
				now, _ := tb.Owner(s.Key)
				if before[s.Key] != leaver && now != before[s.Key] {
					t.Fatalf("key %q moved from %q to %q though %q left", s.Key, before[s.Key], now, leaver)
				}
			}
			// Rejoining restores exactly the old owners.
			back := tb.SetNode(Node{Name: leaver})
			if len(back) != len(owned) {
				t.Fatalf("rejoin: %d changes, want %d", len(back), len(owned))
			}
			for _, s := range svcs {
				if now, _ := tb.Owner(s.Key); now != before[s.Key] {
					t.Fatalf("after rejoin key %q is on %q, was on %q", s.Key, now, before[s.Key])
				}
			}
		})
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		desc  string
		nodes []string
		keys  int
	}{
		{desc: "1000 keys over 5 nodes", nodes: nodeNames(5), keys: 1000},
		{desc: "1000 keys over 5 fqdn nodes", nodes: []string{"a.example.com", "b.example.com", "c.example.com", "d.example.com", "e.example.com"}, keys: 1000},
		{desc: "1000 keys over 5 similar nodes", nodes: []string{"k8s-worker-01", "k8s-worker-02", "k8s-worker-03", "k8s-worker-04", "k8s-worker-05"}, keys: 1000},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			count := map[string]int{}
			for _, k := range keys(tc.keys) {
				o, _ := Owner(k, tc.nodes, nil)
				count[o]++
			}
			even := float64(tc.keys) / float64(len(tc.nodes))
			for _, n := range tc.nodes {
				if c := float64(count[n]); c < 0.8*even || c > 1.2*even {
					t.Errorf("node %s owns %d keys, want %.0f±20%%: %v", n, count[n], even, count)
				}
			}
			t.Logf("spread: %v", count)
		})
	}
}

func TestEligibility(t *testing.T) {
	names := nodeNames(5)
	labelled := func(n *Node) bool { return n.Labels["zone"] == "a" }
	tests := []struct {
		desc  string
		nodes []Node
		svc   Service
		// allowed are the nodes that may win; nil means none.
		allowed []string
	}{
		{
			desc:    "ETP Local restricts to endpoint nodes",
			nodes:   plainNodes(names),
			svc:     Service{Key: "ns/local", Advertisements: anyAd, LocalTraffic: true, EndpointNodes: NewNodeSet("node-3")},
			allowed: []string{"node-3"},
		},
		{
			desc:    "ETP Local with two endpoint nodes",
			nodes:   plainNodes(names),
			svc:     Service{Key: "ns/local", Advertisements: anyAd, LocalTraffic: true, EndpointNodes: NewNodeSet("node-1", "node-4")},
			allowed: []string{"node-1", "node-4"},
		},
		{
			desc:  "ETP Local without endpoints has no owner",
			nodes: plainNodes(names),
			svc:   Service{Key: "ns/local", Advertisements: anyAd, LocalTraffic: true},
		},
		{
			desc:    "endpoints ignored under ETP Cluster",
			nodes:   plainNodes(names[:2]),
			svc:     Service{Key: "ns/c", Advertisements: anyAd, EndpointNodes: NewNodeSet("node-9")},
			allowed: names[:2],
		},
		{
			desc:  "no advertisement, no owner",
			nodes: plainNodes(names),
			svc:   Service{Key: "ns/x"},
		},
		{
			desc: "excluded nodes never win",
			nodes: []Node{
				{Name: "node-0", Excluded: true}, {Name: "node-1", Excluded: true}, {Name: "node-2"},
			},
			svc:     svc("ns/x"),
			allowed: []string{"node-2"},
		},
		{
			desc: "node selector",
			nodes: []Node{
				{Name: "node-0"}, {Name: "node-1", Labels: map[string]string{"zone": "a"}}, {Name: "node-2"},
			},
			svc:     Service{Key: "ns/x", Advertisements: []Advertisement{{Selects: labelled}}},
			allowed: []string{"node-1"},
		},
		{
			desc: "second advertisement admits more nodes",
			nodes: []Node{
				{Name: "node-0", Interfaces: []string{"eth1"}}, {Name: "node-1", Labels: map[string]string{"zone": "a"}, Interfaces: []string{"eth0"}}, {Name: "node-2", Interfaces: []string{"eth0"}},
			},
			svc: Service{Key: "ns/x", Advertisements: []Advertisement{
				{Selects: labelled, Interfaces: []string{"eth0"}},
				{Interfaces: []string{"eth1"}},
			}},
			allowed: []string{"node-0", "node-1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			for seed := uint64(0); seed < 4; seed++ {
				tb := build(t, tc.nodes, []Service{tc.svc}, seed)
				got, ok := tb.Owner(tc.svc.Key)
				if tc.allowed == nil {
					if ok {
						t.Fatalf("owner %q, want none", got)
					}
					continue
				}
				if !slices.Contains(tc.allowed, got) {
					t.Fatalf("owner %q (ok=%v), want one of %v", got, ok, tc.allowed)
				}
			}
		})
	}
}

func TestInterfaceFallback(t *testing.T) {
	// Find a key whose top-ranked node we then strip of the interface:
	// the next node in rank order must win, not nobody.
	names := nodeNames(4)
	key := "ns/fallback"
	rank := Rank(key, names)
	tests := []struct {
		desc    string
		lacking []string // nodes without eth1
		want    string
	}{
		{desc: "winner has the interface", lacking: nil, want: rank[0]},
		{desc: "winner lacks it: second wins", lacking: rank[:1], want: rank[1]},
		{desc: "two lack it: third wins", lacking: rank[:2], want: rank[2]},
		{desc: "nobody has it", lacking: rank, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var nodes []Node
			for _, n := range names {
				ifs := []string{"eth0", "eth1"}
				if slices.Contains(tc.lacking, n) {
					ifs = []string{"eth0"}
				}
				nodes = append(nodes, Node{Name: n, Interfaces: ifs})
			}
			s := Service{Key: key, Advertisements: []Advertisement{{Interfaces: []string{"eth1"}}}}
			tb := build(t, nodes, []Service{s}, 7)
			if got, _ := tb.Owner(key); got != tc.want {
				t.Fatalf("owner %q, want %q (rank %v)", got, tc.want, rank)
			}
		})
	}
}

func TestIncrementalUpdates(t *testing.T) {
	names := nodeNames(3)
	key := "ns/web"
	rank := Rank(key, names)
	tests := []struct {
		desc  string
		apply func(tb *Table) []Change
		want  []Change
	}{
		{
			desc:  "owner becomes excluded",
			apply: func(tb *Table) []Change { return tb.SetNode(Node{Name: rank[0], Excluded: true}) },
			want:  []Change{{Key: key, Old: rank[0], New: rank[1]}},
		},
		{
			desc:  "non-owner update changes nothing",
			apply: func(tb *Table) []Change { return tb.SetNode(Node{Name: rank[2], Labels: map[string]string{"x": "y"}}) },
		},
		{
			desc: "endpoints move under ETP Local",
			apply: func(tb *Table) []Change {
				return tb.SetService(Service{Key: key, Advertisements: anyAd, LocalTraffic: true, EndpointNodes: NewNodeSet(rank[2])})
			},
			want: []Change{{Key: key, Old: rank[0], New: rank[2]}},
		},
		{
			desc:  "service removed",
			apply: func(tb *Table) []Change { return tb.RemoveService(key) },
			want:  []Change{{Key: key, Old: rank[0]}},
		},
		{
			desc:  "unknown node removed",
			apply: func(tb *Table) []Change { return tb.RemoveNode("ghost") },
		},
		{
			desc: "last node leaves",
			apply: func(tb *Table) []Change {
				tb.RemoveNode(rank[1])
				tb.RemoveNode(rank[2])
				return tb.RemoveNode(rank[0])
			},
			want: []Change{{Key: key, Old: rank[0]}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			tb := build(t, plainNodes(names), []Service{svc(key), svc("ns/other")}, 1)
			got := tc.apply(tb)
			var mine []Change
			for _, c := range got {
				if c.Key == key {
					mine = append(mine, c)
				}
			}
			if !slices.Equal(mine, tc.want) {
				t.Fatalf("changes %v, want %v", mine, tc.want)
			}
		})
	}
}

func TestServiceInterfaces(t *testing.T) {
	n := Node{Name: "n", Interfaces: []string{"eth0", "eth1"}}
	tests := []struct {
		desc    string
		ads     []Advertisement
		want    []string
		wantAll bool
	}{
		{desc: "any", ads: anyAd, wantAll: true},
		{desc: "union of admitting ads", ads: []Advertisement{{Interfaces: []string{"eth1"}}, {Interfaces: []string{"eth0", "eth9"}}}, want: []string{"eth0", "eth1"}},
		{desc: "non-admitting ad ignored", ads: []Advertisement{{Interfaces: []string{"eth1"}}, {Selects: func(*Node) bool { return false }}}, want: []string{"eth1"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := Service{Key: "k", Advertisements: tc.ads}
			got, all := s.Interfaces(&n)
			if all != tc.wantAll || !slices.Equal(got, tc.want) {
				t.Fatalf("Interfaces = %v, %v; want %v, %v", got, all, tc.want, tc.wantAll)
			}
		})
	}
}

func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{5, 100} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			names := nodeNames(n)
			ks := keys(1024)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				Owner(ks[i%len(ks)], names, nil)
				i++
			}
		})
	}
}

func BenchmarkTableNodeLeave(b *testing.B) {
	for _, nodes := range []int{5, 100} {
		b.Run(fmt.Sprintf("keys=10000/nodes=%d", nodes), func(b *testing.B) {
			names := nodeNames(nodes)
			tb := NewTable()
			for _, n := range names {
				tb.SetNode(Node{Name: n})
			}
			for _, k := range keys(10000) {
				tb.SetService(svc(k))
			}
			b.ReportAllocs()
			moved := 0
			i := 0
			for b.Loop() {
				leaver := names[i%len(names)]
				moved += len(tb.RemoveNode(leaver))
				b.StopTimer()
				tb.SetNode(Node{Name: leaver})
				b.StartTimer()
				i++
			}
			b.ReportMetric(float64(moved)/float64(b.N), "keys-moved/op")
		})
	}
}

func BenchmarkTableNodeJoin(b *testing.B) {
	names := nodeNames(5)
	tb := NewTable()
	for _, n := range names {
		tb.SetNode(Node{Name: n})
	}
	for _, k := range keys(10000) {
		tb.SetService(svc(k))
	}
	b.ReportAllocs()
	for b.Loop() {
		tb.SetNode(Node{Name: "joiner"})
		b.StopTimer()
		tb.RemoveNode("joiner")
		b.StartTimer()
	}
}

func TestMatchInterface(t *testing.T) {
	for _, c := range []struct {
		p, name string
		want    bool
	}{
		{"eth0", "eth0", true}, {"eth0", "eth1", false}, {"eth*", "eth1", true}, {"cilium_*", "cilium_host", true},
		{"flannel.*", "flannel.1", true}, {"veth*", "eth0", false}, {"bond[01]", "bond1", true}, {"[", "[", true}, {"[", "x", false},
	} {
		if got := MatchInterface(c.p, c.name); got != c.want {
			t.Errorf("MatchInterface(%q, %q) = %v, want %v", c.p, c.name, got, c.want)
		}
	}
}

func TestWhyNot(t *testing.T) {
	zone := func(n *Node) bool { return n.Labels["zone"] == "a" }
	svc := Service{Key: "k", Advertisements: []Advertisement{{Selects: zone, Interfaces: []string{"en*"}}}, LocalTraffic: true,
		EndpointNodes: NewNodeSet("ok")}
	for _, c := range []struct {
		n    Node
		want Reason
	}{
		{Node{Name: "x", Excluded: true, Labels: map[string]string{"zone": "a"}}, ReasonExcluded},
		{Node{Name: "x", Labels: map[string]string{"zone": "b"}}, ReasonNotSelected},
		{Node{Name: "x", Labels: map[string]string{"zone": "a"}, Interfaces: []string{"eth0"}}, ReasonNoInterface},
		{Node{Name: "x", Labels: map[string]string{"zone": "a"}, Interfaces: []string{"enp1s0"}}, ReasonNoEndpoint},
		{Node{Name: "ok", Labels: map[string]string{"zone": "a"}, Interfaces: []string{"enp1s0"}}, ""},
	} {
		if got := svc.WhyNot(&c.n); got != c.want {
			t.Errorf("%+v: WhyNot = %q, want %q", c.n, got, c.want)
		}
		if (c.want == "") != svc.Eligible(&c.n) {
			t.Errorf("%+v: WhyNot and Eligible disagree", c.n)
		}
	}
	tab := NewTable()
	tab.SetService(svc)
	if u, _ := tab.Why("k"); u.Reason != ReasonNoLiveNode {
		t.Errorf("no nodes: %q", u.Reason)
	}
	tab.SetNode(Node{Name: "a", Excluded: true})
	tab.SetNode(Node{Name: "b", Labels: map[string]string{"zone": "a"}, Interfaces: []string{"eth0"}})
	u, ok := tab.Why("k")
	if !ok || u.Reason != ReasonNoInterface || u.Nodes[ReasonExcluded] != 1 || u.Nodes[ReasonNoInterface] != 1 {
		t.Errorf("two nodes: %+v %v", u, ok)
	}
	if msg := u.Message(); !strings.Contains(msg, "1 excluded") || !strings.Contains(msg, "1 without the interface") {
		t.Errorf("message %q", msg)
	}
	tab.SetNode(Node{Name: "ok", Labels: map[string]string{"zone": "a"}, Interfaces: []string{"enp1s0"}})
	if _, ok := tab.Why("k"); ok {
		t.Error("Why with an owner")
	}
}

// A node that publishes no interface (none has carrier) is not eligible,
// even for an advertisement that names no interface; one that publishes
// nothing (nil: unknown) is.
func TestNoInterfaceNotEligible(t *testing.T) {
	ad := Advertisement{}
	if ad.admits(&Node{Name: "a", Interfaces: []string{}}) {
		t.Error("a node without interfaces is eligible")
	}
	if !ad.admits(&Node{Name: "a"}) {
		t.Error("a node that publishes no interface list is not eligible")
	}
	if !ad.admits(&Node{Name: "a", Interfaces: []string{"eth0"}}) {
		t.Error("a node with eth0 is not eligible")
	}
}
