package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
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
	bfd *bfdServer

	// mu serialises the state-changing calls and guards the fields below.
	mu      sync.Mutex
	state   lifecycle
	peers   map[string]*peerEntry     // by name
	byAddr  map[netip.Addr]*peerEntry // by address
	ids     map[string]uint32         // peer name -> marker id; never reused
	routes  map[netip.Prefix]*route   // what is in GoBGP's RIB
	watchCx context.CancelFunc        // stops the WatchEvent goroutine
	serveWG sync.WaitGroup            // the Serve goroutine
	evWG    sync.WaitGroup            // the event dispatcher goroutine

	// evMu guards events and evClosed: GoBGP's watcher, SetPeers and
	// Shutdown all queue session events, and none may send after close.
	evMu     sync.Mutex
	events   chan rawEvent
	evClosed bool

	// sessMu guards the per-address session bookkeeping below (written by
	// the event dispatcher, SetPeers and BFD). It is never held while
	// taking mu or evMu.
	sessMu   sync.Mutex
	sessions map[netip.Addr]SessionState
	names    map[netip.Addr]string
	causes   map[netip.Addr]string // why the next down transition happens, when Herald caused it
	lastDown map[netip.Addr]string // why the session last went down
	watch    map[netip.Addr]*stallWatch
	// dynExternal holds the local ASN of each dynamicASN: external peer,
	// whose router must not open with it.
	dynExternal map[netip.Addr]uint32

	stopping atomic.Bool // set once the server is being stopped

	// linkLocalNeighbor finds the router of an unnumbered peer; tests
	// replace it.
	linkLocalNeighbor func(ifname string) (netip.Addr, error)
	// ra advertises the node on the interfaces of unnumbered peers.
	ra *raSender
}

// rawEvent is one session state change, from GoBGP or made up by the
// Speaker for a transition GoBGP does not report (a peer removed, the
// server stopped).
type rawEvent struct {
	addr   netip.Addr
	state  SessionState
	reason string
	stall  string // a session that does not come up: the explanation
	// name and old are set on the down event of a peer that is removed:
	// it no longer has any bookkeeping.
	name string
	old  SessionState
	asn  uint32 // the router's ASN, on GoBGP's events
}

// stallWatch follows a session that is not established, to explain one
// that never comes up.
type stallWatch struct {
	since    time.Time     // when the session was added or last left Established
	after    time.Duration // how long before it counts as stuck
	password bool
	passive  bool // the router is the one to connect
	reported bool
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
		causes:   map[netip.Addr]string{},
		lastDown: map[netip.Addr]string{},
		watch:    map[netip.Addr]*stallWatch{},

		dynExternal:       map[netip.Addr]uint32{},
		linkLocalNeighbor: linkLocalNeighbor,
		ra:                newRASender(logger.With(slog.String("component", "ra"))),
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
	glog := slog.New(gobgpHandler{Handler: s.log.Handler(), stopping: &s.stopping, onPrefixLimit: s.onPrefixLimit}).
		With(slog.String("component", "gobgp"))
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
		s.stopLocked("")
		return fmt.Errorf("bgp: start server: %w", err)
	}
	if err := s.installPolicy(ctx); err != nil {
		s.stopLocked("")
		return fmt.Errorf("bgp: policy: %w", err)
	}

	s.bfd = newBFDServer(s.log.With(slog.String("component", "bfd")), s.onBFD)
	s.events = make(chan rawEvent, 64)
	s.evWG.Add(1)
	go s.dispatch()
	wctx, cancel := context.WithCancel(context.Background())
	s.watchCx = cancel
	err := s.srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			if ev.Type != apiutil.PEER_EVENT_STATE {
				return
			}
			s.queue(rawEvent{
				addr:   ev.Peer.State.NeighborAddress,
				state:  sessionStateFrom(ev.Peer.State.SessionState),
				reason: disconnectReason(ev.Peer.State.DisconnectReason, ev.Peer.State.DisconnectMessage),
				asn:    ev.Peer.State.PeerASN,
			})
		},
	}, server.WatchPeer())
	if err != nil {
		s.stopLocked("")
		return fmt.Errorf("bgp: watch peers: %w", err)
	}
	s.log.Info("BGP server started", slog.String("routerID", s.cfg.RouterID.String()),
		slog.Uint64("asn", uint64(s.cfg.ASN)), slog.Int("listenPort", int(port)))
	return nil
}

// queue hands one event to the dispatcher, in order; it drops the event
// once the dispatcher is closed.
func (s *Speaker) queue(ev rawEvent) {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if !s.evClosed {
		s.events <- ev
	}
}

// setCause records why the next down transition of addr happens, when
// Herald is the one causing it.
func (s *Speaker) setCause(addr netip.Addr, cause string) {
	s.sessMu.Lock()
	s.causes[addr] = cause
	s.sessMu.Unlock()
}

// dispatch turns raw events into SessionEvents, in order, one per
// transition, and explains sessions that do not come up. It ends when
// s.events is closed and drained.
func (s *Speaker) dispatch() {
	defer s.evWG.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return
			}
			s.handle(ev)
		case <-tick.C:
			s.checkStalls()
		}
	}
}

func (s *Speaker) handle(ev rawEvent) {
	addr, st := ev.addr, ev.state
	if ev.name != "" {
		e := SessionEvent{Peer: ev.name, Address: addr, State: st, OldState: ev.old, Reason: ev.reason, Time: time.Now()}
		s.log.Warn("BGP session down", slog.String("peer", ev.name), slog.String("address", addr.String()),
			slog.String("state", st.String()), slog.String("reason", ev.reason))
		if s.cfg.OnSessionEvent != nil {
			s.cfg.OnSessionEvent(e)
		}
		return
	}
	s.sessMu.Lock()
	old, known := s.sessions[addr]
	if !known {
		old = StateIdle
	}
	name := s.names[addr]
	if ev.stall != "" {
		s.sessMu.Unlock()
		e := SessionEvent{Peer: name, Address: addr, State: old, OldState: old, Reason: ev.stall, Stalled: true, Time: time.Now()}
		s.log.Warn("BGP session not established", slog.String("peer", name), slog.String("address", addr.String()),
			slog.String("state", old.String()), slog.String("reason", ev.stall))
		if s.cfg.OnSessionEvent != nil {
			s.cfg.OnSessionEvent(e)
		}
		return
	}
	if old == st {
		s.sessMu.Unlock()
		return
	}
	if _, ok := s.names[addr]; ok {
		s.sessions[addr] = st
	}
	reason := ev.reason
	down := old == StateEstablished && st != StateEstablished
	if down {
		if c, ok := s.causes[addr]; ok {
			reason = c
		}
	}
	if down || st == StateEstablished {
		delete(s.causes, addr)
	}
	if down {
		if reason == "" {
			reason = "unknown reason"
		}
		if _, ok := s.names[addr]; ok {
			s.lastDown[addr] = reason
		}
	}
	if w := s.watch[addr]; w != nil {
		switch {
		case st == StateEstablished:
			w.reported = false
		case down:
			w.since, w.reported = time.Now(), false
		}
	}
	s.sessMu.Unlock()
	e := SessionEvent{Peer: name, Address: addr, State: st, OldState: old, Reason: reason, Time: time.Now()}
	if st == StateEstablished {
		s.checkDynamicExternal(addr, ev.asn)
	}
	switch {
	case st == StateEstablished:
		s.log.Info("BGP session up", slog.String("peer", name), slog.String("address", addr.String()))
	case down:
		s.log.Warn("BGP session down", slog.String("peer", name), slog.String("address", addr.String()),
			slog.String("state", st.String()), slog.String("reason", e.Reason))
	default:
		s.log.Debug("BGP session state", slog.String("peer", name), slog.String("address", addr.String()),
			slog.String("state", st.String()), slog.String("old", old.String()))
	}
	if s.cfg.OnSessionEvent != nil {
		s.cfg.OnSessionEvent(e)
	}
}

// checkStalls reports, once per episode, a session that has not come up
// for longer than its watch allows. GoBGP says nothing about connection
// attempts that time out, which is what a TCP-MD5 mismatch looks like: the
// router's kernel drops the segments without an answer.
func (s *Speaker) checkStalls() {
	now := time.Now()
	var out []rawEvent
	s.sessMu.Lock()
	for addr, w := range s.watch {
		if w.reported || s.sessions[addr] == StateEstablished || now.Sub(w.since) < w.after {
			continue
		}
		w.reported = true
		out = append(out, rawEvent{addr: addr, stall: s.stallReason(now.Sub(w.since), w)})
	}
	s.sessMu.Unlock()
	for _, ev := range out {
		s.handle(ev)
	}
}

func (s *Speaker) stallReason(d time.Duration, w *stallWatch) string {
	if w.passive {
		msg := fmt.Sprintf("not established after %v: the session is passive and the router has not connected: check that it dials this node on TCP port %d", d.Round(time.Second), s.cfg.ListenPort)
		if w.password {
			msg += " with the same TCP-MD5 password"
		}
		return msg
	}
	msg := fmt.Sprintf("not established after %v: the connection attempts get no answer", d.Round(time.Second))
	if w.password {
		msg += "; a TCP-MD5 password is configured, and a router with another password (or none) drops the connection attempts silently: check that both ends use the same password"
	} else {
		msg += "; check that the router is reachable and configured with this node as a neighbor"
	}
	return msg
}

// lastError returns why the session with addr last went down, as the
// down event said.
func (s *Speaker) lastError(addr netip.Addr) string {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	return s.lastDown[addr]
}

// stallExplanation returns the stall explanation of addr, if reported.
func (s *Speaker) stallExplanation(addr netip.Addr) string {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	w := s.watch[addr]
	if w == nil || !w.reported || s.sessions[addr] == StateEstablished {
		return ""
	}
	return s.stallReason(time.Since(w.since), w)
}

// onBFD handles a BFD state change: a failure resets the BGP session, with
// the BFD reason as the cause of the down event.
func (s *Speaker) onBFD(c bfdChange) {
	s.sessMu.Lock()
	name := s.names[c.peer]
	s.sessMu.Unlock()
	attrs := []any{slog.String("peer", name), slog.String("address", c.peer.String()),
		slog.String("state", string(c.new)), slog.String("old", string(c.old))}
	if c.reason != "" {
		attrs = append(attrs, slog.String("reason", c.reason))
	}
	switch {
	case c.new == BFDUp:
		s.log.Info("BFD session up", attrs...)
	case c.old == BFDUp:
		s.log.Warn("BFD session down", attrs...)
	default:
		s.log.Debug("BFD session state", attrs...)
	}
	if !c.failure || s.stopping.Load() {
		return
	}
	// A router whose BGP session Herald is closing (a changed peer) takes
	// its BFD session down too; the cause Herald recorded stays.
	// Only an established session is reset: GoBGP queues the Cease of a
	// reset that finds no established session and sends it the moment
	// the next session comes up, which would close that one for a BFD
	// failure it never saw.
	s.sessMu.Lock()
	_, pending := s.causes[c.peer]
	established := s.sessions[c.peer] == StateEstablished
	if !pending && established {
		s.causes[c.peer] = c.reason
	}
	s.sessMu.Unlock()
	if pending || !established {
		return
	}
	err := s.srv.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: c.peer.String(), Communication: "BFD down"})
	if err != nil {
		s.log.Warn("BGP reset after BFD down", slog.String("peer", name), slog.Any("error", err))
	}
}

// onPrefixLimit records the cause of the session reset that GoBGP is about
// to make: the peer sent more prefixes than the guard allows.
func (s *Speaker) onPrefixLimit(addr netip.Addr, family string) {
	limit := s.cfg.MaxReceivedPrefixes
	if limit == 0 {
		limit = DefaultMaxReceivedPrefixes
	}
	s.setCause(addr, fmt.Sprintf("the router sent more than %d %s prefixes (Herald accepts none; the guard closed the session with Cease / maximum number of prefixes reached, and keeps it down until the peer is reconfigured or the speaker restarts)", limit, family))
}

// AdminShutdownMessage is the Administrative Shutdown communication (RFC
// 8203) the routers read when a speaker stops.
const AdminShutdownMessage = "Herald speaker stopping"

// Shutdown withdraws every advertisement and closes every session, then
// stops the server and every goroutine the Speaker started, for a restart
// of the speaker: ShutdownFor with restart set and AdminShutdownMessage.
func (s *Speaker) Shutdown(ctx context.Context) error {
	return s.ShutdownFor(ctx, "speaker stopping", AdminShutdownMessage, true)
}

// ShutdownFor closes every session with cause (what the down events and
// logs give) and stops the server and every goroutine the Speaker started.
// BFD sessions are stopped last with AdminDown, so that a router does not
// read the silence that follows as a failure. Sessions without graceful
// restart get the explicit withdrawals, then a Cease / Administrative
// Shutdown NOTIFICATION (RFC 8203, with message).
//
// Sessions with graceful restart depend on restart. When the speaker stops
// to start again (restart: a rolling upgrade, a crash), they are closed
// without a NOTIFICATION and their routes are not withdrawn, so the router
// keeps them as stale until the speaker is back or the restart time runs
// out. When it stops for good (no BGPPeer selects the node any more, the
// router ID changes, Herald is uninstalled), they are treated like the
// others: withdrawals, then a Cease, so that the router forgets the routes
// at once instead of keeping them for the restart time. ctx bounds the wait
// for the withdrawals and notifications to be written. ShutdownFor is
// idempotent.
func (s *Speaker) ShutdownFor(ctx context.Context, cause, message string, restart bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != running {
		s.state = stopped
		return nil
	}
	s.log.Info("BGP server shutting down", slog.Int("peers", len(s.peers)), slog.Int("prefixes", len(s.routes)), slog.Bool("restart", restart))
	s.stopping.Store(true)
	var errs []error
	gr := false
	for _, p := range s.peers {
		gr = gr || (restart && p.cfg.GracefulRestart)
		s.setCause(p.cfg.Address, cause)
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
			s.waitSent(ctx, before, updatesSent)
		}
	}
	var cease []string
	for _, p := range s.peers {
		if !restart || !p.cfg.GracefulRestart {
			cease = append(cease, p.cfg.Address.String())
		}
	}
	if err := s.adminShutdown(ctx, cease, message); err != nil {
		errs = append(errs, err)
	}
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: restart}); err != nil {
		errs = append(errs, fmt.Errorf("stop BGP: %w", err))
	}
	// BFD last: a router that reads AdminDown while the BGP session is
	// still up closes it at once (FRR and BIRD send Cease / BFD down),
	// which would defeat graceful restart. After the TCP close, the router
	// is in graceful-restart helper mode and reads AdminDown, not silence.
	s.bfd.stopAll()
	s.stopLocked(cause)
	s.log.Info("BGP server stopped", slog.String("cause", cause))
	return errors.Join(errs...)
}

// adminShutdown sends a Cease / Administrative Shutdown with msg to the
// established sessions among addrs, and waits (bounded by ctx and a
// second) until GoBGP has written them.
func (s *Speaker) adminShutdown(ctx context.Context, addrs []string, msg string) error {
	if len(addrs) == 0 {
		return nil
	}
	before, err := s.sentNotifications(ctx)
	if err != nil {
		return err
	}
	var errs []error
	wait := map[string]uint64{}
	for _, a := range addrs {
		n, ok := before[a]
		if !ok {
			continue // not established: nothing to tell
		}
		if err := s.srv.ShutdownPeer(ctx, &api.ShutdownPeerRequest{Address: a, Communication: msg}); err != nil {
			errs = append(errs, fmt.Errorf("shutdown peer %s: %w", a, err))
			continue
		}
		wait[a] = n
	}
	s.waitSent(ctx, wait, notificationsSent)
	return errors.Join(errs...)
}

// stopLocked stops BFD, the server and the Speaker's own goroutines. The
// sessions that were still established get a down event with cause (or
// GoBGP's reason when cause is empty) before the dispatcher ends, so that
// none is lost.
func (s *Speaker) stopLocked(cause string) {
	if s.bfd != nil {
		s.bfd.stopAll()
	}
	s.ra.stopAll()
	if s.watchCx != nil {
		s.watchCx()
	}
	// Stop calls StopBgp again, which fails (and logs, see gobgpHandler)
	// when the server is already stopped; it also stops GoBGP's BFD server.
	s.stopping.Store(true)
	s.srv.Stop()
	s.serveWG.Wait()
	if s.events != nil {
		s.sessMu.Lock()
		var up []netip.Addr
		for addr, st := range s.sessions {
			if st == StateEstablished {
				up = append(up, addr)
			}
		}
		s.sessMu.Unlock()
		slices.SortFunc(up, netip.Addr.Compare)
		for _, addr := range up {
			s.queue(rawEvent{addr: addr, state: StateIdle, reason: cause})
		}
		s.evMu.Lock()
		s.evClosed = true
		close(s.events)
		s.evMu.Unlock()
		s.evWG.Wait()
	}
	s.state = stopped
}

type counter func(*api.Peer) uint64

func updatesSent(p *api.Peer) uint64 { return p.GetState().GetMessages().GetSent().GetUpdate() }
func notificationsSent(p *api.Peer) uint64 {
	return p.GetState().GetMessages().GetSent().GetNotification()
}

// sentUpdates returns the UPDATE-sent counter of every established peer.
func (s *Speaker) sentUpdates(ctx context.Context) (map[string]uint64, error) {
	return s.sentCount(ctx, updatesSent)
}

// sentNotifications returns the NOTIFICATION-sent counter of every
// established peer.
func (s *Speaker) sentNotifications(ctx context.Context) (map[string]uint64, error) {
	return s.sentCount(ctx, notificationsSent)
}

func (s *Speaker) sentCount(ctx context.Context, c counter) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetState().GetSessionState() != api.PeerState_SESSION_STATE_ESTABLISHED {
			return
		}
		out[p.GetConf().GetNeighborAddress()] = c(p)
	})
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	return out, nil
}

// waitSent waits until every peer in before has sent at least one more
// message of the counted kind, or is no longer established, for at most a
// second or until ctx ends.
func (s *Speaker) waitSent(ctx context.Context, before map[string]uint64, c counter) {
	if len(before) == 0 {
		return
	}
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		done := true
		err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			n, ok := before[p.GetConf().GetNeighborAddress()]
			if ok && p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED && c(p) <= n {
				done = false
			}
		})
		if err != nil || done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			s.log.Warn("timed out waiting for messages to be sent")
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
