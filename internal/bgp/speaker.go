package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Speaker owns one embedded GoBGP server: its peers, its paths and its
// export policy. Its methods are safe for concurrent use; calls that change
// state are serialised.
type Speaker struct {
	log *slog.Logger
	cfg Config
	srv *server.BgpServer

	// mu serialises the state-changing calls and guards the fields below.
	mu      sync.Mutex
	state   lifecycle
	peers   map[string]*peerEntry     // by name
	byAddr  map[netip.Addr]*peerEntry // by address
	ids     map[string]uint32         // peer name -> marker id; never reused
	routes  map[netip.Prefix]*route   // what is in GoBGP's RIB
	watchCx context.CancelFunc        // stops the WatchEvent goroutine
	serveWG sync.WaitGroup            // the Serve goroutine
	events  chan *apiutil.WatchEventMessage_PeerEvent
	stopEv  chan struct{}  // closed to stop the event dispatcher
	evWG    sync.WaitGroup // the event dispatcher goroutine

	// sessMu guards sessions (written by the event dispatcher) and names
	// (written by SetPeers). It is never held while taking mu.
	sessMu   sync.Mutex
	sessions map[netip.Addr]SessionState
	names    map[netip.Addr]string

	stopping atomic.Bool // set once the server is being stopped
}

type lifecycle int

const (
	created lifecycle = iota
	running
	stopped
)

type peerEntry struct {
	cfg Peer
	id  uint32
}

// New returns a Speaker that will run one GoBGP server with cfg. It logs
// through logger, which GoBGP's own logs also go to (with
// component=gobgp). Nothing runs until Start.
func New(logger *slog.Logger, cfg Config) (*Speaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("bgp config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.ListenAddresses = append([]netip.Addr(nil), cfg.ListenAddresses...)
	return &Speaker{
		log:      logger,
		cfg:      cfg,
		peers:    map[string]*peerEntry{},
		byAddr:   map[netip.Addr]*peerEntry{},
		ids:      map[string]uint32{},
		routes:   map[netip.Prefix]*route{},
		sessions: map[netip.Addr]SessionState{},
		names:    map[netip.Addr]string{},
		stopEv:   make(chan struct{}),
	}, nil
}

// Start starts the GoBGP server, installs Herald's export policy and
// begins watching session state. ctx bounds the start-up only; the server
// runs until Shutdown.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != created {
		return errors.New("bgp: Start called twice")
	}
	glog := slog.New(gobgpHandler{Handler: s.log.Handler(), stopping: &s.stopping}).With("component", "gobgp")
	s.srv = server.NewBgpServer(server.LoggerOption(glog, nil))
	s.serveWG.Add(1)
	go func() {
		defer s.serveWG.Done()
		s.srv.Serve()
	}()
	s.state = running

	port := int32(-1)
	if s.cfg.ListenPort != 0 {
		port = int32(s.cfg.ListenPort)
	}
	global := &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: port,
	}
	for _, a := range s.cfg.ListenAddresses {
		global.ListenAddresses = append(global.ListenAddresses, a.String())
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: global}); err != nil {
		s.stopLocked()
		return fmt.Errorf("bgp: start server: %w", err)
	}
	if err := s.installPolicy(ctx); err != nil {
		s.stopLocked()
		return fmt.Errorf("bgp: export policy: %w", err)
	}

	s.events = make(chan *apiutil.WatchEventMessage_PeerEvent, 64)
	s.evWG.Add(1)
	go s.dispatch()
	wctx, cancel := context.WithCancel(context.Background())
	s.watchCx = cancel
	err := s.srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			if ev.Type != apiutil.PEER_EVENT_STATE {
				return
			}
			select {
			case s.events <- ev:
			case <-wctx.Done():
			}
		},
	}, server.WatchPeer())
	if err != nil {
		s.stopLocked()
		return fmt.Errorf("bgp: watch peers: %w", err)
	}
	s.log.Info("BGP server started", "routerID", s.cfg.RouterID, "asn", s.cfg.ASN, "listenPort", port)
	return nil
}

// dispatch turns GoBGP peer events into SessionEvents, in order. It ends
// when s.events is closed.
func (s *Speaker) dispatch() {
	defer s.evWG.Done()
	for {
		var ev *apiutil.WatchEventMessage_PeerEvent
		select {
		case ev = <-s.events:
		case <-s.stopEv:
			return
		}
		addr := ev.Peer.State.NeighborAddress
		st := sessionStateFrom(ev.Peer.State.SessionState)
		s.sessMu.Lock()
		old, known := s.sessions[addr]
		s.sessions[addr] = st
		name := s.names[addr]
		s.sessMu.Unlock()
		if !known {
			old = StateIdle
		}
		if old == st {
			continue
		}
		e := SessionEvent{
			Peer:     name,
			Address:  addr,
			State:    st,
			OldState: old,
			Reason:   disconnectReason(ev.Peer.State.DisconnectReason, ev.Peer.State.DisconnectMessage),
			Time:     time.Now(),
		}
		switch {
		case st == StateEstablished:
			s.log.Info("BGP session up", "peer", e.Peer, "address", addr)
		case old == StateEstablished:
			s.log.Warn("BGP session down", "peer", e.Peer, "address", addr, "state", st, "reason", e.Reason)
		default:
			s.log.Debug("BGP session state", "peer", e.Peer, "address", addr, "state", st, "old", old)
		}
		if s.cfg.OnSessionEvent != nil {
			s.cfg.OnSessionEvent(e)
		}
	}
}

// Shutdown withdraws every advertisement and closes every session, then
// stops the server and every goroutine the Speaker started. Sessions
// without graceful restart get a Cease NOTIFICATION after the explicit
// withdrawals; with graceful restart, the sessions are closed without a
// NOTIFICATION and the routes are not withdrawn, so the router keeps them
// as stale until the speaker is back or the restart time runs out. ctx
// bounds the wait for the withdrawals to be written. Shutdown is
// idempotent.
func (s *Speaker) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != running {
		s.state = stopped
		return nil
	}
	s.log.Info("BGP server shutting down", "peers", len(s.peers), "prefixes", len(s.routes))
	var errs []error
	gr := false
	for _, p := range s.peers {
		gr = gr || p.cfg.GracefulRestart
	}
	if !gr && len(s.routes) > 0 {
		before, err := s.sentUpdates(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{DeleteAll: true}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw all paths: %w", err))
		} else {
			s.routes = map[netip.Prefix]*route{}
			s.waitSent(ctx, before)
		}
	}
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: true}); err != nil {
		errs = append(errs, fmt.Errorf("stop BGP: %w", err))
	}
	s.stopLocked()
	s.log.Info("BGP server stopped")
	return errors.Join(errs...)
}

// stopLocked stops the server (including its BFD goroutines) and the
// Speaker's own goroutines.
func (s *Speaker) stopLocked() {
	if s.watchCx != nil {
		s.watchCx()
	}
	// Stop calls StopBgp again, which fails (and logs, see gobgpHandler)
	// when the server is already stopped; it also stops the BFD server.
	s.stopping.Store(true)
	s.srv.Stop()
	s.serveWG.Wait()
	// GoBGP's watcher goroutine ends by itself once watchCx is cancelled:
	// its callback never blocks past that. The dispatcher stops here; an
	// OnSessionEvent callback that calls back into the Speaker must not
	// need mu (Status does not).
	close(s.stopEv)
	s.evWG.Wait()
	s.state = stopped
}

// sentUpdates returns the UPDATE-sent counter of every established peer.
func (s *Speaker) sentUpdates(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetState().GetSessionState() != api.PeerState_SESSION_STATE_ESTABLISHED {
			return
		}
		out[p.GetConf().GetNeighborAddress()] = p.GetState().GetMessages().GetSent().GetUpdate()
	})
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	return out, nil
}

// waitSent waits until every peer in before has sent at least one more
// UPDATE (the withdrawals), for at most a second or until ctx ends.
func (s *Speaker) waitSent(ctx context.Context, before map[string]uint64) {
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		now, err := s.sentUpdates(ctx)
		if err != nil {
			return
		}
		done := true
		for addr, n := range before {
			if m, ok := now[addr]; ok && m <= n {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			s.log.Warn("timed out waiting for withdrawals to be sent")
			return
		case <-tick.C:
		}
	}
}

func (s *Speaker) checkRunning() error {
	switch s.state {
	case created:
		return errors.New("bgp: speaker not started")
	case stopped:
		return errors.New("bgp: speaker shut down")
	}
	return nil
}

func familyOf(p netip.Prefix) bgp.Family {
	if p.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}
