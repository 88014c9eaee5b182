package bgp

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// eventLog collects a Speaker's session events.
type eventLog struct {
	mu  sync.Mutex
	evs []SessionEvent
}

func (l *eventLog) add(e SessionEvent) { l.mu.Lock(); l.evs = append(l.evs, e); l.mu.Unlock() }

func (l *eventLog) list() []SessionEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]SessionEvent(nil), l.evs...)
}

// downs returns the down events of peer.
func (l *eventLog) downs(peer string) []SessionEvent {
	var out []SessionEvent
	for _, e := range l.list() {
		if e.Peer == peer && e.Down() {
			out = append(out, e)
		}
	}
	return out
}

// TestChangeReportsCause changes one peer's password: that session gets
// exactly one down event whose reason names the change (never the
// password), the router reads a Cease / Administrative Shutdown, the other
// session is not touched, and because the router has no password the
// session then stays down and is explained as a TCP-MD5 problem, once.
func TestChangeReportsCause(t *testing.T) {
	var log eventLog
	s, ibgp, ebgp := twoRouters(t, func(c *Config) { c.OnSessionEvent = log.add })
	// Short for the re-added peer only: the first sessions may take a
	// while on a loaded machine.
	defer func(d time.Duration) { minStall = d }(minStall)
	minStall = 2 * time.Second
	ibgpUps := ibgp.ups()
	p := ebgp.peerFor("ebgp", 0)
	p.Password = "s3cret-new"
	if err := s.SetPeers(ctx, []Peer{ibgp.peerFor("ibgp", 0), p}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for _, e := range log.list() {
				t.Logf("event %+v", e)
			}
		}
	}()
	eventually(t, 5*time.Second, "the down event of ebgp", func() bool { return len(log.downs("ebgp")) == 1 })
	e := log.downs("ebgp")[0]
	if e.Reason != "BGPPeer ebgp changed (password)" {
		t.Errorf("down reason %q, want the change named", e.Reason)
	}
	eventually(t, 5*time.Second, "session down at the router", func() bool { return lastDown(ebgp.eventLog()) != nil })
	if down := lastDown(ebgp.eventLog()); !strings.Contains(down.msg, "administrative shutdown") {
		t.Errorf("router saw %+v, want Cease / Administrative Shutdown", down)
	}
	var stall SessionEvent
	eventually(t, 15*time.Second, "the stall explanation", func() bool {
		for _, e := range log.list() {
			if e.Stalled && e.Peer == "ebgp" {
				stall = e
				return true
			}
		}
		return false
	})
	if !strings.Contains(stall.Reason, "TCP-MD5 password is configured") {
		t.Errorf("stall reason %q does not point at the password", stall.Reason)
	}
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range st {
		if ps.Name == "ebgp" && !strings.Contains(ps.LastError, "TCP-MD5") {
			t.Errorf("ebgp lastError %q, want the TCP-MD5 explanation", ps.LastError)
		}
	}
	time.Sleep(3 * time.Second)
	n := 0
	for _, e := range log.list() {
		if e.Stalled && e.Peer == "ebgp" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d stall events for ebgp, want one per episode", n)
	}
	if len(log.downs("ebgp")) != 1 || len(log.downs("ibgp")) != 0 || ibgp.ups() != ibgpUps {
		t.Errorf("down events: ebgp %d (want 1), ibgp %d (want 0); ibgp ups %d -> %d",
			len(log.downs("ebgp")), len(log.downs("ibgp")), ibgpUps, ibgp.ups())
	}
	if strings.Contains(stall.Reason+e.Reason, "s3cret") {
		t.Error("a reason shows the password")
	}
}

// TestRemoveAndStopReportCause: a removed peer's session gets one down
// event saying so; at Shutdown the remaining one gets one saying the
// speaker stops; none is lost at close.
func TestRemoveAndStopReportCause(t *testing.T) {
	var log eventLog
	s, ibgp, _ := twoRouters(t, func(c *Config) { c.OnSessionEvent = log.add })
	if err := s.SetPeers(ctx, []Peer{ibgp.peerFor("ibgp", 0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the down event of ebgp", func() bool { return len(log.downs("ebgp")) == 1 })
	if r := log.downs("ebgp")[0].Reason; r != "BGPPeer ebgp removed" {
		t.Errorf("removal reason %q", r)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	d := log.downs("ibgp")
	if len(d) != 1 || d[0].Reason != "speaker stopping" {
		t.Errorf("ibgp down events at shutdown: %+v, want one with reason \"speaker stopping\"", d)
	}
	if n := len(log.downs("ebgp")); n != 1 {
		t.Errorf("%d down events for the removed peer, want 1", n)
	}
}

// TestImportNothingAndMaxPrefix: a router that sends routes gets none of
// them into the speaker's RIB; one that sends more than the guard allows
// loses its session (Cease / maximum number of prefixes), and the other
// session stays up.
func TestImportNothingAndMaxPrefix(t *testing.T) {
	var log eventLog
	s, ibgp, ebgp := twoRouters(t, func(c *Config) {
		c.MaxReceivedPrefixes = 5
		c.OnSessionEvent = log.add
	})
	ibgpUps := ibgp.ups()
	send := func(r *router, n int) {
		t.Helper()
		var paths []*apiutil.Path
		for i := range n {
			nlri, _ := bgp.NewIPAddrPrefix(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(i), 0}), 24))
			nh, _ := bgp.NewPathAttributeNextHop(r.addr)
			paths = append(paths, &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{
				bgp.NewPathAttributeOrigin(0), nh,
			}})
		}
		if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
			t.Fatal(err)
		}
	}
	send(ibgp, 3)
	eventually(t, 5*time.Second, "3 prefixes received from ibgp", func() bool {
		st, _ := s.Status(ctx)
		for _, p := range st {
			if p.Name == "ibgp" {
				return p.PrefixesReceived["ipv4-unicast"] == 3
			}
		}
		return false
	})
	n := 0
	if err := s.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(bgp.NLRI, []*apiutil.Path) { n++ }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d received prefixes in the speaker's RIB, want 0", n)
	}
	send(ebgp, 10)
	eventually(t, 5*time.Second, "ebgp session closed by the guard", func() bool { return len(log.downs("ebgp")) >= 1 })
	if r := log.downs("ebgp")[0].Reason; !strings.Contains(r, "maximum number of prefixes") {
		t.Errorf("ebgp down reason %q, want the prefix guard", r)
	}
	if !ibgp.established(speakerIP) || ibgp.ups() != ibgpUps {
		t.Error("the ibgp session was disturbed")
	}
}

func TestPeerErrorsType(t *testing.T) {
	s := newSpeaker(t, speakerASN)
	err := s.SetPeers(ctx, []Peer{
		{Name: "ok", PeerASN: 1, Address: netip.MustParseAddr("127.0.0.9"), Port: 9},
		{Name: "bad", Address: netip.MustParseAddr("127.0.0.10")},
	})
	var pe PeerErrors
	if !errors.As(err, &pe) || len(pe) != 1 || pe["bad"] == nil {
		t.Fatalf("SetPeers: %v, want PeerErrors for bad only", err)
	}
	if st, _ := s.Status(ctx); len(st) != 1 || st[0].Name != "ok" {
		t.Errorf("status %+v, want the valid peer applied", st)
	}
}
