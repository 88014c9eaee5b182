package bgp

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// TestDynamicASN: internal takes the local ASN (iBGP, no AS path),
// external takes the router's (eBGP); internal refuses an eBGP router, and
// external resets a router that opens with the local ASN, saying why.
func TestDynamicASN(t *testing.T) {
	var mu sync.Mutex
	var downs []SessionEvent
	ibgp := newRouter(t, "127.0.0.1", speakerASN)
	ebgp := newRouter(t, "127.0.0.2", ebgpASN)
	ibgp.neighbor(speakerIP, speakerASN)
	ebgp.neighbor(speakerIP, speakerASN)
	s := newSpeaker(t, speakerASN, func(c *Config) {
		c.OnSessionEvent = func(e SessionEvent) {
			if e.OldState == StateEstablished {
				mu.Lock()
				downs = append(downs, e)
				mu.Unlock()
			}
		}
	})
	in, ex := ibgp.peerFor("in", 0), ebgp.peerFor("ex", 0)
	in.PeerASN, in.DynamicASN = 0, DynamicInternal
	ex.PeerASN, ex.DynamicASN = 0, DynamicExternal
	if err := s.SetPeers(ctx, []Peer{in, ex}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both sessions established", func() bool {
		return ibgp.established(speakerIP) && ebgp.established(speakerIP)
	})
	if err := s.SetAdvertisements(ctx, []Advertisement{{Prefix: netip.MustParsePrefix("198.51.100.0/24")}}); err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix("198.51.100.0/24")
	eventually(t, 5*time.Second, "prefix at both", func() bool {
		return len(ibgp.rib(speakerIP, bgp.RF_IPv4_UC)) == 1 && len(ebgp.rib(speakerIP, bgp.RF_IPv4_UC)) == 1
	})
	if a := pathAttrs(ibgp.rib(speakerIP, bgp.RF_IPv4_UC)[pfx]); a.asPath != "" || a.localPref != 100 {
		t.Errorf("dynamic internal: AS path %q, local pref %d; want iBGP (empty, 100)", a.asPath, a.localPref)
	}
	if a := pathAttrs(ebgp.rib(speakerIP, bgp.RF_IPv4_UC)[pfx]); a.asPath != "64512" {
		t.Errorf("dynamic external: AS path %q, want 64512", a.asPath)
	}

	// Swap the kinds: internal toward the eBGP router is refused by the
	// ASN check; external toward the iBGP router comes up and is reset.
	in.Address, ex.Address = ebgp.addr, ibgp.addr
	in.Port, ex.Port = ebgp.port, ibgp.port
	if err := s.SetPeers(ctx, []Peer{in, ex}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the external session toward the iBGP router reset with the reason", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range downs {
			if e.Peer == "ex" && strings.Contains(e.Reason, "dynamicASN external, but the router opened with AS 64512") {
				return true
			}
		}
		return false
	})
	never(t, 3*time.Second, "internal session toward an eBGP router established", func() bool { return ebgp.established(speakerIP) })
}

// TestPassive: a passive peer is not dialled, the router's connection is
// accepted on the listen port, and a router that is not a peer is
// refused. Without a listen port a passive peer is an error.
func TestPassive(t *testing.T) {
	port := freePort(t, netip.MustParseAddr(speakerIP))
	s := newSpeaker(t, speakerASN, func(c *Config) {
		c.ListenPort = port
		c.ListenAddresses = []netip.Addr{netip.MustParseAddr(speakerIP)}
	})
	dial := func(r *router) func(*api.Peer) {
		return func(p *api.Peer) {
			p.Transport = &api.Transport{RemotePort: uint32(port), LocalAddress: r.addr.String()}
			p.Timers.Config.ConnectRetry = 1
		}
	}
	r := newRouter(t, "127.0.0.2", ebgpASN)
	stranger := newRouter(t, "127.0.0.3", ebgpASN)
	// A listener where the speaker would dial the router: a passive
	// peer is never dialled.
	trap, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	var dialled atomic.Bool
	go func() {
		for {
			c, err := trap.Accept()
			if err != nil {
				return
			}
			dialled.Store(true)
			c.Close()
		}
	}()
	p := r.peerFor("r", 0)
	p.Port = uint16(trap.Addr().(*net.TCPAddr).Port)
	p.Passive = true
	if err := s.SetPeers(ctx, []Peer{p}); err != nil {
		t.Fatal(err)
	}
	never(t, 3*time.Second, "the speaker dialled a passive peer", dialled.Load)
	r.neighbor(speakerIP, speakerASN, dial(r))
	stranger.neighbor(speakerIP, speakerASN, dial(stranger))
	eventually(t, 15*time.Second, "the router's connection accepted", func() bool { return r.established(speakerIP) })
	never(t, 3*time.Second, "a router that is not a peer established", func() bool { return stranger.established(speakerIP) })

	s2 := newSpeaker(t, speakerASN)
	var pe PeerErrors
	if err := s2.SetPeers(ctx, []Peer{p}); !errors.As(err, &pe) || !strings.Contains(pe["r"].Error(), "--bgp-listen-port") {
		t.Errorf("passive without a listen port: %v", err)
	}
}

// TestUnnumbered: the router's address comes from the interface's
// link-local neighbour; the paths of both families carry the session's
// own IPv6 address as next hop (IPv4 ones by RFC 8950), not NextHopIPv4.
// Loopback stands in for the link (::1 for the neighbour).
func TestUnnumbered(t *testing.T) {
	r := newRouter(t, "::1", ebgpASN)
	r.neighbor("::1", speakerASN)
	s := newSpeaker(t, speakerASN)
	var asked string
	s.linkLocalNeighbor = func(ifname string) (netip.Addr, error) {
		asked = ifname
		if ifname != "lo" {
			return netip.Addr{}, errors.New("no ipv6 link-local neighbor found")
		}
		return netip.MustParseAddr("::1"), nil
	}
	p := Peer{Name: "un", PeerASN: ebgpASN, Interface: "lo", Port: r.port, ConnectTime: time.Second,
		NextHopIPv4: netip.MustParseAddr("192.0.2.1"), NextHopIPv6: netip.MustParseAddr("2001:db8::1")}
	if err := s.SetPeers(ctx, []Peer{p}); err != nil {
		t.Fatal(err)
	}
	if asked != "lo" {
		t.Errorf("neighbour looked up on %q", asked)
	}
	eventually(t, 10*time.Second, "established over the interface's neighbour", func() bool { return r.established("::1") })
	v4, v6 := netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/64")
	if err := s.SetAdvertisements(ctx, []Advertisement{{Prefix: v4}, {Prefix: v6}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "both families", func() bool {
		return len(r.rib("::1", bgp.RF_IPv6_UC)) == 1 && len(r.rib("::1", bgp.RF_IPv4_UC)) == 1
	})
	if nh := pathAttrs(r.rib("::1", bgp.RF_IPv4_UC)[v4]).nextHop; nh != netip.MustParseAddr("::1") {
		t.Errorf("IPv4 next hop %v, want the session's IPv6 address ::1 (RFC 8950)", nh)
	}
	if nh := pathAttrs(r.rib("::1", bgp.RF_IPv6_UC)[v6]).nextHop; nh != netip.MustParseAddr("::1") {
		t.Errorf("IPv6 next hop %v, want ::1", nh)
	}

	p.Interface = "eth9"
	var pe PeerErrors
	if err := s.SetPeers(ctx, []Peer{p}); !errors.As(err, &pe) || !strings.Contains(pe["un"].Error(), "interface eth9: no ipv6 link-local neighbor found") {
		t.Errorf("no neighbour: %v", err)
	}
}
