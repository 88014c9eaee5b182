package speaker

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/bgp"
)

// fakeBGP is a bgpServer that records calls and fails on demand.
type fakeBGP struct {
	mu        sync.Mutex
	routerID  netip.Addr
	peers     []bgp.Peer
	ads       []bgp.Advertisement
	peerCalls int
	adCalls   int
	stopped   string // the cause it was shut down with
	failPeers map[string]error
	failAds   error
	block     chan struct{} // when set, SetPeers waits on it
	calls     []string      // "peers" and "ads", in the order they were applied
}

func (f *fakeBGP) SetPeers(ctx context.Context, peers []bgp.Peer) error {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peerCalls++
	f.calls = append(f.calls, "peers")
	errs := bgp.PeerErrors{}
	f.peers = nil
	for _, p := range peers {
		if err := f.failPeers[p.Name]; err != nil {
			errs[p.Name] = err
			continue
		}
		f.peers = append(f.peers, p)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (f *fakeBGP) SetAdvertisements(_ context.Context, ads []bgp.Advertisement) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.adCalls++
	f.calls = append(f.calls, "ads")
	if f.failAds != nil {
		return f.failAds
	}
	f.ads = ads
	return nil
}

func (f *fakeBGP) ShutdownFor(_ context.Context, cause, _ string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = cause
	return nil
}

func (f *fakeBGP) Status(context.Context) ([]bgp.PeerStatus, error) { return nil, nil }
func (f *fakeBGP) Advertised() []netip.Prefix                       { return nil }

func (f *fakeBGP) get() fakeBGP {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeBGP{routerID: f.routerID, peers: slices.Clone(f.peers), ads: f.ads, peerCalls: f.peerCalls, adCalls: f.adCalls, stopped: f.stopped, calls: slices.Clone(f.calls)}
}

// workerHarness runs a bgpWorker against fake servers.
type workerHarness struct {
	t        *testing.T
	w        *bgpWorker
	mu       sync.Mutex
	servers  []*fakeBGP
	problems map[string]string
	setup    func(*fakeBGP) // applied to each new server
	startErr error
}

func newWorkerHarness(t *testing.T) *workerHarness {
	h := &workerHarness{t: t}
	h.w = newBGPWorker(&bgpWorker{
		maxRetry: 50 * time.Millisecond,
		newServer: func(_ context.Context, rid netip.Addr, _ uint32) (bgpServer, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.startErr != nil {
				return nil, h.startErr
			}
			f := &fakeBGP{routerID: rid}
			if h.setup != nil {
				h.setup(f)
			}
			h.servers = append(h.servers, f)
			return f, nil
		},
		onServer: func(bgpServer) {},
		onProblems: func(p map[string]string) {
			h.mu.Lock()
			h.problems = p
			h.mu.Unlock()
		},
	})
	h.w.start()
	t.Cleanup(func() { h.w.stop(context.Background(), true) })
	return h
}

func (h *workerHarness) server() *fakeBGP {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.servers) == 0 {
		return nil
	}
	return h.servers[len(h.servers)-1]
}

func (h *workerHarness) nServers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

func (h *workerHarness) problem(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.problems[name]
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func planOf(node BGPNode, peers ...bgp.Peer) PeerPlan {
	p := PeerPlan{Peers: peers, RouterID: node.IPv4, NodeIPv4: node.IPv4, ASN: 64600}
	return p
}

var workerNode = BGPNode{Name: "n1", IPv4: netip.MustParseAddr("198.18.0.11")}

func testPeer(name, addr string, myASN uint32) bgp.Peer {
	return bgp.Peer{Name: name, MyASN: myASN, PeerASN: 64512, Address: netip.MustParseAddr(addr)}
}

// TestWorkerAdvertisesBeforePeering: a new server gets its routes before
// its peers, so that no session of a restarted speaker can come up on an
// empty RIB: the End-of-RIB a router waits for after a graceful restart
// would otherwise make it flush the stale paths it kept, and black-hole
// the prefixes until the next UPDATE.
func TestWorkerAdvertisesBeforePeering(t *testing.T) {
	h := newWorkerHarness(t)
	ads := []bgp.Advertisement{{Prefix: netip.MustParsePrefix("203.0.113.1/32")}}
	h.w.post(&bgpWant{plan: planOf(workerNode, testPeer("r1", "198.18.0.2", 64600)), ads: ads, adsGen: 1})
	waitFor(t, "a server with its peer", func() bool { f := h.server(); return f != nil && len(f.get().peers) == 1 })
	if got := h.server().get().calls; !slices.Equal(got, []string{"ads", "peers"}) {
		t.Errorf("calls on the new server: %v, want [ads peers]", got)
	}
}

// TestWorkerRetriesFailures: a peer that GoBGP refuses is reported under
// its own name (not by matching names in an error string), retried until
// it is applied, and never marked done while failing; failed
// advertisements are retried too.
func TestWorkerRetriesFailures(t *testing.T) {
	h := newWorkerHarness(t)
	h.setup = func(f *fakeBGP) {
		f.failPeers = map[string]error{"r2": errors.New("address in use")}
		f.failAds = errors.New("server busy")
	}
	ads := []bgp.Advertisement{{Prefix: netip.MustParsePrefix("203.0.113.1/32")}}
	h.w.post(&bgpWant{plan: planOf(workerNode, testPeer("r1", "198.18.0.2", 64600), testPeer("r2", "198.18.0.3", 64600)), ads: ads, adsGen: 1})
	waitFor(t, "r2's problem", func() bool { return h.problem("r2") == "address in use" })
	if h.problem("r1") != "" {
		t.Errorf("r1 has a problem: %q", h.problem("r1"))
	}
	f := h.server()
	waitFor(t, "retries", func() bool { g := f.get(); return g.peerCalls >= 3 && g.adCalls >= 3 })
	f.mu.Lock()
	f.failPeers, f.failAds = nil, nil
	f.mu.Unlock()
	waitFor(t, "both peers and the prefix applied", func() bool {
		g := f.get()
		return len(g.peers) == 2 && len(g.ads) == 1
	})
	waitFor(t, "problem cleared", func() bool { return h.problem("r2") == "" })
	calls := f.get().peerCalls
	time.Sleep(200 * time.Millisecond)
	if got := f.get().peerCalls; got != calls {
		t.Errorf("SetPeers called %d more times after success", got-calls)
	}
}

// TestWorkerKeepsServerIdentity: adding a peer with another myASN or
// another routerID restarts no session (the server keeps running);
// removing the last peer stops it; a router ID that no peer asks for any
// more restarts it, with that cause.
func TestWorkerKeepsServerIdentity(t *testing.T) {
	h := newWorkerHarness(t)
	r1 := testPeer("r1", "198.18.0.2", 64600)
	h.w.post(&bgpWant{plan: planOf(workerNode, r1)})
	waitFor(t, "server", func() bool { return h.server() != nil && len(h.server().get().peers) == 1 })

	r0 := testPeer("r0", "198.18.0.9", 64999) // another myASN, sorted first
	plan := planOf(workerNode, r0, r1)
	plan.ASN = 64999
	plan.RouterID = netip.MustParseAddr("10.9.9.9")
	plan.RouterIDs = map[string]netip.Addr{"r0": plan.RouterID}
	h.w.post(&bgpWant{plan: plan})
	waitFor(t, "r0 added", func() bool { return len(h.server().get().peers) == 2 })
	if n := h.nServers(); n != 1 || h.server().get().stopped != "" {
		t.Fatalf("servers started: %d, stopped: %q; want the first one kept", n, h.server().get().stopped)
	}
	waitFor(t, "r0's routerID problem", func() bool { return h.problem("r0") != "" })

	// r1 goes: only r0 asks for a router ID now, and it is not the
	// running one: restart with r0's.
	plan2 := plan
	plan2.Peers = []bgp.Peer{r0}
	h.w.post(&bgpWant{plan: plan2})
	waitFor(t, "restart", func() bool { return h.nServers() == 2 })
	if c := h.servers[0].get().stopped; c != "the router ID changes from 198.18.0.11 to 10.9.9.9" {
		t.Errorf("first server stopped with cause %q", c)
	}
	h.w.post(&bgpWant{plan: planOf(workerNode)})
	waitFor(t, "stop", func() bool { return h.server().get().stopped != "" })
	if c := h.server().get().stopped; c != "no BGPPeer selects this node any more" {
		t.Errorf("stopped with cause %q", c)
	}
}

// TestWorkerNeverBlocksTheLoop: while GoBGP is stuck in a call, posting
// new plans returns at once, and only the latest plan is applied after.
func TestWorkerNeverBlocksTheLoop(t *testing.T) {
	h := newWorkerHarness(t)
	block := make(chan struct{})
	h.setup = func(f *fakeBGP) { f.block = block }
	r1 := testPeer("r1", "198.18.0.2", 64600)
	h.w.post(&bgpWant{plan: planOf(workerNode, r1)})
	waitFor(t, "server", func() bool { return h.server() != nil })
	start := time.Now()
	for i := range 100 {
		h.w.post(&bgpWant{plan: planOf(workerNode, r1), ads: []bgp.Advertisement{{Prefix: netip.MustParsePrefix("203.0.113.1/32")}}, adsGen: uint64(i + 1)})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("100 posts took %v while BGP was blocked", d)
	}
	close(block)
	waitFor(t, "the latest plan", func() bool { return len(h.server().get().ads) == 1 })
	if n := h.server().get().adCalls; n > 2 {
		t.Errorf("%d SetAdvertisements calls for 100 posts, want the latest only", n)
	}
}

// TestWorkerServerStartRetried: a server that fails to start is retried,
// and its error is every peer's problem meanwhile.
func TestWorkerServerStartRetried(t *testing.T) {
	h := newWorkerHarness(t)
	h.mu.Lock()
	h.startErr = errors.New("listen: address in use")
	h.mu.Unlock()
	h.w.post(&bgpWant{plan: planOf(workerNode, testPeer("r1", "198.18.0.2", 64600))})
	waitFor(t, "the start problem", func() bool { return h.problem("r1") == "BGP server: listen: address in use" })
	h.mu.Lock()
	h.startErr = nil
	h.mu.Unlock()
	waitFor(t, "started after a retry", func() bool { return h.server() != nil && len(h.server().get().peers) == 1 })
}
