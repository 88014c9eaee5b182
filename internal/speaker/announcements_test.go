package speaker

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/bgp"
)

func TestAnnouncementName(t *testing.T) {
	if got := AnnouncementName("web", v1beta1.ProtocolL2, "node1"); got != "web.l2" {
		t.Errorf("L2 name %q", got)
	}
	if got := AnnouncementName("web", v1beta1.ProtocolBGP, "node1"); got != "web.bgp.node1" {
		t.Errorf("BGP name %q", got)
	}
	long := AnnouncementName(strings.Repeat("s", 63), v1beta1.ProtocolBGP, strings.Repeat("n", 253))
	other := AnnouncementName(strings.Repeat("s", 63), v1beta1.ProtocolBGP, strings.Repeat("n", 252)+"m")
	if len(long) > 253 || long == other {
		t.Errorf("long names %d chars, distinct %v", len(long), long != other)
	}
}

// TestAnnouncementWrites follows one Service's L2 object through the
// changes of owner that cost a write, and those that must not.
func TestAnnouncementWrites(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.200")
	info := &ServiceInfo{IPs: []netip.Addr{ip}}
	infos := func(string) *ServiceInfo { return info }
	members := []string{"default/web"}
	want := func(node string, owns bool) annObject {
		out := annObject{}
		if owns {
			wantL2(node, members, infos, []netip.Addr{ip}, nil, out)
		}
		return out
	}
	a, b := newAnnTracker(), newAnnTracker()
	pass := func(tr *annTracker, node string, owns, elsewhere bool) *annOps {
		ops := newAnnOps()
		tr.update("k", want(node, owns), elsewhere, ops)
		ops.resolve()
		return ops
	}
	// node a takes the IP: one write.
	if ops := pass(a, "a", true, false); len(ops.apply) != 1 || ops.apply["default/web.l2"].Node != "a" {
		t.Fatalf("first owner: %+v", ops)
	}
	// Nothing changed: nothing to write.
	if ops := pass(a, "a", true, false); !ops.empty() {
		t.Errorf("steady state writes: %+v", ops)
	}
	// b takes over: a writes nothing, b writes once.
	if ops := pass(a, "a", false, true); len(ops.apply)+len(ops.delete) != 0 || !ops.forget["default/web.l2"] {
		t.Errorf("old owner on a handover: %+v, want a forget only", ops)
	}
	if ops := pass(b, "b", true, false); len(ops.apply) != 1 || ops.apply["default/web.l2"].Node != "b" {
		t.Errorf("new owner: %+v", ops)
	}
	// No node is eligible any more: the owner deletes.
	if ops := pass(b, "b", false, false); !ops.delete["default/web.l2"] || len(ops.apply) != 0 {
		t.Errorf("owner without a successor: %+v, want a delete", ops)
	}
}

// TestAnnouncementMovesKey: a Service whose IP moves to another group key
// keeps its object: the write wins over the delete.
func TestAnnouncementMovesKey(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.200")
	info := &ServiceInfo{IPs: []netip.Addr{ip}}
	infos := func(string) *ServiceInfo { return info }
	tr := newAnnTracker()
	obj := func() annObject {
		o := annObject{}
		wantL2("a", []string{"default/web"}, infos, []netip.Addr{ip}, []string{"eth0"}, o)
		return o
	}
	ops := newAnnOps()
	tr.update("k1", obj(), false, ops)
	for _, order := range [][]string{{"k1", "k2"}, {"k2", "k1"}} {
		ops = newAnnOps()
		for _, k := range order {
			if k == "k2" {
				tr.update("k2", obj(), false, ops)
			} else {
				tr.update("k1", annObject{}, false, ops)
			}
		}
		ops.resolve()
		if len(ops.delete) != 0 {
			t.Errorf("order %v: deletes %v for a Service that moved between keys", order, ops.delete)
		}
		if !tr.wanted("default/web.l2") {
			t.Errorf("order %v: the object is no longer wanted", order)
		}
		// Back to k1 for the next order.
		ops = newAnnOps()
		tr.update("k2", annObject{}, false, ops)
		tr.update("k1", obj(), false, ops)
	}
}

func TestWantBGP(t *testing.T) {
	v4 := netip.MustParseAddr("203.0.113.7")
	info := &ServiceInfo{IPs: []netip.Addr{v4, netip.MustParseAddr("2001:db8::7")}}
	infos := func(string) *ServiceInfo { return info }
	peers := []bgp.Peer{{Name: "r1"}, {Name: "r2"}}
	for _, c := range []struct {
		name  string
		ads   []bgp.Advertisement
		ips   []string
		peers []string
	}{
		{"none", nil, nil, nil},
		{"every peer", []bgp.Advertisement{{Prefix: netip.MustParsePrefix("203.0.113.0/24")}}, []string{"203.0.113.7"}, []string{"r1", "r2"}},
		{"named peers", []bgp.Advertisement{{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Peers: []string{"r2"}}}, []string{"203.0.113.7"}, []string{"r2"}},
		{"named peers the node lacks", []bgp.Advertisement{{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Peers: []string{"r3"}}}, nil, nil},
		{"named peers, some the node lacks", []bgp.Advertisement{{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Peers: []string{"r3", "r1"}}}, []string{"203.0.113.7"}, []string{"r1"}},
	} {
		out := annObject{}
		wantBGP("n1", []string{"ns/web"}, infos, c.ads, peers, out)
		st, ok := out["ns/web.bgp.n1"]
		if (c.ips == nil) == ok || (ok && (!slices.Equal(st.IPs, c.ips) || !slices.Equal(st.Peers, c.peers) || st.Node != "n1")) {
			t.Errorf("%s: %v %+v, want IPs %v peers %v", c.name, ok, st, c.ips, c.peers)
		}
	}
}
