package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/heraldlb/herald/internal/bgp"
)

// bgpServer is what the BGP worker needs of a running GoBGP server
// (*bgp.Speaker); tests give a fake.
type bgpServer interface {
	SetPeers(ctx context.Context, peers []bgp.Peer) error
	SetAdvertisements(ctx context.Context, ads []bgp.Advertisement) error
	ShutdownFor(ctx context.Context, cause, message string, restart bool) error
	Status(ctx context.Context) ([]bgp.PeerStatus, error)
	Advertised() []netip.Prefix
}

// bgpWant is the BGP state the loop wants: the peer plan and the full
// advertisement set. adsGen grows with every new advertisement set.
type bgpWant struct {
	plan   PeerPlan
	ads    []bgp.Advertisement
	adsGen uint64
}

// bgpWorker applies what the loop wants to the GoBGP server on a goroutine
// of its own, so that a slow or failing BGP call never delays the
// speaker's loop (membership, elections, L2 announcements). It applies
// the latest want only (intermediate ones are skipped), retries what
// failed with a backoff, and never marks a failed call as done.
type bgpWorker struct {
	log       *slog.Logger
	newServer func(ctx context.Context, routerID netip.Addr, asn uint32) (bgpServer, error)
	// onProblems receives the peer problems after every pass (the
	// planning problems plus those of applying); it must not block long.
	onProblems func(map[string]string)
	// onServer receives the running server, or nil, whenever it changes.
	onServer        func(bgpServer)
	shutdownTimeout time.Duration
	callTimeout     time.Duration
	maxRetry        time.Duration

	mu   sync.Mutex
	want *bgpWant

	kick chan struct{}
	quit chan struct{}
	done chan struct{}
	once sync.Once

	// Owned by run.
	srv       bgpServer
	routerID  netip.Addr
	peers     []bgp.Peer // the last peer set applied without error
	peersOK   bool
	adsGen    uint64 // the last advertisement set applied without error
	passes    int    // apply passes, for tests
	peerCalls int    // SetPeers calls, for tests
}

// newBGPWorker completes w (its callbacks and timeouts set) and returns
// it.
func newBGPWorker(w *bgpWorker) *bgpWorker {
	w.kick = make(chan struct{}, 1)
	w.quit = make(chan struct{})
	w.done = make(chan struct{})
	if w.shutdownTimeout <= 0 {
		w.shutdownTimeout = 3 * time.Second
	}
	if w.callTimeout <= 0 {
		w.callTimeout = 10 * time.Second
	}
	if w.maxRetry <= 0 {
		w.maxRetry = 30 * time.Second
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	return w
}

// post replaces the wanted state and wakes the worker. It never blocks.
func (w *bgpWorker) post(want *bgpWant) {
	w.mu.Lock()
	w.want = want
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// start runs the worker until stop.
func (w *bgpWorker) start() {
	go w.run()
}

func (w *bgpWorker) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.quit
		cancel()
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-w.quit:
			return
		case <-w.kick:
		case <-retry.C:
		}
		w.mu.Lock()
		want := w.want
		w.mu.Unlock()
		if want == nil {
			continue
		}
		if w.apply(ctx, want) {
			backoff = 0
			retry.Stop()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, time.Second), w.maxRetry)
		w.log.Info("BGP changes failed; retrying", slog.Duration("in", backoff))
		retry.Reset(backoff)
	}
}

// stop ends the worker and then shuts the server down within the shutdown
// timeout: for a restart, sessions with graceful restart keep their routes
// at the routers; otherwise (Herald is uninstalled) every route is
// withdrawn and every session gets a Cease.
func (w *bgpWorker) stop(ctx context.Context, restart bool) {
	w.once.Do(func() { close(w.quit) })
	<-w.done
	if w.srv == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.shutdownTimeout)
	defer cancel()
	if err := w.srv.ShutdownFor(sctx, "speaker stopping", bgp.AdminShutdownMessage, restart); err != nil {
		w.log.Warn("BGP shutdown", slog.Any("error", err))
	}
	w.srv = nil
	w.onServer(nil)
}

// apply brings the server to want; it reports whether everything
// succeeded.
func (w *bgpWorker) apply(ctx context.Context, want *bgpWant) bool {
	w.passes++
	plan := want.plan
	problems := maps.Clone(plan.Problems)
	if problems == nil {
		problems = map[string]string{}
	}
	defer func() { w.onProblems(problems) }()

	current := netip.Addr{}
	if w.srv != nil {
		current = w.routerID
	}
	rid := plan.routerIDFor(current)
	for _, p := range plan.Peers {
		if want := plan.RouterIDs[p.Name]; want.IsValid() && want != rid {
			problems[p.Name] = fmt.Sprintf("routerID %s differs from %s, which this node's BGP server uses for its other sessions: one BGP server has one router ID; the session runs with %s", want, rid, rid)
		}
	}
	if w.srv != nil && (len(plan.Peers) == 0 || rid != w.routerID) {
		cause := "no BGPPeer selects this node any more"
		if len(plan.Peers) > 0 {
			cause = fmt.Sprintf("the router ID changes from %s to %s", w.routerID, rid)
		}
		w.log.Info("stopping the BGP server", slog.String("cause", cause))
		sctx, cancel := context.WithTimeout(ctx, w.shutdownTimeout)
		err := w.srv.ShutdownFor(sctx, cause, "Herald: "+cause, false)
		cancel()
		if err != nil {
			w.log.Warn("BGP shutdown", slog.Any("error", err))
		}
		w.srv, w.peers, w.peersOK, w.adsGen = nil, nil, false, 0
		w.onServer(nil)
	}
	if len(plan.Peers) == 0 {
		return true
	}
	if w.srv == nil {
		if !rid.Is4() {
			for _, p := range plan.Peers {
				problems[p.Name] = "no router ID: the node has no IPv4 InternalIP and no selected BGPPeer sets routerID"
			}
			return true // nothing to retry until the configuration or the node changes
		}
		cctx, cancel := context.WithTimeout(ctx, w.callTimeout)
		srv, err := w.newServer(cctx, rid, plan.ASN)
		cancel()
		if err != nil {
			w.log.Error("cannot start the BGP server", slog.Any("error", err))
			for _, p := range plan.Peers {
				problems[p.Name] = "BGP server: " + err.Error()
			}
			return false
		}
		w.srv, w.routerID = srv, rid
		w.onServer(srv)
	}
	// The advertisements before the peers: a new server (a restart) has
	// its routes in the RIB before any session can come up, so the first
	// UPDATEs and the End-of-RIB a router waits for after a graceful
	// restart carry them; otherwise the router could flush its stale
	// paths on an empty End-of-RIB and black-hole the prefixes until the
	// next UPDATE.
	ok := true
	if w.adsGen != want.adsGen {
		cctx, cancel := context.WithTimeout(ctx, w.callTimeout)
		err := w.srv.SetAdvertisements(cctx, want.ads)
		cancel()
		if err != nil {
			w.log.Error("BGP advertisements", slog.Any("error", err))
			ok = false
		} else {
			w.adsGen = want.adsGen
		}
	}
	if !w.peersOK || !reflect.DeepEqual(w.peers, plan.Peers) {
		w.peerCalls++
		cctx, cancel := context.WithTimeout(ctx, w.callTimeout)
		err := w.srv.SetPeers(cctx, plan.Peers)
		cancel()
		if err != nil {
			var pe bgp.PeerErrors
			if errors.As(err, &pe) {
				for name, e := range pe {
					problems[name] = e.Error()
				}
			} else {
				for _, p := range plan.Peers {
					problems[p.Name] = "BGP peers: " + err.Error()
				}
			}
			w.log.Error("BGP peers", slog.Any("error", err))
			ok = false
		}
		w.peers, w.peersOK = plan.Peers, err == nil
	}
	return ok
}
