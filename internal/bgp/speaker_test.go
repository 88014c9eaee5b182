package bgp

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

const (
	speakerASN = 64512
	ebgpASN    = 65001
	speakerIP  = "127.0.0.1" // the source address of every loopback session
)

var ctx = context.Background()

// twoRouters starts an iBGP router on 127.0.0.1 and an eBGP router on
// 127.0.0.2, and a speaker peered with both; it waits for both sessions.
func twoRouters(t *testing.T, mod ...func(*Config)) (s *Speaker, ibgp, ebgp *router) {
	t.Helper()
	ibgp = newRouter(t, "127.0.0.1", speakerASN)
	ebgp = newRouter(t, "127.0.0.2", ebgpASN)
	ibgp.neighbor(speakerIP, speakerASN)
	ebgp.neighbor(speakerIP, speakerASN)
	s = newSpeaker(t, speakerASN, mod...)
	if err := s.SetPeers(ctx, []Peer{ibgp.peerFor("ibgp", 0), ebgp.peerFor("ebgp", 0)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	eventually(t, 10*time.Second, "both sessions established", func() bool {
		return ibgp.established(speakerIP) && ebgp.established(speakerIP)
	})
	return s, ibgp, ebgp
}

func TestSessionsAndAttributes(t *testing.T) {
	var mu sync.Mutex
	var events []SessionEvent
	s, ibgp, ebgp := twoRouters(t, func(c *Config) {
		c.OnSessionEvent = func(e SessionEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}
	})

	ads := []Advertisement{
		{ // aggregation: the service IP with the aggregation length
			Prefix:           netip.MustParsePrefix("198.51.100.7/24"),
			Communities:      []uint32{65000<<16 | 100},
			LargeCommunities: []LargeCommunity{{65000, 1, 2}},
			LocalPref:        200,
		},
		{Prefix: netip.MustParsePrefix("203.0.113.10/32")},
		{Prefix: netip.MustParsePrefix("2001:db8::10/128")}, // MP-BGP over IPv4
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), NextHop: netip.MustParseAddr("10.1.1.1")},
	}
	if err := s.SetAdvertisements(ctx, ads); err != nil {
		t.Fatalf("SetAdvertisements: %v", err)
	}
	for _, r := range []*router{ibgp, ebgp} {
		eventually(t, 5*time.Second, "4 prefixes at "+r.addr.String(), func() bool {
			return len(r.rib(speakerIP, bgp.RF_IPv4_UC)) == 3 && len(r.rib(speakerIP, bgp.RF_IPv6_UC)) == 1
		})
	}

	agg := netip.MustParsePrefix("198.51.100.0/24")
	in := pathAttrs(ibgp.rib(speakerIP, bgp.RF_IPv4_UC)[agg])
	ex := pathAttrs(ebgp.rib(speakerIP, bgp.RF_IPv4_UC)[agg])
	t.Logf("iBGP: %+v", in)
	t.Logf("eBGP: %+v", ex)
	for _, tc := range []struct {
		desc      string
		got       attrs
		localPref uint32
	}{
		{"iBGP", in, 200},
		{"eBGP", ex, 0},
	} {
		if tc.got.nextHop != netip.MustParseAddr(speakerIP) {
			t.Errorf("%s: next hop %v, want the session address %s", tc.desc, tc.got.nextHop, speakerIP)
		}
		if !slices.Equal(tc.got.communities, []uint32{65000<<16 | 100}) {
			t.Errorf("%s: communities %v", tc.desc, tc.got.communities)
		}
		if !slices.Equal(tc.got.large, []string{"65000:1:2"}) {
			t.Errorf("%s: large communities %v (markers must be stripped)", tc.desc, tc.got.large)
		}
		if tc.got.localPref != tc.localPref {
			t.Errorf("%s: local pref %d, want %d", tc.desc, tc.got.localPref, tc.localPref)
		}
	}
	if ex.asPath != "64512" {
		t.Errorf("eBGP AS path %q, want 64512", ex.asPath)
	}
	// A path with no communities carries no large-community attribute at
	// all once the markers are stripped.
	plain := pathAttrs(ebgp.rib(speakerIP, bgp.RF_IPv4_UC)[netip.MustParsePrefix("203.0.113.10/32")])
	if plain.large != nil || plain.communities != nil {
		t.Errorf("plain path: communities %v, large %v", plain.communities, plain.large)
	}
	nh := pathAttrs(ebgp.rib(speakerIP, bgp.RF_IPv4_UC)[netip.MustParsePrefix("192.0.2.0/24")])
	if nh.nextHop != netip.MustParseAddr("10.1.1.1") {
		t.Errorf("explicit next hop: got %v", nh.nextHop)
	}
	v6 := pathAttrs(ebgp.rib(speakerIP, bgp.RF_IPv6_UC)[netip.MustParsePrefix("2001:db8::10/128")])
	t.Logf("IPv6 prefix over IPv4 session, default next hop: %v", v6.nextHop)

	// Status and events.
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 {
		t.Fatalf("status: %d peers", len(st))
	}
	for _, p := range st {
		if p.State != StateEstablished || p.EstablishedAt.IsZero() {
			t.Errorf("peer %s: state %v since %v", p.Name, p.State, p.EstablishedAt)
		}
		if p.PrefixesSent["ipv4-unicast"] != 3 || p.PrefixesSent["ipv6-unicast"] != 1 {
			t.Errorf("peer %s: prefixes sent %v", p.Name, p.PrefixesSent)
		}
		if p.UpdatesSent == 0 {
			t.Errorf("peer %s: no UPDATE counted", p.Name)
		}
		if p.BFD != BFDDisabled {
			t.Errorf("peer %s: BFD %q without BFD", p.Name, p.BFD)
		}
	}
	mu.Lock()
	ups := 0
	for _, e := range events {
		if e.Up() {
			ups++
			if e.Peer != "ibgp" && e.Peer != "ebgp" {
				t.Errorf("up event for %q", e.Peer)
			}
		}
	}
	mu.Unlock()
	if ups != 2 {
		t.Errorf("%d session-up events, want 2", ups)
	}
}

func TestDiffWithdrawAndNoResend(t *testing.T) {
	s, ibgp, _ := twoRouters(t)
	a := Advertisement{Prefix: netip.MustParsePrefix("198.51.100.0/24")}
	b := Advertisement{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Communities: []uint32{1}}
	if err := s.SetAdvertisements(ctx, []Advertisement{a, b}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "two prefixes", func() bool { return len(ibgp.rib(speakerIP, bgp.RF_IPv4_UC)) == 2 })

	// The same set again: nothing goes on the wire.
	before := ibgp.receivedUpdates(speakerIP)
	if err := s.SetAdvertisements(ctx, []Advertisement{b, a}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if after := ibgp.receivedUpdates(speakerIP); after != before {
		t.Errorf("an unchanged set sent %d UPDATEs", after-before)
	}

	// Drop a, change b's community: a is withdrawn, b re-sent.
	b.Communities = []uint32{2}
	if err := s.SetAdvertisements(ctx, []Advertisement{b}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a withdrawn and b changed", func() bool {
		rib := ibgp.rib(speakerIP, bgp.RF_IPv4_UC)
		p, ok := rib[b.Prefix]
		return len(rib) == 1 && ok && slices.Equal(pathAttrs(p).communities, []uint32{2})
	})
	if got := s.Advertised(); !slices.Equal(got, []netip.Prefix{b.Prefix}) {
		t.Errorf("Advertised() = %v", got)
	}

	// Nothing: everything withdrawn.
	if err := s.SetAdvertisements(ctx, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "all withdrawn", func() bool { return len(ibgp.rib(speakerIP, bgp.RF_IPv4_UC)) == 0 })
}

func TestPeerRestriction(t *testing.T) {
	s, ibgp, ebgp := twoRouters(t)
	only := netip.MustParsePrefix("203.0.113.10/32")
	all := netip.MustParsePrefix("198.51.100.0/24")
	set := func(peers ...string) {
		t.Helper()
		err := s.SetAdvertisements(ctx, []Advertisement{
			{Prefix: all},
			{Prefix: only, Peers: peers, LargeCommunities: []LargeCommunity{{1, 2, 3}}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	has := func(r *router, p netip.Prefix) bool { _, ok := r.rib(speakerIP, bgp.RF_IPv4_UC)[p]; return ok }

	set("ebgp")
	eventually(t, 5*time.Second, "restricted prefix at ebgp", func() bool { return has(ebgp, only) && has(ibgp, all) })
	never(t, 300*time.Millisecond, "restricted prefix at ibgp", func() bool { return has(ibgp, only) })
	if l := pathAttrs(ebgp.rib(speakerIP, bgp.RF_IPv4_UC)[only]).large; !slices.Equal(l, []string{"1:2:3"}) {
		t.Errorf("large communities %v, want only 1:2:3", l)
	}

	// Moving the restriction withdraws from the peer that lost it.
	set("ibgp")
	eventually(t, 5*time.Second, "restriction moved", func() bool { return has(ibgp, only) && !has(ebgp, only) })

	// A restriction to a peer that does not exist sends it nowhere; the
	// peer's arrival then gets it.
	set("later")
	eventually(t, 5*time.Second, "sent nowhere", func() bool { return !has(ibgp, only) && !has(ebgp, only) })
	later := newRouter(t, "127.0.0.3", 65003)
	later.neighbor(speakerIP, speakerASN)
	peers := []Peer{ibgp.peerFor("ibgp", 0), ebgp.peerFor("ebgp", 0), later.peerFor("later", 0)}
	if err := s.SetPeers(ctx, peers); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "later peer gets its prefix", func() bool { return has(later, only) && has(later, all) })
	if has(ibgp, only) || has(ebgp, only) {
		t.Error("restricted prefix leaked")
	}

	// Unrestricted again: everyone.
	set()
	eventually(t, 5*time.Second, "unrestricted", func() bool {
		return has(ibgp, only) && has(ebgp, only) && has(later, only)
	})
}

func TestPeerChangesLeaveOthersAlone(t *testing.T) {
	s, ibgp, ebgp := twoRouters(t)
	if err := s.SetAdvertisements(ctx, []Advertisement{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "prefix at ibgp", func() bool { return len(ibgp.rib(speakerIP, bgp.RF_IPv4_UC)) == 1 })
	since := func(name string) time.Time {
		st, err := s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range st {
			if p.Name == name {
				return p.EstablishedAt
			}
		}
		return time.Time{}
	}
	ibgpUp := since("ibgp")
	ibgpUpdates := ibgp.receivedUpdates(speakerIP)

	// Change the eBGP peer (hold time), add a third one.
	third := newRouter(t, "127.0.0.3", 65003)
	third.neighbor(speakerIP, speakerASN)
	changed := ebgp.peerFor("ebgp", 0)
	changed.HoldTime = 30 * time.Second
	time.Sleep(1100 * time.Millisecond) // uptimes have a one-second resolution
	if err := s.SetPeers(ctx, []Peer{ibgp.peerFor("ibgp", 0), changed, third.peerFor("third", 0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "ebgp re-established and third up", func() bool {
		return ebgp.ups() == 2 && ebgp.established(speakerIP) && third.established(speakerIP) &&
			ebgp.peerState(speakerIP).GetTimers().GetState().GetNegotiatedHoldTime() == 30
	})
	// Remove the third one.
	if err := s.SetPeers(ctx, []Peer{ibgp.peerFor("ibgp", 0), changed}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "third gone", func() bool { return !third.established(speakerIP) })

	if got := since("ibgp"); !got.Equal(ibgpUp) {
		t.Errorf("untouched session was reset: up since %v, then %v", ibgpUp, got)
	}
	if down := lastDown(ibgp.eventLog()); down != nil {
		t.Errorf("untouched router saw the session go down: %+v", down)
	}
	if n := ibgp.receivedUpdates(speakerIP); n != ibgpUpdates {
		t.Errorf("untouched session got %d more UPDATEs", n-ibgpUpdates)
	}
	// The router logs the session's end after it stops being established:
	// wait for the entry rather than race it.
	eventually(t, 5*time.Second, "the removed peer's router logs a NOTIFICATION", func() bool {
		down := lastDown(third.eventLog())
		return down != nil && down.reason == api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED
	})
}

func TestIBGPWithDifferentLocalASN(t *testing.T) {
	// The global ASN is 64512, but this session uses local-as 65010.
	r := newRouter(t, "127.0.0.1", 65010)
	r.neighbor(speakerIP, 65010)
	s := newSpeaker(t, speakerASN)
	if err := s.SetPeers(ctx, []Peer{r.peerFor("r", 65010)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "established", func() bool { return r.established(speakerIP) })
	err := s.SetAdvertisements(ctx, []Advertisement{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), LocalPref: 300}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "prefix", func() bool { return len(r.rib(speakerIP, bgp.RF_IPv4_UC)) == 1 })
	a := pathAttrs(r.rib(speakerIP, bgp.RF_IPv4_UC)[netip.MustParsePrefix("198.51.100.0/24")])
	if a.localPref != 300 || a.asPath != "" {
		t.Errorf("iBGP by local-as: local pref %d, AS path %q", a.localPref, a.asPath)
	}
}

func TestIPv6Transport(t *testing.T) {
	r := newRouter(t, "::1", ebgpASN)
	r.neighbor("::1", speakerASN)
	s := newSpeaker(t, speakerASN)
	p := r.peerFor("v6", 0)
	p.NextHopIPv4 = netip.MustParseAddr("192.0.2.1") // the node's IPv4 address
	if err := s.SetPeers(ctx, []Peer{p}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "established over ::1", func() bool { return r.established("::1") })
	err := s.SetAdvertisements(ctx, []Advertisement{
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64")},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "both families", func() bool {
		return len(r.rib("::1", bgp.RF_IPv6_UC)) == 1 && len(r.rib("::1", bgp.RF_IPv4_UC)) == 1
	})
	if nh := pathAttrs(r.rib("::1", bgp.RF_IPv6_UC)[netip.MustParsePrefix("2001:db8:1::/64")]).nextHop; nh != netip.MustParseAddr("::1") {
		t.Errorf("IPv6 next hop %v, want ::1", nh)
	}
	if nh := pathAttrs(r.rib("::1", bgp.RF_IPv4_UC)[netip.MustParsePrefix("198.51.100.0/24")]).nextHop; nh != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("IPv4 next hop over IPv6 %v, want the peer's NextHopIPv4 192.0.2.1", nh)
	}
}

func TestIPv6NextHopOverIPv4(t *testing.T) {
	s, ibgp, ebgp := twoRouters(t)
	p := ebgp.peerFor("ebgp", 0)
	p.NextHopIPv6 = netip.MustParseAddr("2001:db8:ffff::1")
	if err := s.SetPeers(ctx, []Peer{ibgp.peerFor("ibgp", 0), p}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "ebgp re-established", func() bool { return ebgp.ups() == 2 && ebgp.established(speakerIP) })
	pfx := netip.MustParsePrefix("2001:db8::10/128")
	if err := s.SetAdvertisements(ctx, []Advertisement{{Prefix: pfx}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "IPv6 prefix at both", func() bool {
		return len(ebgp.rib(speakerIP, bgp.RF_IPv6_UC)) == 1 && len(ibgp.rib(speakerIP, bgp.RF_IPv6_UC)) == 1
	})
	if nh := pathAttrs(ebgp.rib(speakerIP, bgp.RF_IPv6_UC)[pfx]).nextHop; nh != p.NextHopIPv6 {
		t.Errorf("eBGP IPv6 next hop %v, want %v", nh, p.NextHopIPv6)
	}
	if nh := pathAttrs(ibgp.rib(speakerIP, bgp.RF_IPv6_UC)[pfx]).nextHop; nh != netip.MustParseAddr("::ffff:127.0.0.1") {
		t.Errorf("iBGP IPv6 default next hop %v, want the IPv4-mapped session address", nh)
	}
}

func TestShutdownWithdrawsAndCeases(t *testing.T) {
	r := newRouter(t, "127.0.0.1", ebgpASN)
	r.neighbor(speakerIP, speakerASN)
	s, err := New(testLogger(t), Config{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: speakerASN})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPeers(ctx, []Peer{r.peerFor("r", 0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "established", func() bool { return r.established(speakerIP) })
	if err := s.SetAdvertisements(ctx, []Advertisement{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "prefix", func() bool { return len(r.rib(speakerIP, bgp.RF_IPv4_UC)) == 1 })
	// Watch the UPDATEs received on the wire (GoBGP's own withdrawals on
	// session loss go to another stream), to see the explicit withdrawal.
	var mu sync.Mutex
	var wire []string
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = r.srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{
		OnPathUpdate: func(paths []*apiutil.Path, _ time.Time) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range paths {
				if p.Withdrawal {
					wire = append(wire, p.Nlri.String())
				}
			}
		},
	}, server.WatchUpdate(false, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The router's event log records the down after its state changes.
	eventually(t, 5*time.Second, "session down at the router", func() bool {
		return !r.established(speakerIP) && lastDown(r.eventLog()) != nil
	})
	down := lastDown(r.eventLog())
	if down == nil || down.reason != api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED {
		t.Errorf("router saw %+v, want a NOTIFICATION (Cease)", down)
	} else if !strings.Contains(down.msg, "administrative shutdown") {
		t.Errorf("router read %q, want Cease / Administrative Shutdown with %q (RFC 8203)", down.msg, AdminShutdownMessage)
	}
	mu.Lock()
	if !slices.Equal(wire, []string{"198.51.100.0/24"}) {
		t.Errorf("withdrawals received on the wire before the Cease: %v", wire)
	}
	mu.Unlock()
	if n := len(r.rib(speakerIP, bgp.RF_IPv4_UC)); n != 0 {
		t.Errorf("%d prefixes left at the router", n)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := s.SetAdvertisements(ctx, nil); err == nil {
		t.Error("SetAdvertisements after Shutdown succeeded")
	}
}

// TestGracefulRestartShutdown: with graceful restart negotiated, a stop
// for a restart leaves the route at the router as stale (no NOTIFICATION),
// while a stop for good (a BGPPeer removed, Herald uninstalled) withdraws
// it and sends a Cease, so that the router does not keep a route to a
// node that announces nothing for the whole restart time.
func TestGracefulRestartShutdown(t *testing.T) {
	for _, restart := range []bool{true, false} {
		t.Run(map[bool]string{true: "Restart", false: "ForGood"}[restart], func(t *testing.T) {
			r := newRouter(t, "127.0.0.1", ebgpASN)
			r.neighbor(speakerIP, speakerASN, func(p *api.Peer) {
				p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 120}
				for _, af := range p.AfiSafis {
					af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
				}
			})
			s, err := New(testLogger(t), Config{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: speakerASN})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(ctx); err != nil {
				t.Fatal(err)
			}
			p := r.peerFor("r", 0)
			p.GracefulRestart = true
			if err := s.SetPeers(ctx, []Peer{p}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "established", func() bool { return r.established(speakerIP) })
			if err := s.SetAdvertisements(ctx, []Advertisement{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "prefix", func() bool { return len(r.rib(speakerIP, bgp.RF_IPv4_UC)) == 1 })
			if err := s.ShutdownFor(ctx, "test", AdminShutdownMessage, restart); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "session down at the router", func() bool {
				return !r.established(speakerIP) && lastDown(r.eventLog()) != nil
			})
			rib := r.rib(speakerIP, bgp.RF_IPv4_UC)
			path, ok := rib[netip.MustParsePrefix("198.51.100.0/24")]
			down := lastDown(r.eventLog())
			if restart {
				if !ok || !path.Stale {
					t.Errorf("router should keep the route as stale during graceful restart: %v", rib)
				}
				if down == nil || down.reason == api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED {
					t.Errorf("router saw %+v, want a session closed without NOTIFICATION", down)
				}
				return
			}
			if ok {
				t.Errorf("router kept the route of a speaker that stopped for good: %v", rib)
			}
			if down == nil || down.reason != api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED {
				t.Errorf("router saw %+v, want a Cease", down)
			}
		})
	}
}

func TestBatching(t *testing.T) {
	r := newRouter(t, "127.0.0.1", ebgpASN)
	r.neighbor(speakerIP, speakerASN)
	s := newSpeaker(t, speakerASN)
	if err := s.SetPeers(ctx, []Peer{r.peerFor("r", 0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "established", func() bool { return r.established(speakerIP) })
	before := r.receivedUpdates(speakerIP)
	const n = 2000
	ads := make([]Advertisement, n)
	for i := range ads {
		ads[i] = Advertisement{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 20, byte(i >> 8), byte(i)}), 32), Communities: []uint32{uint32(i % 4)}}
	}
	if err := s.SetAdvertisements(ctx, ads); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "all prefixes", func() bool { return len(r.rib(speakerIP, bgp.RF_IPv4_UC)) == n })
	updates := r.receivedUpdates(speakerIP) - before
	t.Logf("%d prefixes with 4 distinct attribute sets arrived in %d UPDATEs", n, updates)
	if updates > n/10 {
		t.Errorf("%d UPDATEs for %d prefixes: not batched", updates, n)
	}
}

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		desc string
		cfg  Config
	}{
		{"no router ID", Config{ASN: 1}},
		{"IPv6 router ID", Config{ASN: 1, RouterID: netip.MustParseAddr("::1")}},
		{"no ASN", Config{RouterID: netip.MustParseAddr("10.0.0.1")}},
	} {
		if _, err := New(nil, tc.cfg); err == nil {
			t.Errorf("%s: New succeeded", tc.desc)
		}
	}

	s := newSpeaker(t, speakerASN)
	good := Peer{Name: "a", PeerASN: 1, Address: netip.MustParseAddr("127.0.0.9"), Port: 9}
	for _, tc := range []struct {
		desc  string
		peers []Peer
	}{
		{"no name", []Peer{{PeerASN: 1, Address: netip.MustParseAddr("127.0.0.9")}}},
		{"no address", []Peer{{Name: "a", PeerASN: 1}}},
		{"no peer ASN", []Peer{{Name: "a", Address: netip.MustParseAddr("127.0.0.9")}}},
		{"duplicate name", []Peer{good, good}},
		{"duplicate address", []Peer{good, {Name: "b", PeerASN: 1, Address: good.Address}}},
		{"graceful-restart time over 4095s", []Peer{{Name: "a", PeerASN: 1, Address: good.Address, GracefulRestart: true, GracefulRestartTime: 4096 * time.Second}}},
		{"short hold time", []Peer{{Name: "a", PeerASN: 1, Address: good.Address, HoldTime: time.Second}}},
		{"source of another family", []Peer{{Name: "a", PeerASN: 1, Address: good.Address, SourceAddress: netip.MustParseAddr("::1")}}},
	} {
		err := s.SetPeers(ctx, tc.peers)
		var pe PeerErrors
		if !errors.As(err, &pe) {
			t.Errorf("%s: SetPeers returned %v, want PeerErrors", tc.desc, err)
			continue
		}
		if name := tc.peers[len(tc.peers)-1].Name; pe[name] == nil {
			t.Errorf("%s: no error for peer %q in %v", tc.desc, name, pe)
		}
	}
	if err := s.SetPeers(ctx, nil); err != nil {
		t.Fatal(err)
	}
	err := s.SetAdvertisements(ctx, []Advertisement{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), NextHop: netip.MustParseAddr("10.0.0.1")},
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), NextHop: netip.MustParseAddr("10.0.0.2")},
		{},
	})
	if err == nil {
		t.Error("conflicting next hops and an invalid prefix were accepted")
	}
	if got := s.Advertised(); len(got) != 1 {
		t.Errorf("the valid part was not applied: %v", got)
	}
}

func TestRoutesFromMerge(t *testing.T) {
	p := netip.MustParsePrefix("192.0.2.0/24")
	for _, tc := range []struct {
		desc string
		ads  []Advertisement
		want route
	}{
		{
			desc: "masking",
			ads:  []Advertisement{{Prefix: netip.MustParsePrefix("192.0.2.77/24")}},
			want: route{prefix: p},
		},
		{
			desc: "IPv4-mapped input",
			ads:  []Advertisement{{Prefix: netip.MustParsePrefix("::ffff:192.0.2.77/120")}},
			want: route{prefix: p},
		},
		{
			desc: "union of communities, highest local pref, union of peers",
			ads: []Advertisement{
				{Prefix: p, Communities: []uint32{3, 1}, LocalPref: 100, Peers: []string{"b"}, LargeCommunities: []LargeCommunity{{1, 1, 1}}},
				{Prefix: p, Communities: []uint32{1, 2}, LocalPref: 300, Peers: []string{"a", "b"}},
			},
			want: route{prefix: p, comms: []uint32{1, 2, 3}, localPref: 300, peers: []string{"a", "b"}, large: []LargeCommunity{{1, 1, 1}}},
		},
		{
			desc: "an unrestricted advertisement wins",
			ads:  []Advertisement{{Prefix: p, Peers: []string{"a"}}, {Prefix: p}},
			want: route{prefix: p},
		},
		{
			desc: "an unrestricted advertisement wins, other order",
			ads:  []Advertisement{{Prefix: p}, {Prefix: p, Peers: []string{"a"}}},
			want: route{prefix: p},
		},
	} {
		got, err := routesFrom(tc.ads)
		if err != nil {
			t.Errorf("%s: %v", tc.desc, err)
			continue
		}
		if len(got) != 1 || !got[p].equal(&tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.desc, got[p], tc.want)
		}
	}
}

// lastDown returns the first event that left Established after the last
// time the session was established, or nil.
func lastDown(evs []routerEvent) *routerEvent {
	var down *routerEvent
	up := false
	for i := range evs {
		switch {
		case evs[i].state == bgp.BGP_FSM_ESTABLISHED:
			up, down = true, nil
		case up && down == nil:
			down = &evs[i]
		}
	}
	return down
}

// TestPeerRestrictionBedSequence replays what a node of the e2e bed does:
// the server starts, the advertisements are pushed before any session is
// up, then both peers arrive in one SetPeers call, each with next hops of
// its own: an iBGP peer with an IPv6 neighbour address ("core", sorted
// first) and an eBGP peer with an IPv4 one ("edge"). A prefix restricted to
// core must not reach edge, and one restricted to edge must not reach core.
func TestPeerRestrictionBedSequence(t *testing.T) {
	core := newRouter(t, "::1", speakerASN)
	edge := newRouter(t, "127.0.0.2", ebgpASN)
	core.neighbor("::1", speakerASN)
	edge.neighbor(speakerIP, speakerASN)
	s := newSpeaker(t, speakerASN)
	toCore := netip.MustParsePrefix("203.0.113.96/32")
	toEdge := netip.MustParsePrefix("203.0.113.64/28")
	toAll := netip.MustParsePrefix("203.0.113.0/32")
	if err := s.SetAdvertisements(ctx, []Advertisement{
		{Prefix: toAll},
		{Prefix: toCore, Peers: []string{"core"}, LocalPref: 250},
		{Prefix: toEdge, Peers: []string{"edge"}},
	}); err != nil {
		t.Fatal(err)
	}
	pc, pe := core.peerFor("core", 0), edge.peerFor("edge", 0)
	for _, p := range []*Peer{&pc, &pe} {
		// The node's addresses, as on the bed; a router drops a path whose
		// next hop is one of its own (loopback) addresses.
		p.NextHopIPv4 = netip.MustParseAddr("198.18.0.11")
		p.NextHopIPv6 = netip.MustParseAddr("2001:db8:18::11")
	}
	if err := s.SetPeers(ctx, []Peer{pe, pc}); err != nil {
		t.Fatal(err)
	}
	has := func(r *router, nbr string, p netip.Prefix) bool { _, ok := r.rib(nbr, bgp.RF_IPv4_UC)[p]; return ok }
	eventually(t, 10*time.Second, "prefixes at both peers", func() bool {
		return has(core, "::1", toAll) && has(edge, speakerIP, toAll) && has(core, "::1", toCore) && has(edge, speakerIP, toEdge)
	})
	never(t, 300*time.Millisecond, "restricted prefixes at the wrong peer", func() bool {
		return has(edge, speakerIP, toCore) || has(core, "::1", toEdge)
	})
}

// TestResetReconnectsQuickly resets a session the way GoBGP's BFD does
// when it sees the peer go down (a hard ResetPeer: Cease / Administrative
// Reset). The session must come back after the peer's connect time, not
// after GoBGP's default idle hold of 30s: with BFD on a peer, every BFD
// flap would otherwise leave the session Idle for 30s while BFD is Up.
// (The router in this test takes a few attempts to accept the new
// connection: about 6s in all.)
func TestResetReconnectsQuickly(t *testing.T) {
	s, _, ebgp := twoRouters(t)
	start := time.Now()
	if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: ebgp.addr.String(), Communication: "BFD is down"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "ebgp re-established after the reset", func() bool {
		return ebgp.ups() == 2 && ebgp.established(speakerIP)
	})
	t.Logf("session back %v after the reset", time.Since(start).Round(time.Millisecond))
}

// TestBFDFailureBeforeEstablished: a BFD failure while the BGP session is
// not established resets nothing. GoBGP keeps the Cease of a reset that
// finds no established session and sends it the moment the next session
// comes up, which closed the new session of a restarted speaker for a BFD
// failure that was over (the real-nodes rolling upgrade lost its route so).
func TestBFDFailureBeforeEstablished(t *testing.T) {
	r := newRouter(t, "127.0.0.2", ebgpASN)
	s := newSpeaker(t, speakerASN)
	if err := s.SetPeers(ctx, []Peer{r.peerFor("ebgp", 0)}); err != nil {
		t.Fatalf("SetPeers: %v", err)
	}
	// The router does not know the speaker yet: the session cannot come up.
	time.Sleep(500 * time.Millisecond)
	s.onBFD(bfdChange{peer: r.addr, old: BFDUp, new: BFDDown, failure: true, reason: "BFD detection time expired"})
	r.neighbor(speakerIP, speakerASN)
	eventually(t, 15*time.Second, "session established", func() bool { return r.established(speakerIP) })
	time.Sleep(2 * time.Second)
	if n := r.ups(); n != 1 || !r.established(speakerIP) {
		t.Errorf("the session came up %d times and is established: %v; want once, and still up", n, r.established(speakerIP))
	}
}
