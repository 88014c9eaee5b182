package bgp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// router is a plain GoBGP v4 server playing the upstream router: it
// listens on addr:port and accepts passive sessions from the speakers.
type router struct {
	t    testing.TB
	srv  *server.BgpServer
	addr netip.Addr
	port uint16
	asn  uint32

	mu     sync.Mutex
	events []routerEvent
}

// routerEvent is a peer state change seen by the router.
type routerEvent struct {
	peer   netip.Addr
	state  bgp.FSMState
	reason api.PeerState_DisconnectReason
	msg    string
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BGP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// freePort returns a TCP port that was free on addr a moment ago.
func freePort(t testing.TB, addr netip.Addr) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatalf("free port on %v: %v", addr, err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func newRouter(t testing.TB, addr string, asn uint32) *router {
	t.Helper()
	r := &router{t: t, addr: netip.MustParseAddr(addr), asn: asn}
	r.port = freePort(t, r.addr)
	r.srv = server.NewBgpServer(server.LoggerOption(testLogger(t).With("role", "router", "router", addr), nil))
	go r.srv.Serve()
	err := r.srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn:             asn,
		RouterId:        "10.255.255.1",
		ListenPort:      int32(r.port),
		ListenAddresses: []string{addr},
	}})
	if err != nil {
		r.srv.Stop()
		t.Fatalf("router %s: start: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = r.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			if ev.Type != apiutil.PEER_EVENT_STATE {
				return
			}
			r.mu.Lock()
			r.events = append(r.events, routerEvent{
				peer: ev.Peer.State.NeighborAddress, state: ev.Peer.State.SessionState,
				reason: ev.Peer.State.DisconnectReason, msg: ev.Peer.State.DisconnectMessage,
			})
			r.mu.Unlock()
		},
	}, server.WatchPeer())
	if err != nil {
		t.Fatalf("router watch: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		r.srv.Stop()
	})
	return r
}

// neighbor configures a passive session from a speaker at addr.
func (r *router) neighbor(addr string, peerASN uint32, mods ...func(*api.Peer)) {
	r.t.Helper()
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr, PeerAsn: peerASN},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{IdleHoldTimeAfterReset: 1}},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
		},
	}
	for _, m := range mods {
		m(p)
	}
	if err := r.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: p}); err != nil {
		r.t.Fatalf("router %v: add neighbor %s: %v", r.addr, addr, err)
	}
}

// peerFor returns a speaker Peer that dials this router.
func (r *router) peerFor(name string, myASN uint32) Peer {
	return Peer{
		Name:        name,
		MyASN:       myASN,
		PeerASN:     r.asn,
		Address:     r.addr,
		Port:        r.port,
		ConnectTime: time.Second,
	}
}

// rib returns the router's Adj-RIB-In from neighbor, by prefix.
func (r *router) rib(neighbor string, fam bgp.Family) map[netip.Prefix]*apiutil.Path {
	r.t.Helper()
	out := map[netip.Prefix]*apiutil.Path{}
	err := r.srv.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: neighbor, Family: fam,
	}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
		if len(paths) == 0 {
			return
		}
		out[netip.MustParsePrefix(nlri.String())] = paths[0]
	})
	if err != nil && !strings.Contains(err.Error(), "not found") {
		r.t.Fatalf("router %v: list paths: %v", r.addr, err)
	}
	return out
}

// peerState returns the router's view of the session with neighbor.
func (r *router) peerState(neighbor string) *api.Peer {
	r.t.Helper()
	var out *api.Peer
	err := r.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: neighbor}, func(p *api.Peer) { out = p })
	if err != nil || out == nil {
		r.t.Fatalf("router %v: peer %s: %v", r.addr, neighbor, err)
	}
	return out
}

func (r *router) established(neighbor string) bool {
	return r.peerState(neighbor).GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
}

func (r *router) receivedUpdates(neighbor string) uint64 {
	return r.peerState(neighbor).GetState().GetMessages().GetReceived().GetUpdate()
}

func (r *router) eventLog() []routerEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]routerEvent(nil), r.events...)
}

// eventually polls cond every few milliseconds until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// never checks that cond stays false for d.
func never(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf("unexpectedly: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newSpeaker starts a Speaker and shuts it down at the end of the test.
func newSpeaker(t testing.TB, asn uint32, mod ...func(*Config)) *Speaker {
	t.Helper()
	cfg := Config{RouterID: netip.MustParseAddr("10.0.0.1"), ASN: asn}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(testLogger(t).With("role", "speaker"), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// attrs digests the attributes the router received for one path.
type attrs struct {
	nextHop     netip.Addr
	communities []uint32
	large       []string
	localPref   uint32 // 0 when absent
	asPath      string
}

func pathAttrs(p *apiutil.Path) attrs {
	var a attrs
	for _, pa := range p.Attrs {
		switch v := pa.(type) {
		case *bgp.PathAttributeNextHop:
			a.nextHop = v.Value
		case *bgp.PathAttributeMpReachNLRI:
			a.nextHop = v.Nexthop
		case *bgp.PathAttributeCommunities:
			a.communities = v.Value
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range v.Values {
				a.large = append(a.large, c.String())
			}
		case *bgp.PathAttributeLocalPref:
			a.localPref = v.Value
		case *bgp.PathAttributeAsPath:
			a.asPath = strings.TrimSuffix(strings.TrimPrefix(v.String(), "{AsPath: "), "}")
		}
	}
	return a
}

// ups counts the times a session reached Established at the router.
func (r *router) ups() int {
	n := 0
	for _, e := range r.eventLog() {
		if e.state == bgp.BGP_FSM_ESTABLISHED {
			n++
		}
	}
	return n
}
