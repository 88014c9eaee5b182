package speaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/bgp"
)

// Event reasons of BGP mode, recorded on the speaker's Node.
const (
	ReasonBGPSessionUp   = "BGPSessionUp"
	ReasonBGPSessionDown = "BGPSessionDown"
	ReasonBGPPeerInvalid = "BGPPeerInvalid"
	// ReasonBGPSessionNotEstablished: a session that has not come up for
	// a while, with the likely cause (one event per episode).
	ReasonBGPSessionNotEstablished = "BGPSessionNotEstablished"
)

// resourceSessionStates is the resource of [v1beta1.BGPSessionState].
const resourceSessionStates = "bgpsessionstates"

// BGPConfig configures the speaker's BGP mode.
type BGPConfig struct {
	// Disabled turns BGP mode off: no GoBGP server is ever started.
	Disabled bool
	// ListenPort, if set, makes the server accept BGP connections on this
	// port; zero only dials out, so the node can run another BGP daemon.
	ListenPort uint16
	// StatusInterval is how often the BGPSessionState objects are refreshed
	// (prefix and update counts) besides on every session change.
	// Default 10s.
	StatusInterval time.Duration
	// ShutdownTimeout bounds the withdrawal on shutdown. Default 3s.
	ShutdownTimeout time.Duration
	// MaxReceivedPrefixes closes a session whose router sends more
	// prefixes per family; zero is bgp.DefaultMaxReceivedPrefixes.
	MaxReceivedPrefixes uint32
}

// bgpMode is the speaker's BGP half. The loop computes what BGP should
// look like (peers, advertisements) and posts it to a worker that applies
// it on a goroutine of its own (see bgpWorker): no BGP call runs on the
// loop, which also handles membership and L2. The fields without a lock
// are owned by the loop goroutine; the server and the problems are
// written by the worker and read by the status writer and the metrics
// collector.
type bgpMode struct {
	cfg BGPConfig

	server   atomic.Pointer[bgpHandle]
	stopping atomic.Bool                       // shutting down: the status writer stops writing
	problems atomic.Pointer[map[string]string] // peer -> why it is not as configured
	kick     chan struct{}                     // wakes the status writer

	worker *bgpWorker // started with the first sync

	// Loop-owned.
	node     BGPNode
	nodeOK   bool
	plan     PeerPlan
	planOK   bool
	keyAds   map[string][]bgp.Advertisement // group key -> what this node advertises
	adsDirty bool
	adsGen   uint64
	ads      []bgp.Advertisement
	pushed   int // prefixes handed over in the last push, for logs

	// Worker-owned.
	reported map[string]string // problems already logged and recorded as events
}

// bgpHandle boxes the running server for atomic.Pointer.
type bgpHandle struct{ bgpServer }

func newBGPMode(cfg BGPConfig) *bgpMode {
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = 10 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 3 * time.Second
	}
	return &bgpMode{cfg: cfg, kick: make(chan struct{}, 1), keyAds: make(map[string][]bgp.Advertisement), reported: map[string]string{}}
}

func (m *bgpMode) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// bgpSync brings BGP mode up to date after the loop handled a batch:
// the peers when the configuration or this node changed, and the
// advertisements of the touched group keys: keys (Services and election
// changes) and bgpKeys (the keys of the pools whose BGP settings changed,
// see [State.SetConfig]); every key when this node changed. It only plans:
// the worker applies, so this never waits for BGP. It reports whether what
// every key advertises may have changed (the peers or this node did).
func (s *Speaker) bgpSync(ctx context.Context, keys, bgpKeys map[string]bool, cfgChanged bool) (all bool) {
	m := s.bgp
	if m == nil || s.st.Config() == nil {
		return false
	}
	nodeChanged := false
	if n, err := s.nodes.Get(s.self); err == nil {
		bn := BGPNodeOf(n)
		bn.Excluded = Candidate(n, nil, s.cfg.IgnoreExcludeLB).Excluded
		if !m.nodeOK || !bn.equal(m.node) {
			m.node, m.nodeOK, nodeChanged = bn, true, true
		}
	}
	if !m.nodeOK {
		return false // our Node object is not known yet: no router ID, no labels
	}
	planChanged := false
	if cfgChanged || nodeChanged {
		if plan := PlanPeers(s.st.Config(), m.node); !m.planOK || !reflect.DeepEqual(plan, m.plan) {
			m.plan, m.planOK, planChanged = plan, true, true
		}
	}
	if nodeChanged {
		// Node labels and exclusion weigh on every advertisement.
		for key := range m.keyAds {
			if !s.st.HasKey(key) {
				delete(m.keyAds, key)
				m.adsDirty = true
			}
		}
		for key := range s.st.GroupKeys() {
			s.bgpPlanKey(key)
		}
	} else {
		for key := range keys {
			s.bgpPlanKey(key)
		}
		for key := range bgpKeys {
			if !keys[key] {
				s.bgpPlanKey(key)
			}
		}
	}
	if m.adsDirty {
		keys := slices.Sorted(maps.Keys(m.keyAds))
		var all []bgp.Advertisement
		for _, k := range keys {
			all = append(all, m.keyAds[k]...)
		}
		m.ads, m.adsDirty = all, false
		m.adsGen++
		if len(all) != m.pushed {
			s.log.Debug("BGP advertisements planned", slog.Int("advertisements", len(all)))
			m.pushed = len(all)
		}
	} else if !planChanged {
		return nodeChanged
	}
	if m.worker == nil {
		m.worker = s.newBGPWorker()
		m.worker.start()
	}
	m.worker.post(&bgpWant{plan: m.plan, ads: m.ads, adsGen: m.adsGen})
	return planChanged || nodeChanged
}

// newBGPWorker returns the worker that applies this speaker's BGP plans.
func (s *Speaker) newBGPWorker() *bgpWorker {
	m := s.bgp
	return newBGPWorker(&bgpWorker{
		log:             s.log.With(slog.String("component", "bgp")),
		shutdownTimeout: m.cfg.ShutdownTimeout,
		newServer: func(ctx context.Context, routerID netip.Addr, asn uint32) (bgpServer, error) {
			sp, err := bgp.New(s.log.With(slog.String("component", "bgp")), bgp.Config{
				RouterID:            routerID,
				ASN:                 asn,
				ListenPort:          m.cfg.ListenPort,
				MaxReceivedPrefixes: m.cfg.MaxReceivedPrefixes,
				OnSessionEvent:      s.onSessionEvent,
			})
			if err != nil {
				return nil, err
			}
			if err := sp.Start(ctx); err != nil {
				return nil, err
			}
			return sp, nil
		},
		onServer: func(srv bgpServer) {
			if srv == nil {
				m.server.Store(nil)
			} else {
				m.server.Store(&bgpHandle{srv})
			}
			m.wake()
		},
		onProblems: s.bgpProblems,
	})
}

// bgpProblems publishes the peer problems of one worker pass, logging and
// recording an event for each new one.
func (s *Speaker) bgpProblems(problems map[string]string) {
	m := s.bgp
	for name, p := range problems {
		if m.reported[name] != p {
			s.log.Warn("BGP peer not used as configured", slog.String("peer", name), slog.String("problem", p))
			s.nodeEvent(corev1.EventTypeWarning, ReasonBGPPeerInvalid, "BGPPeer %s: %s", name, p)
		}
	}
	m.reported = maps.Clone(problems)
	if old := m.problems.Load(); old == nil || !maps.Equal(*old, problems) {
		m.problems.Store(&problems)
		m.wake()
	}
}

// bgpPlanKey recomputes what this node advertises for one group key.
func (s *Speaker) bgpPlanKey(key string) {
	m := s.bgp
	s.bgpPlans.Add(1)
	var ads []bgp.Advertisement
	if names := s.st.Members(key); len(names) > 0 {
		members := make([]*ServiceInfo, 0, len(names))
		for _, name := range names {
			if info := s.st.Info(name); info != nil {
				members = append(members, info)
			}
		}
		ads = PlanAdvertisements(s.st.Config(), m.node, members)
	}
	old, had := m.keyAds[key]
	if len(ads) == 0 {
		if had {
			delete(m.keyAds, key)
			m.adsDirty = true
		}
		return
	}
	if !had || !sameAdvertisements(old, ads) {
		m.keyAds[key] = ads
		m.adsDirty = true
	}
}

// bgpShutdown stops the worker, then withdraws every prefix and closes
// every session, within the shutdown timeout. For a restart, sessions with
// graceful restart are closed without a NOTIFICATION and keep their routes
// at the routers.
func (s *Speaker) bgpShutdown(ctx context.Context, restart bool) {
	m := s.bgp
	if m.worker != nil {
		m.worker.stop(ctx, restart)
	}
}

// onSessionEvent records session changes as events on the Node (the bgp
// package logs them, once) and wakes the status writer. It runs on the
// bgp package's event goroutine and must not block.
func (s *Speaker) onSessionEvent(e bgp.SessionEvent) {
	switch {
	case e.Stalled:
		s.nodeEvent(corev1.EventTypeWarning, ReasonBGPSessionNotEstablished, "BGP session to %s (%s) %s", e.Peer, e.Address, e.Reason)
	case e.Up():
		s.nodeEvent(corev1.EventTypeNormal, ReasonBGPSessionUp, "BGP session to %s (%s) established", e.Peer, e.Address)
	case e.Down():
		s.nodeEvent(corev1.EventTypeWarning, ReasonBGPSessionDown, "BGP session to %s (%s) went down: %s", e.Peer, e.Address, e.Reason)
	}
	s.bgp.wake()
}

// BGPStatus returns the state of this node's sessions, nil when no BGP
// server runs.
func (s *Speaker) BGPStatus(ctx context.Context) ([]bgp.PeerStatus, error) {
	if s.bgp == nil {
		return nil, nil
	}
	h := s.bgp.server.Load()
	if h == nil {
		return nil, nil
	}
	return h.Status(ctx)
}

// BGPAdvertised returns how many prefixes this node hands to its BGP
// server.
func (s *Speaker) BGPAdvertised() int {
	if s.bgp == nil {
		return 0
	}
	if h := s.bgp.server.Load(); h != nil {
		return len(h.Advertised())
	}
	return 0
}

// statusWriter keeps one BGPSessionState per peer of this node up to date:
// on every session change and every StatusInterval. It runs until ctx ends.
// When ctx ends it marks the sessions as stopped (the server is shut down
// by then) and returns.
func (s *Speaker) statusWriter(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	m := s.bgp
	w := &sessionWriter{s: s, written: map[string]v1beta1.BGPSessionStateStatus{}, seen: map[string]seenState{}}
	w.cleanup(ctx)
	t := time.NewTicker(m.cfg.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			w.final(fctx)
			cancel()
			return
		case <-m.kick:
		case <-t.C:
		}
		if !m.stopping.Load() {
			w.sync(ctx)
		}
	}
}

// seenState is what the writer remembers of a session between passes.
type seenState struct {
	state string
	since time.Time
}

// sessionWriter writes BGPSessionState objects; it is owned by the status
// writer goroutine.
type sessionWriter struct {
	s       *Speaker
	written map[string]v1beta1.BGPSessionStateStatus // object name -> last written status
	seen    map[string]seenState                     // peer -> last state
}

// SessionStateName returns the name of the BGPSessionState of node and
// peer.
func SessionStateName(node, peer string) string {
	name := node + "-" + peer
	if len(name) > 253 {
		name = name[:253]
	}
	return name
}

// sync writes what changed since the last pass and deletes the objects of
// peers this node no longer has.
func (w *sessionWriter) sync(ctx context.Context) {
	s := w.s
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	statuses, err := s.BGPStatus(sctx)
	if err != nil {
		s.log.Warn("BGP status", slog.Any("error", err))
		return
	}
	want := map[string]v1beta1.BGPSessionStateStatus{}
	now := time.Now()
	for _, st := range statuses {
		want[st.Name] = w.statusOf(st, now)
	}
	if p := s.bgp.problems.Load(); p != nil {
		for name, problem := range *p {
			st, ok := want[name]
			if !ok {
				st = w.statusOf(bgp.PeerStatus{Name: name, State: bgp.StateIdle}, now)
			}
			if st.LastError == "" || st.State != bgp.StateEstablished.String() {
				st.LastError = problem
			}
			want[name] = st
		}
	}
	for peer, st := range want {
		name := SessionStateName(s.self, peer)
		if old, ok := w.written[name]; ok && reflect.DeepEqual(old, st) {
			continue
		}
		if err := w.apply(sctx, name, peer, st); err != nil {
			s.log.Warn("write BGPSessionState", slog.String("name", name), slog.Any("error", err))
			continue
		}
		w.written[name] = st
	}
	for name, st := range w.written {
		if _, ok := want[st.Peer]; ok {
			continue
		}
		if err := w.delete(sctx, name); err != nil {
			s.log.Warn("delete BGPSessionState", slog.String("name", name), slog.Any("error", err))
			continue
		}
		delete(w.written, name)
		delete(w.seen, st.Peer)
	}
}

func (w *sessionWriter) statusOf(st bgp.PeerStatus, now time.Time) v1beta1.BGPSessionStateStatus {
	out := v1beta1.BGPSessionStateStatus{
		Node:      w.s.self,
		Peer:      st.Name,
		State:     st.State.String(),
		BFDState:  string(st.BFD),
		LastError: st.LastError,
	}
	if st.Address.IsValid() {
		out.PeerAddress = st.Address.String()
	}
	if st.LocalAddress.IsValid() {
		out.LocalAddress = st.LocalAddress.String()
	}
	for _, n := range st.PrefixesSent {
		out.PrefixesSent += int64(n)
	}
	out.UpdatesSent = int64(st.UpdatesSent)
	if !st.EstablishedAt.IsZero() {
		t := metav1.NewTime(st.EstablishedAt.Truncate(time.Second))
		out.EstablishedTime = &t
	}
	seen, ok := w.seen[st.Name]
	if !ok || seen.state != out.State {
		seen = seenState{state: out.State, since: now}
		w.seen[st.Name] = seen
	}
	t := metav1.NewTime(seen.since.Truncate(time.Second))
	out.LastTransitionTime = &t
	return out
}

// apply creates or replaces one object with server-side apply, so that no
// read is needed first.
func (w *sessionWriter) apply(ctx context.Context, name, peer string, st v1beta1.BGPSessionStateStatus) error {
	s := w.s
	obj := v1beta1.BGPSessionState{
		TypeMeta: metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "BGPSessionState"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: s.cfg.Namespace,
			Labels: map[string]string{v1beta1.LabelSessionNode: s.self, v1beta1.LabelSessionPeer: peer},
		},
		Status: st,
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	force := true
	err = s.cfg.Clients.Herald.Patch(types.ApplyPatchType).Namespace(s.cfg.Namespace).Resource(resourceSessionStates).Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: "herald-speaker", Force: &force}, metav1.ParameterCodec).
		Body(body).Do(ctx).Error()
	if err != nil {
		return fmt.Errorf("apply %s/%s: %w", s.cfg.Namespace, name, err)
	}
	return nil
}

func (w *sessionWriter) delete(ctx context.Context, name string) error {
	s := w.s
	err := s.cfg.Clients.Herald.Delete().Namespace(s.cfg.Namespace).Resource(resourceSessionStates).Name(name).Do(ctx).Error()
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s/%s: %w", s.cfg.Namespace, name, err)
	}
	return nil
}

// cleanup remembers the objects an earlier run of this node's speaker
// left, so that the first pass deletes those of peers that are gone.
func (w *sessionWriter) cleanup(ctx context.Context) {
	s := w.s
	var list v1beta1.BGPSessionStateList
	err := s.cfg.Clients.Herald.Get().Namespace(s.cfg.Namespace).Resource(resourceSessionStates).
		VersionedParams(&metav1.ListOptions{LabelSelector: v1beta1.LabelSessionNode + "=" + s.self}, metav1.ParameterCodec).
		Do(ctx).Into(&list)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("list BGPSessionStates", slog.Any("error", err))
		}
		return
	}
	for _, o := range list.Items {
		st := o.Status
		st.Peer = o.Labels[v1beta1.LabelSessionPeer]
		st.State = "" // never equal to a live status: rewritten on the first pass
		w.written[o.Name] = st
	}
}

// final marks this node's sessions as stopped, after the server is shut
// down, so that kubectl does not show a stale Established.
func (w *sessionWriter) final(ctx context.Context) {
	for name, st := range w.written {
		if st.State == bgp.StateIdle.String() {
			continue
		}
		st.State = bgp.StateIdle.String()
		st.BFDState = ""
		st.PrefixesSent = 0
		st.LastError = "speaker stopped"
		now := metav1.Now()
		st.LastTransitionTime = &now
		if err := w.apply(ctx, name, st.Peer, st); err != nil {
			w.s.log.Debug("final BGPSessionState", slog.String("name", name), slog.Any("error", err))
		}
	}
}
