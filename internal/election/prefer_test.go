package election

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// preferAd admits every node and prefers those labelled zone=a.
var preferAd = []Advertisement{{Prefers: func(n *Node) bool { return n.Labels["zone"] == "a" }}}

// wantOwner is the rule spelled out: the preferred eligible nodes first,
// then the others, each group ranked by the hash.
func wantOwner(key string, nodes map[string]*Node, s *Service) string {
	var pref, rest []string
	for name, n := range nodes {
		switch {
		case !s.Eligible(n):
		case s.Preferred(n):
			pref = append(pref, name)
		default:
			rest = append(rest, name)
		}
	}
	if o, ok := Owner(key, pref, nil); ok {
		return o
	}
	o, _ := Owner(key, rest, nil)
	return o
}

// TestPreferredNodes: a preferred node owns the key while one is eligible,
// whatever the order of node joins, leaves and label changes; the table,
// updated incrementally, always agrees with the rule computed from scratch.
func TestPreferredNodes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for round := 0; round < 200; round++ {
		tb := NewTable()
		live := map[string]*Node{}
		svcs := make([]Service, 5)
		for i := range svcs {
			svcs[i] = Service{Key: fmt.Sprintf("ns/svc-%d", i), Advertisements: preferAd}
			tb.SetService(svcs[i])
		}
		for step := 0; step < 40; step++ {
			name := fmt.Sprintf("node-%d", r.IntN(6))
			switch r.IntN(3) {
			case 0:
				tb.RemoveNode(name)
				delete(live, name)
			default:
				n := &Node{Name: name, Labels: map[string]string{}, Excluded: r.IntN(8) == 0}
				if r.IntN(2) == 0 {
					n.Labels["zone"] = "a"
				}
				tb.SetNode(*n)
				live[name] = n
			}
			for i := range svcs {
				s := &svcs[i]
				got, _ := tb.Owner(s.Key)
				if want := wantOwner(s.Key, live, s); got != want {
					t.Fatalf("round %d step %d: %s owned by %q, want %q", round, step, s.Key, got, want)
				}
			}
		}
	}
}

// TestPreferredFailover: the preferred node owns the key; when it leaves,
// another preferred node takes it, then any node; when a preferred node
// comes back, it takes the key back.
func TestPreferredFailover(t *testing.T) {
	tb := NewTable()
	key := "ns/web"
	tb.SetService(Service{Key: key, Advertisements: preferAd})
	a := map[string]string{"zone": "a"}
	for _, n := range []Node{{Name: "n1"}, {Name: "n2"}, {Name: "n3", Labels: a}} {
		tb.SetNode(n)
	}
	if o, _ := tb.Owner(key); o != "n3" {
		t.Fatalf("owner %q, want the preferred n3", o)
	}
	tb.RemoveNode("n3")
	if o, _ := tb.Owner(key); o != "n1" && o != "n2" {
		t.Fatalf("owner %q after the preferred node left", o)
	}
	tb.SetNode(Node{Name: "n3", Labels: a})
	if o, _ := tb.Owner(key); o != "n3" {
		t.Fatalf("owner %q, want n3 back", o)
	}
	// The owner loses the label: another node wins on the hash.
	tb.SetNode(Node{Name: "n3"})
	if o, _ := tb.Owner(key); o != Rank(key, []string{"n1", "n2", "n3"})[0] {
		t.Fatalf("owner %q after n3 lost its preference", o)
	}
}
