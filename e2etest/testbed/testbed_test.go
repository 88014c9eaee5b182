package testbed

import (
	"net/netip"
	"testing"
	"time"
)

func TestParseNeighbors(t *testing.T) {
	out := []byte(`[{"dst":"198.18.0.11","dev":"eth0","lladdr":"aa:bb:cc:dd:ee:01","state":["REACHABLE"]},` +
		`{"dst":"fe80::1","dev":"eth0","lladdr":"aa:bb:cc:dd:ee:02","router":null,"state":["STALE"]},` +
		`{"dst":"198.18.0.12","dev":"eth0","state":["FAILED"]}]`)
	got, err := parseNeighbors(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d neighbours, want 3", len(got))
	}
	for _, tc := range []struct {
		desc   string
		n      Neighbor
		dst    string
		ll     string
		state  string
		router bool
	}{
		{"reachable v4", got[0], "198.18.0.11", "aa:bb:cc:dd:ee:01", "REACHABLE", false},
		{"v6 router", got[1], "fe80::1", "aa:bb:cc:dd:ee:02", "STALE", true},
		{"failed without lladdr", got[2], "198.18.0.12", "", "FAILED", false},
	} {
		if tc.n.Dst != tc.dst || tc.n.LLAddr != tc.ll || len(tc.n.State) != 1 || tc.n.State[0] != tc.state || tc.n.Router != tc.router {
			t.Errorf("%s: got %+v", tc.desc, tc.n)
		}
	}
	if n, err := parseNeighbors([]byte("\n")); err != nil || n != nil {
		t.Errorf("empty table: %v %v", n, err)
	}
}

func TestAddressPlan(t *testing.T) {
	for _, tc := range []struct {
		desc string
		addr netip.Addr
		in   netip.Prefix
	}{
		{"node on fabric", NodeIP(3), FabricPrefix},
		{"node v6 on fabric", NodeIP6(3), FabricPrefix6},
		{"pod in node range", PodIP(2, 5), PodCIDR(2)},
		{"pod v6 in node range", PodIP6(2, 5), PodCIDR6(2)},
		{"L2 pool on fabric", L2PoolLast, FabricPrefix},
		{"L2 v6 pool on fabric", L2PoolLast6, FabricPrefix6},
	} {
		if !tc.in.Contains(tc.addr) {
			t.Errorf("%s: %s not in %s", tc.desc, tc.addr, tc.in)
		}
	}
	for s := 0; s < maxSlots; s++ {
		root, fab := transitAddrs(s)
		p := transitPrefix(s)
		if !p.Contains(root) || !p.Contains(fab) || root == fab || !TransitPrefix.Contains(root) {
			t.Fatalf("slot %d: %s %s %s", s, root, fab, p)
		}
	}
	// Nothing of the plan may touch the machine's own network.
	machine := netip.MustParsePrefix("192.0.2.0/24")
	for _, r := range ReservedRanges {
		if r.Overlaps(machine) {
			t.Errorf("reserved range %s overlaps %s", r, machine)
		}
	}
	for _, p := range []netip.Prefix{FabricPrefix, ServiceCIDR, ExternalPrefix, BGPPoolPrefix, TransitPrefix, PodCIDR(60)} {
		inside := false
		for _, r := range ReservedRanges {
			if r.Contains(p.Addr()) {
				inside = true
			}
		}
		if !inside {
			t.Errorf("%s is outside the reserved ranges", p)
		}
	}
}

func TestPrefixPattern(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
	}{
		{"hl1234a-node1", "hl1234a"},
		{"hl1234a", "hl1234a"},
		{"hl1234a-fab", "hl1234a"},
		{"hl-node1", ""},
		{"hl1234-node1", ""},
		{"hlx1234a-node1", ""},
		{"eth0", ""},
	} {
		m := prefixRE.FindStringSubmatch(tc.name)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != tc.prefix {
			t.Errorf("%s: prefix %q, want %q", tc.name, got, tc.prefix)
		}
	}
	if !transitLinkRE.MatchString("hl99a-fab") || transitLinkRE.MatchString("hl99a-node1") {
		t.Error("transit link pattern")
	}
}

func TestParseRouteDst(t *testing.T) {
	for _, tc := range []struct {
		dst  string
		want string
		ok   bool
	}{
		{"default", "", false},
		{"198.18.0.0/24", "198.18.0.0/24", true},
		{"198.18.0.7", "198.18.0.7/32", true},
		{"2001:db8::/32", "2001:db8::/32", true},
		{"fe80::/64", "fe80::/64", true},
	} {
		p, ok := parseRouteDst(tc.dst)
		if ok != tc.ok || (ok && p.String() != tc.want) {
			t.Errorf("%s: got %v %v", tc.dst, p, ok)
		}
	}
}

func TestCheckRoutes(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		routes   []rootRoute
		wantErr  bool
		wantUsed int
	}{
		{desc: "machine routes only", routes: []rootRoute{{"default", "eth0"}, {"192.0.2.0/24", "eth0"}, {"fd00::/64", "eth0"}, {"fe80::/64", "eth0"}}},
		{desc: "another bed's transit link", routes: []rootRoute{{"198.18.254.0/30", "hl77a-fab"}}, wantUsed: 1},
		{desc: "fabric range on eth0", routes: []rootRoute{{"198.18.0.0/24", "eth0"}}, wantErr: true},
		{desc: "covering route", routes: []rootRoute{{"198.0.0.0/8", "eth1"}}, wantErr: true},
		{desc: "client network", routes: []rootRoute{{"198.51.100.7", "tun0"}}, wantErr: true},
		{desc: "IPv6 documentation prefix", routes: []rootRoute{{"2001:db8:5::/48", "wg0"}}, wantErr: true},
		{desc: "link named like a bed but not a transit link", routes: []rootRoute{{"198.18.0.0/24", "hl77a-node1"}}, wantErr: true},
	} {
		used, err := checkRoutes(tc.routes)
		if (err != nil) != tc.wantErr || len(used) != tc.wantUsed {
			t.Errorf("%s: used %v, err %v", tc.desc, used, err)
		}
	}
}

func TestProbeReport(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Out of order on purpose: probes finish in any order.
	res := []ProbeResult{
		{Sent: at(100), OK: false},
		{Sent: at(0), OK: true, Pod: "a", Client: "198.18.0.100"},
		{Sent: at(50), OK: false},
		{Sent: at(150), OK: true, Pod: "b", Client: "198.18.0.100"},
		{Sent: at(200), OK: true, Pod: "b", Client: "198.18.0.100"},
		{Sent: at(250), OK: false},
	}
	r := makeReport(res)
	if r.Sent != 6 || r.Failed != 3 || r.ByPod["b"] != 2 || r.Clients["198.18.0.100"] != 3 {
		t.Fatalf("counts: %+v", r)
	}
	if len(r.Outages) != 2 {
		t.Fatalf("outages: %+v", r.Outages)
	}
	if o := r.Outages[0]; o.Duration() != 100*time.Millisecond || o.Open {
		t.Errorf("first outage %v open=%v, want 100ms closed", o.Duration(), o.Open)
	}
	if o := r.Outages[1]; !o.Open {
		t.Errorf("last outage should be open: %+v", o)
	}
	if o, ok := r.OutageAfter(at(120)); !ok || !o.Start.Equal(at(50)) {
		t.Errorf("OutageAfter: %+v %v", o, ok)
	}
	if r.LongestOutage() != 100*time.Millisecond {
		t.Errorf("longest %v", r.LongestOutage())
	}
}

func TestFixASNFormat(t *testing.T) {
	in := "              myASN:\n                format: int32\n                maximum: 4294967295\n                minimum: 0\n              port:\n                format: int32\n                maximum: 16384\n"
	want := "              myASN:\n                maximum: 4294967295\n                minimum: 0\n              port:\n                format: int32\n                maximum: 16384\n"
	if got := string(fixASNFormat([]byte(in))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
