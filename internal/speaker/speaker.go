package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/layer2"
	"github.com/heraldlb/herald/internal/membership"
)

// Event reasons the speaker records.
const (
	ReasonAnnouncing          = "Announcing"
	ReasonWithdrawn           = "Withdrawn"
	ReasonIPVSStrictARP       = "IPVSWithoutStrictARP"
	ReasonMemberlistKey       = "MemberlistKeyMismatch"
	ReasonMemberlistNoSecret  = "MemberlistSecretMissing"
	ReasonNotAnnounced        = "NotAnnounced"
	endpointSliceServiceIndex = "service"
)

// SecretKey is the key of the memberlist Secret's data that holds the
// shared secret.
const SecretKey = "secretkey"

// SecretKeyPrevious is the optional key of the memberlist Secret's data
// that holds the secret of before a rotation. It stays accepted, and a
// speaker that starts while it is set encrypts with it until every member
// accepts the new one (docs/operations.md, "Rotating the memberlist key").
const SecretKeyPrevious = "previous"

// Config configures a [Speaker].
type Config struct {
	// NodeName is this node's name. Required.
	NodeName string
	// Namespace is the speaker's namespace, where its Secret and pods are.
	Namespace string
	// PodName is the speaker's pod, whose DaemonSet tells an uninstall
	// from a restart (see stopsForGood). Empty: every stop is a restart,
	// unless Namespace is being deleted.
	PodName string
	// LBClass is the loadBalancerClass the speaker serves; empty serves the
	// Services without a class.
	LBClass string
	// Clients reach the API server.
	Clients *k8s.Clients
	// Recorder records events; nil records none.
	Recorder record.EventRecorder
	// Membership configures the memberlist member. The speaker fills in
	// Name (NodeName), AdvertiseAddr (the Node's InternalIP, when empty),
	// Secret, Meta and OnKeyMismatch.
	Membership membership.Config
	// SecretName names the Secret the memberlist key is derived from (data
	// key "secretkey"). Empty disables encryption (not for production).
	SecretName string
	// PeerSelector, if set, selects the speaker pods in Namespace whose IPs
	// are the peers (see [PodPeers]); otherwise every Node's InternalIP is
	// (see [NodePeers]).
	PeerSelector labels.Selector
	// Layer2 are the announcer's options; Logger and Stats are filled in.
	Layer2 layer2.Options
	// SysClassNet and ProcSysNet locate the node's interfaces and sysctls.
	// Defaults /sys/class/net and /proc/sys/net.
	SysClassNet, ProcSysNet string
	// InterfacePoll is how often the interfaces are listed again. Default 2s.
	InterfacePoll time.Duration
	// HoldDown is how long an interface that becomes usable (carrier back)
	// and the membership must be stable before the node announces from it
	// (see [HoldDown]). Default [DefaultHoldDown].
	HoldDown time.Duration
	// BGP configures BGP mode.
	BGP BGPConfig
	// IgnoreExcludeLB makes nodes labelled
	// node.kubernetes.io/exclude-from-external-load-balancers eligible.
	// Every speaker must have the same value, or they elect differently.
	IgnoreExcludeLB bool
	// ExcludeInterfaces are the interface names or patterns this node
	// never answers on nor publishes (see config.DefaultExcludedInterfaces).
	ExcludeInterfaces []string
	// Logger receives the log. Nil discards.
	Logger *slog.Logger
}

// Speaker runs the speaker of one node: layer 2 and BGP mode. Create it with [New], run
// it with [Speaker.Run].
type Speaker struct {
	cfg  Config
	log  *slog.Logger
	rec  record.EventRecorder
	self string

	announcer announcer
	cluster   atomic.Pointer[membership.Cluster]
	ready     atomic.Bool
	ipvsWarn  atomic.Bool

	// Informers and listers.
	factory  informers.SharedInformerFactory
	podFact  informers.SharedInformerFactory
	herald   *k8s.HeraldInformers
	services corelisters.ServiceLister
	nodes    corelisters.NodeLister
	slices   cache.Indexer
	peers    PeerSource
	secFact  informers.SharedInformerFactory
	secrets  corelisters.SecretNamespaceLister
	keyFact  informers.SharedInformerFactory // the memberlist Secret alone
	keySec   corelisters.SecretNamespaceLister
	nsFact   informers.SharedInformerFactory // the speaker's namespace alone
	// uninstalling is set once the speaker's namespace is being deleted:
	// the configuration is then kept as it is until the speaker stops.
	uninstalling atomic.Bool
	bgp          *bgpMode // nil when BGP mode is disabled
	ann          *annWriter
	bgpRep       *bgpReporter // nil when BGP mode is disabled

	pend pending

	// State below is owned by the loop goroutine.
	st        *State
	alive     map[string][]byte   // live member -> meta
	lastPeers []string            // last list handed to the joiner
	joinCh    chan []string       // to the joiner
	ownIfaces []string            // interfaces published in meta
	hold      *HoldDown           // keeps interfaces back that became usable
	holdLog   []string            // interfaces last logged as held
	metaSet   bool                // ownIfaces were published
	pubKeys   membership.KeyState // key state published in meta
	keyWarned bool                // the Secret's absence was logged
	// joinedOrLeft is set when a member other than this one joined or
	// left, until the owned IPs are announced again.
	joinedOrLeft bool
	announcedN   [2]atomic.Int64 // IPv4, IPv6 IPs answered
	unannounced  atomic.Pointer[map[election.Reason]int]
	// The ServiceAnnouncements this node wants (see announcements.go):
	// annKeys are the group keys to look at again, annLeft the nodes that
	// left the memberlist since the last pass, annSwept whether the objects
	// an earlier run of this node left were looked at.
	annT     *annTracker
	annKeys  map[string]bool
	annLeft  []string
	annSwept bool
	mismatch chan membership.KeyMismatch // from memberlist to the loop
	// The state is not settled until the first attempt to join the other
	// speakers is over (or settleTimeout passed): until then this node
	// announces nothing in L2 mode, because alone it would elect itself for
	// every IP and take the traffic from the real owners, as in every
	// rolling upgrade. settleCh is closed, once, by settle.
	settleCh   chan struct{}
	settle     func()
	keyRefused atomic.Bool // every peer refused our memberlist key
	// rebuilds counts configuration snapshots built; elections counts
	// election keys (re)decided. Both prove that an echo costs nothing.
	rebuilds, elections atomic.Uint64
	// bgpPlans counts group keys whose BGP advertisements were planned.
	bgpPlans atomic.Uint64
}

// settleTimeout bounds how long a speaker that cannot reach any peer waits
// before it announces on its own.
const settleTimeout = 5 * time.Second

// pending collects what informers report until the loop handles it, so that
// a burst of events costs one pass per object.
type pending struct {
	mu       sync.Mutex
	services map[string]struct{}
	nodes    map[string]struct{}
	config   bool
	peers    bool
	keys     bool
	// bgpSvcs and bgpNodes are the Services whose BGP ServiceAnnouncements
	// changed and the nodes whose BGPSessionStates changed, for the
	// reporter (see bgpreport.go).
	bgpSvcs  map[string]struct{}
	bgpNodes map[string]struct{}
	signal   chan struct{}
}

func (p *pending) mark(f func()) {
	p.mu.Lock()
	f()
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (p *pending) service(key string) {
	p.mark(func() { p.services[key] = struct{}{} })
}

func (p *pending) node(name string) {
	p.mark(func() { p.nodes[name] = struct{}{}; p.peers = true })
}

// takeKeys reports and clears whether the memberlist Secret changed.
func (p *pending) takeKeys() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.keys
	p.keys = false
	return k
}

// takeBGP returns and clears what the BGP reporter should look at again.
func (p *pending) takeBGP() (svcs, nodes []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return drain(p.bgpSvcs), drain(p.bgpNodes)
}

// drain returns the keys of set, sorted, and empties it.
func drain(set map[string]struct{}) []string {
	keys := slices.Sorted(maps.Keys(set))
	clear(set)
	return keys
}

// take returns and clears what is pending.
func (p *pending) take() (services, nodes []string, cfg, peers bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	services, nodes = drain(p.services), drain(p.nodes)
	cfg, peers = p.config, p.peers
	p.config, p.peers = false, false
	return services, nodes, cfg, peers
}

// New returns a speaker; it does nothing until Run.
func New(cfg Config) (*Speaker, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("speaker: node name is required")
	}
	if cfg.Clients == nil {
		return nil, errors.New("speaker: clients are required")
	}
	if cfg.SysClassNet == "" {
		cfg.SysClassNet = "/sys/class/net"
	}
	if cfg.ProcSysNet == "" {
		cfg.ProcSysNet = "/proc/sys/net"
	}
	if cfg.InterfacePoll <= 0 {
		cfg.InterfacePoll = 2 * time.Second
	}
	if cfg.HoldDown <= 0 {
		cfg.HoldDown = DefaultHoldDown
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Speaker{
		cfg:      cfg,
		log:      log,
		rec:      cfg.Recorder,
		self:     cfg.NodeName,
		alive:    make(map[string][]byte),
		joinCh:   make(chan []string, 1),
		settleCh: make(chan struct{}),
		mismatch: make(chan membership.KeyMismatch, 16),
		pend: pending{
			services: make(map[string]struct{}),
			nodes:    make(map[string]struct{}),
			bgpSvcs:  make(map[string]struct{}),
			bgpNodes: make(map[string]struct{}),
			signal:   make(chan struct{}, 1),
		},
	}
	s.settle = sync.OnceFunc(func() { close(s.settleCh) })
	s.hold = NewHoldDown(cfg.HoldDown, nil)
	s.annT, s.annKeys = newAnnTracker(), map[string]bool{}
	ann, err := newAnnWriter(cfg.NodeName, cfg.Clients, log.With(slog.String("component", "announcements")))
	if err != nil {
		return nil, err
	}
	s.ann = ann
	s.st = NewState(cfg.NodeName, func() { s.elections.Add(1) })
	if !cfg.BGP.Disabled {
		s.bgp = newBGPMode(cfg.BGP)
		if err := s.setupBGPReporter(); err != nil {
			return nil, err
		}
	}
	opts := cfg.Layer2
	opts.Logger = log.With(slog.String("component", "layer2"))
	s.announcer = layer2.NewAnnouncer(layer2.AnnouncerConfig{Options: opts, SysClassNet: cfg.SysClassNet, Exclude: s.excludedInterface})
	if err := s.setupInformers(); err != nil {
		return nil, err
	}
	return s, nil
}

// announcer answers ARP and NDP for the IPs it is given: the layer 2 edge
// (a [layer2.Announcer], or a fake in tests).
type announcer interface {
	Run(ctx context.Context) error
	Announce(ip netip.Addr, interfaces []string)
	Withdraw(ip netip.Addr)
	Reannounce()
	Interfaces(ip netip.Addr) []string
	Stats() *layer2.Stats
}

// Ready reports whether the speaker has synced its caches and joined the
// memberlist: it then answers for what it owns.
func (s *Speaker) Ready() bool { return s.ready.Load() }

func (s *Speaker) setupInformers() error {
	c := s.cfg.Clients
	s.factory = informers.NewSharedInformerFactoryWithOptions(c.Kube, 0, informers.WithTransform(k8s.Transform))
	svcInf := s.factory.Core().V1().Services()
	nodeInf := s.factory.Core().V1().Nodes()
	esInf := s.factory.Discovery().V1().EndpointSlices()
	s.services = svcInf.Lister()
	s.nodes = nodeInf.Lister()
	if err := esInf.Informer().AddIndexers(cache.Indexers{endpointSliceServiceIndex: sliceServiceKeys}); err != nil {
		return fmt.Errorf("speaker: endpointslice index: %w", err)
	}
	s.slices = esInf.Informer().GetIndexer()

	svcKey := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			s.pend.service(key)
		}
	}
	if _, err := svcInf.Informer().AddEventHandler(k8s.Handler(svcKey, nil)); err != nil {
		return fmt.Errorf("speaker: service handler: %w", err)
	}
	sliceKey := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		keys, _ := sliceServiceKeys(obj)
		for _, k := range keys {
			s.pend.service(k)
		}
	}
	if _, err := esInf.Informer().AddEventHandler(k8s.Handler(sliceKey, nil)); err != nil {
		return fmt.Errorf("speaker: endpointslice handler: %w", err)
	}
	nodeKey := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			s.pend.node(key)
		}
	}
	if _, err := nodeInf.Informer().AddEventHandler(k8s.Handler(nodeKey, nil)); err != nil {
		return fmt.Errorf("speaker: node handler: %w", err)
	}

	s.herald = k8s.NewHeraldInformers(c, 0)
	cfgDirty := func(any) { s.pend.mark(func() { s.pend.config = true }) }
	// The speaker builds from the accepted specs only: a status write that
	// changes counts or conditions (the controller's, after every burst of
	// allocations), an edit not yet judged, or a resync costs nothing.
	if err := s.herald.AddHandler(k8s.Handler(cfgDirty, k8s.AcceptedChanged)); err != nil {
		return fmt.Errorf("speaker: configuration handler: %w", err)
	}

	if s.cfg.Namespace != "" {
		// BGPPeer passwords come from Secrets in the speaker's namespace.
		s.secFact = informers.NewSharedInformerFactoryWithOptions(c.Kube, 0, informers.WithNamespace(s.cfg.Namespace), informers.WithTransform(k8s.Transform))
		secInf := s.secFact.Core().V1().Secrets()
		// Only the Secrets that BGPPeers reference are configuration.
		peerSecret := func(obj any) {
			if s.herald.PeerSecretRefs()[k8s.SecretName(obj)] {
				cfgDirty(obj)
			}
		}
		if _, err := secInf.Informer().AddEventHandler(k8s.Handler(peerSecret, k8s.SecretDataChanged)); err != nil {
			return fmt.Errorf("speaker: secret handler: %w", err)
		}
		s.secrets = secInf.Lister().Secrets(s.cfg.Namespace)
	}

	if s.cfg.Namespace != "" {
		if err := s.watchNamespace(); err != nil {
			return err
		}
	}
	if s.cfg.SecretName != "" {
		// The memberlist Secret is followed live, for key rotations.
		name := s.cfg.SecretName
		s.keyFact = informers.NewSharedInformerFactoryWithOptions(c.Kube, 0,
			informers.WithNamespace(s.cfg.Namespace), informers.WithTransform(k8s.Transform),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + name }))
		keyInf := s.keyFact.Core().V1().Secrets()
		keysDirty := func(any) { s.pend.mark(func() { s.pend.keys = true }) }
		if _, err := keyInf.Informer().AddEventHandler(k8s.Handler(keysDirty, k8s.SecretDataChanged)); err != nil {
			return fmt.Errorf("speaker: memberlist secret handler: %w", err)
		}
		s.keySec = keyInf.Lister().Secrets(s.cfg.Namespace)
	}

	port := s.cfg.Membership.AdvertisePort
	if port == 0 {
		port = s.cfg.Membership.BindPort
	}
	if s.cfg.PeerSelector != nil {
		sel := s.cfg.PeerSelector
		s.podFact = informers.NewSharedInformerFactoryWithOptions(c.Kube, 0,
			informers.WithNamespace(s.cfg.Namespace), informers.WithTransform(k8s.Transform),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
		podInf := s.podFact.Core().V1().Pods()
		peersDirty := func(any) { s.pend.mark(func() { s.pend.peers = true }) }
		if _, err := podInf.Informer().AddEventHandler(k8s.Handler(peersDirty, nil)); err != nil {
			return fmt.Errorf("speaker: pod handler: %w", err)
		}
		s.peers = &PodPeers{Pods: podInf.Lister().Pods(s.cfg.Namespace), Selector: sel, Self: s.self, Port: port}
	} else {
		s.peers = &NodePeers{Nodes: s.nodes, Self: s.self, Port: port}
	}
	return nil
}

// sliceServiceKeys indexes an EndpointSlice by its Service's key.
func sliceServiceKeys(obj any) ([]string, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := es.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{es.Namespace + "/" + name}, nil
}

// extraFactories are the informer factories besides the main one that
// this speaker's configuration needs.
func (s *Speaker) extraFactories() []informers.SharedInformerFactory {
	var out []informers.SharedInformerFactory
	for _, f := range []informers.SharedInformerFactory{s.podFact, s.secFact, s.keyFact, s.nsFact} {
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

// warnUnsynced logs, once, the caches still not synced 10 s after the
// start, unless synced is closed first: a start that hangs says on what.
func (s *Speaker) warnUnsynced(synced <-chan struct{}, extra []informers.SharedInformerFactory) {
	select {
	case <-synced:
		return
	case <-time.After(10 * time.Second):
	}
	now := make(chan struct{})
	close(now) // ask, without waiting
	var waiting []string
	if !s.herald.HasSynced() {
		waiting = append(waiting, "herald.io configuration")
	}
	for _, f := range append([]informers.SharedInformerFactory{s.factory}, extra...) {
		for typ, ok := range f.WaitForCacheSync(now) {
			if !ok {
				waiting = append(waiting, typ.String())
			}
		}
	}
	slices.Sort(waiting)
	s.log.Warn("caches not synced after 10s", slog.Any("waiting", waiting))
}

// Run runs the speaker until ctx ends, then stops answering, leaves the
// memberlist and returns. It returns an error if it could not start.
func (s *Speaker) Run(ctx context.Context) error {
	infCtx, stopInformers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopInformers()
	s.factory.Start(infCtx.Done())
	s.herald.Run(infCtx)
	if s.bgpRep != nil {
		go s.bgpRep.sessions.RunWithContext(infCtx)
	}
	extra := s.extraFactories()
	for _, f := range extra {
		f.Start(infCtx.Done())
	}
	defer func() {
		stopInformers()
		s.factory.Shutdown()
		for _, f := range extra {
			f.Shutdown()
		}
	}()
	syncedCh := make(chan struct{})
	go s.warnUnsynced(syncedCh, extra)
	synced := []cache.InformerSynced{s.herald.HasSynced}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("speaker: caches not synced: %w", ctx.Err())
	}
	for typ, ok := range s.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("speaker: %v cache not synced: %w", typ, ctx.Err())
		}
	}
	for _, f := range extra {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("speaker: %v cache not synced: %w", typ, ctx.Err())
			}
		}
	}
	close(syncedCh)
	s.log.Info("caches synced")

	cluster, err := s.startMembership(ctx)
	if err != nil {
		return err
	}
	s.cluster.Store(cluster)

	// The announcer outlives ctx until the loop has stopped, so that the
	// speaker stops answering exactly when it decides to.
	annCtx, stopAnnouncer := context.WithCancel(context.WithoutCancel(ctx))
	annDone := make(chan struct{})
	go func() {
		defer close(annDone)
		if err := s.announcer.Run(annCtx); err != nil {
			s.log.Error("announcer stopped", slog.Any("error", err))
		}
	}()
	joinCtx, stopJoiner := context.WithCancel(ctx)
	joinDone := make(chan struct{})
	go func() {
		defer close(joinDone)
		s.joinLoop(joinCtx, cluster)
	}()
	settleTimer := time.AfterFunc(settleTimeout, func() {
		if !s.keyRefused.Load() {
			s.settle()
		}
	})
	defer settleTimer.Stop()

	// The status writer outlives ctx until the BGP server is shut down, so
	// that its last pass reports the sessions as stopped.
	var statusWG sync.WaitGroup
	statusCtx, stopStatus := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStatus()
	if s.bgp != nil {
		statusWG.Add(1)
		go s.statusWriter(statusCtx, &statusWG)
	}

	// The announcement writer stops with the loop: what it has not
	// written yet, the next owner or the next run of this speaker writes.
	annCtx2, stopAnn := context.WithCancel(ctx)
	annDone2 := make(chan struct{})
	go func() {
		defer close(annDone2)
		s.ann.run(annCtx2)
	}()

	s.checkIPVS()
	s.ready.Store(true)
	s.loop(ctx, cluster)
	s.ready.Store(false)
	s.log.Info("told to stop: stopping", slog.Bool("uninstalling", s.uninstalling.Load()))
	stopAnn()
	<-annDone2

	// BGP first: withdraw every prefix and send a Cease (or, with graceful
	// restart, close the sessions so the routers keep the routes as stale).
	// The routers move the traffic to the other nodes' paths at once.
	if s.bgp != nil {
		s.bgp.stopping.Store(true)
		forGood, why := s.stopsForGood(ctx)
		s.log.Info("stopping BGP", slog.Bool("forGood", forGood), slog.String("why", why))
		s.bgpShutdown(ctx, !forGood)
		s.log.Info("BGP stopped")
		stopStatus()
		statusWG.Wait()
	}

	// Withdraw first: once memberlist says we left, another node answers,
	// and two answering nodes would split the clients.
	stopJoiner()
	<-joinDone
	stopAnnouncer()
	<-annDone
	s.log.Info("stopped answering; leaving the memberlist")
	leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for range cluster.Events() {
		}
	}()
	err = cluster.Leave(leaveCtx)
	<-drained
	if err != nil {
		s.log.Warn("leave", slog.Any("error", err))
	}
	s.log.Info("left the memberlist")
	return nil
}

// startMembership reads the Secret and starts the memberlist member.
func (s *Speaker) startMembership(ctx context.Context) (*membership.Cluster, error) {
	mc := s.cfg.Membership
	mc.Name = s.self
	if mc.Logger == nil {
		mc.Logger = s.log.With(slog.String("component", "membership"))
	}
	if mc.AdvertiseAddr == "" {
		n, err := s.nodes.Get(s.self)
		if err != nil {
			return nil, fmt.Errorf("speaker: node %s: %w (it is needed for its InternalIP)", s.self, err)
		}
		mc.AdvertiseAddr = NodeInternalIP(n)
		if mc.AdvertiseAddr == "" {
			return nil, fmt.Errorf("speaker: node %s has no InternalIP to advertise to the memberlist", s.self)
		}
		if mc.BindAddr == "" {
			mc.BindAddr = mc.AdvertiseAddr
		}
	}
	if s.cfg.SecretName != "" {
		secret, previous, err := s.readSecret(ctx)
		if err != nil {
			return nil, err
		}
		mc.Secret, mc.PreviousSecrets = secret, previous
	}
	ifaces, err := s.usableInterfaces()
	if err != nil {
		s.log.Warn("cannot list interfaces", slog.Any("error", err))
	} else {
		s.ownIfaces, s.metaSet = ifaces, true
		mc.Meta = EncodeMeta(ifaces, nil)
	}
	s.hold = NewHoldDown(s.cfg.HoldDown, ifaces)
	mc.OnKeyMismatch = func(m membership.KeyMismatch) {
		select {
		case s.mismatch <- m:
		default:
		}
	}
	cluster, err := membership.New(mc)
	if err != nil {
		return nil, fmt.Errorf("speaker: %w", err)
	}
	s.log.Info("memberlist started", slog.String("addr", cluster.LocalAddr().String()), slog.Any("interfaces", ifaces),
		slog.String("primaryKey", cluster.KeyState().Primary))
	if ks := cluster.KeyState(); ks.Primary != "" {
		// Alone for now: this returns at once, before anyone joins.
		if err := cluster.SetMeta(ctx, EncodeMeta(s.ownIfaces, &ks)); err != nil {
			s.log.Warn("publish key state", slog.Any("error", err))
		} else {
			s.pubKeys = ks
		}
	}
	return cluster, nil
}

// readSecret waits for the memberlist Secret, which the installation
// creates, and returns its secret and the previous one, if any.
func (s *Speaker) readSecret(ctx context.Context) ([]byte, [][]byte, error) {
	warned := false
	for {
		sec, err := s.cfg.Clients.Kube.CoreV1().Secrets(s.cfg.Namespace).Get(ctx, s.cfg.SecretName, metav1.GetOptions{})
		if err == nil {
			if b := sec.Data[SecretKey]; len(b) > 0 {
				return b, previousSecrets(sec), nil
			}
			err = fmt.Errorf("secret %s/%s has no key %q", s.cfg.Namespace, s.cfg.SecretName, SecretKey)
		} else if apierrors.IsNotFound(err) {
			err = fmt.Errorf("secret %s/%s not found", s.cfg.Namespace, s.cfg.SecretName)
		} else {
			err = fmt.Errorf("read secret %s/%s: %w", s.cfg.Namespace, s.cfg.SecretName, err)
		}
		if !warned {
			s.log.Error("waiting for the memberlist secret", slog.Any("error", err))
			s.nodeEvent(corev1.EventTypeWarning, ReasonMemberlistNoSecret, "%v; the speaker waits for it", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("speaker: %w", err)
		case <-time.After(2 * time.Second):
		}
	}
}

// joinLoop joins the peers it is handed, and again while some are missing:
// at once after a change, every second while alone, every ten seconds
// otherwise.
func (s *Speaker) joinLoop(ctx context.Context, cluster *membership.Cluster) {
	var peers, joined []string
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case peers = <-s.joinCh:
		case <-t.C:
		}
		members := len(cluster.Members())
		if len(peers) > 0 && (!slices.Equal(peers, joined) || members < len(peers)+1) {
			n, err := cluster.Join(peers)
			switch {
			case errors.Is(err, membership.ErrKeyMismatch):
				s.reportMismatch(membership.KeyMismatch{Detail: err.Error()})
			case err != nil && n == 0:
				s.log.Warn("memberlist join failed", slog.Any("peers", peers), slog.Any("error", err))
			case err != nil:
				s.log.Debug("memberlist join incomplete", slog.Int("contacted", n), slog.Any("error", err))
			default:
				s.log.Info("memberlist joined", slog.Int("contacted", n))
			}
			if n > 0 {
				joined = peers
			}
			members = len(cluster.Members())
			if n > 0 || !errors.Is(err, membership.ErrKeyMismatch) {
				s.settle()
			} else {
				// Every peer refused our key: this speaker is misconfigured,
				// and answering alone would split the clients. It stays
				// silent (the event says why) until a join succeeds.
				s.keyRefused.Store(true)
			}
		}
		switch {
		case len(peers) == 0:
			t.Reset(time.Hour)
		case members <= 1:
			t.Reset(time.Second)
		default:
			t.Reset(10 * time.Second)
		}
	}
}

// loop is the speaker's single decision goroutine: it owns the table and
// the announcement state.
func (s *Speaker) loop(ctx context.Context, cluster *membership.Cluster) {
	ifTick := time.NewTicker(s.cfg.InterfacePoll)
	defer ifTick.Stop()
	ipvsTick := time.NewTicker(time.Minute)
	defer ipvsTick.Stop()
	s.pend.mark(func() { s.pend.config, s.pend.peers, s.pend.keys = true, true, true })
	events := cluster.Events()
	settle := s.settleCh
	for {
		// While an interface is held back, it is looked at more often, so
		// that it is published soon after its hold-down ends.
		var holdC <-chan time.Time
		if s.hold.Holding() {
			holdC = time.After(s.cfg.HoldDown / 4)
		}
		select {
		case <-holdC:
			s.pollInterfaces(ctx, cluster)
		case <-ctx.Done():
			return
		case <-settle:
			settle = nil
			s.applySettled()
		case ev, ok := <-events:
			if !ok {
				s.log.Error("memberlist stopped")
				<-ctx.Done()
				return
			}
			s.memberEvent(ev)
			s.rotateKeys(ctx, cluster)
		case <-s.pend.signal:
			s.process(ctx)
			if s.pend.takeKeys() {
				s.syncKeys(ctx, cluster)
			}
		case m := <-s.mismatch:
			s.reportMismatch(m)
		case <-ifTick.C:
			s.pollInterfaces(ctx, cluster)
			s.reportUnannounced()
			s.flushAnnouncements()
			s.reportBGP(time.Now())
		case <-ipvsTick.C:
			s.checkIPVS()
		}
	}
}

// memberEvent applies one membership change, and any that are queued
// behind it, before reconciling.
func (s *Speaker) memberEvent(ev membership.Event) {
	changed := map[string]bool{}
	s.applyMember(ev, changed)
	s.reconcile(s.drainMembers(changed))
	s.flushAnnouncements()
	s.reportBGP(time.Now())
	if s.joinedOrLeft {
		// After a partition heals, the clients of the other side may hold
		// the MAC of a node that answered there: tell them again.
		s.joinedOrLeft = false
		s.announcer.Reannounce()
	}
}

// applyMember records one membership event, adding the node to changed.
func (s *Speaker) applyMember(ev membership.Event, changed map[string]bool) {
	name := ev.Member.Name
	if ev.Type != membership.EventUpdate && name != s.self {
		s.joinedOrLeft = true
		s.hold.MembersChanged(time.Now())
	}
	if ev.Type != membership.EventUpdate && s.bgpRep != nil {
		s.bgpRep.all = true // the live nodes' objects count, no others
	}
	if ev.Type == membership.EventLeave {
		delete(s.alive, name)
		s.annLeft = append(s.annLeft, name)
	} else {
		s.alive[name] = ev.Member.Meta
	}
	changed[name] = true
	s.log.Info("member "+ev.Type.String(), slog.String("member", name), slog.String("addr", ev.Member.Addr.String()))
}

// applySettled ends the settling period: it applies the membership events
// that the first join queued, then elects every group with the full
// membership.
func (s *Speaker) applySettled() {
	keys := s.drainMembers(map[string]bool{})
	s.st.Settle(keys)
	s.joinedOrLeft = false // everything is announced afresh below
	s.log.Info("membership settled", slog.Int("members", len(s.alive)))
	s.reconcile(keys)
	s.flushAnnouncements()
}

// drainMembers applies every queued membership event, adding the nodes to
// changed, and returns the group keys whose owner changed.
func (s *Speaker) drainMembers(changed map[string]bool) map[string]bool {
	var events <-chan membership.Event
	if c := s.cluster.Load(); c != nil {
		events = c.Events()
	}
drain:
	for events != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				break drain
			}
			s.applyMember(ev, changed)
		default:
			break drain
		}
	}
	keys := make(map[string]bool)
	for name := range changed {
		s.syncNode(name, keys)
	}
	return keys
}

// syncNode makes the table's candidate match memberlist and the Node
// object, adding the keys whose owner changed to keys.
func (s *Speaker) syncNode(name string, keys map[string]bool) {
	var cand *election.Node
	if meta, alive := s.alive[name]; alive {
		if n, err := s.nodes.Get(name); err == nil {
			c := Candidate(n, DecodeMeta(meta), s.cfg.IgnoreExcludeLB)
			cand = &c
		}
	}
	s.st.SetNode(name, cand, keys)
}

// process handles what the informers reported.
func (s *Speaker) process(ctx context.Context) {
	services, nodes, cfgDirty, peersDirty := s.pend.take()
	keys, bgpKeys := make(map[string]bool), make(map[string]bool)
	if cfgDirty && !s.uninstalling.Load() {
		s.rebuildConfig(keys, bgpKeys)
	}
	for _, name := range nodes {
		s.syncNode(name, keys)
	}
	if na, ok := s.announcer.(nodeAddressSetter); ok && len(nodes) > 0 {
		na.SetNodeAddresses(nodeAddresses(s.nodes))
	}
	for _, name := range services {
		s.syncService(name, keys)
	}
	s.reconcile(keys)
	allBGP := s.bgpSync(ctx, keys, bgpKeys, cfgDirty)
	for k := range bgpKeys {
		s.annKeys[k] = true
	}
	if allBGP {
		// The peers or this node changed: what BGP advertises, and to
		// which peers, may have changed for every key (a pass over the
		// keys in memory; writes only for what changed).
		for k := range s.st.GroupKeys() {
			s.annKeys[k] = true
		}
	}
	s.flushAnnouncements()
	s.bgpChanged(services, nodes, cfgDirty)
	s.reportBGP(time.Now())
	if peersDirty {
		peers, err := s.peers.Peers()
		if err == nil && len(peers) == 0 {
			s.settle() // a cluster of one: nobody to wait for
		}
		if err != nil {
			s.log.Warn("list peers", slog.Any("error", err))
		} else if !slices.Equal(peers, s.lastPeers) {
			s.lastPeers = peers
			select {
			case <-s.joinCh:
			default:
			}
			s.joinCh <- peers
		}
	}
}

// rebuildConfig takes a new configuration snapshot and re-elects the groups
// it touches. The snapshot is built from the specs that the leading
// controller accepted, never re-judged here: every speaker, restarted or
// not, builds the same one from the same API state.
func (s *Speaker) rebuildConfig(keys, bgpKeys map[string]bool) {
	pools, l2, bgp, peers, bfd, comms := s.herald.AcceptedLists()
	secrets := map[string]map[string][]byte{}
	if s.secrets != nil {
		if list, err := s.secrets.List(labels.Everything()); err == nil {
			for _, sec := range list {
				secrets[sec.Name] = sec.Data
			}
		}
	}
	s.rebuilds.Add(1)
	cfg, problems := config.Build(config.Input{
		Pools: pools, L2Advertisements: l2, BGPAdvertisements: bgp, Peers: peers, BFDProfiles: bfd, Communities: comms,
		Secrets: secrets,
	}, nil)
	for _, p := range problems {
		s.log.Debug("configuration problem", slog.String("problem", p.Error()))
	}
	s.st.SetConfig(cfg, keys, bgpKeys)
	s.log.Info("configuration loaded", slog.Int("pools", len(cfg.Pools)), slog.Int("l2Advertisements", len(cfg.L2Advertisements)),
		slog.Int("bgpAdvertisements", len(cfg.BGPAdvertisements)), slog.Int("bgpPeers", len(cfg.Peers)))
}

// syncService re-reads one Service and re-elects the groups it was and is in.
func (s *Speaker) syncService(name string, keys map[string]bool) {
	var info *ServiceInfo
	if svc, err := s.serviceByKey(name); err == nil {
		var eps []*discoveryv1.EndpointSlice
		if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			objs, _ := s.slices.ByIndex(endpointSliceServiceIndex, name)
			for _, o := range objs {
				eps = append(eps, o.(*discoveryv1.EndpointSlice))
			}
		}
		if in, ok := ServiceInfoOf(svc, eps, s.cfg.LBClass); ok {
			info = &in
		}
	}
	s.st.SetService(name, info, keys)
}

func (s *Speaker) serviceByKey(key string) (*corev1.Service, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, err
	}
	return s.services.Services(ns).Get(name)
}

// reconcile makes the announcer answer for exactly the IPs of the given
// keys that this node owns, as the state decides.
func (s *Speaker) reconcile(keys map[string]bool) {
	plan := s.st.Reconcile(keys)
	for k := range keys {
		s.annKeys[k] = true
	}
	for _, ip := range plan.Withdraw {
		s.announcer.Withdraw(ip)
		s.countIP(ip, -1)
	}
	var started planSummary
	for _, a := range plan.Announce {
		s.announcer.Announce(a.IP, a.Interfaces)
		if a.New {
			s.countIP(a.IP, 1)
			s.announceEvent(a.Key, a.IP, a.Interfaces)
			started.add(a.Key, a.IP)
		}
	}
	var stopped planSummary
	for _, st := range plan.Stopped {
		s.withdrawEvent(st)
		for _, ip := range st.IPs {
			stopped.add(st.Key, ip)
		}
	}
	// One line per plan, not per IP: when a node dies, the takeover of
	// thousands of IPs must not flood the log.
	if started.ips > 0 {
		s.log.Info("announcing", started.attrs()...)
	}
	if stopped.ips > 0 {
		s.log.Info("withdrawn", stopped.attrs()...)
	}
	s.reportUnannounced()
}

// planSummary counts the keys and IPs a plan starts or stops, with a few
// examples, for one log line.
type planSummary struct {
	keys, ips int
	last      string
	examples  []string
}

// summaryExamples is how many IPs a summary line names.
const summaryExamples = 3

func (p *planSummary) add(key string, ip netip.Addr) {
	if key != p.last {
		p.keys++
		p.last = key
	}
	p.ips++
	if len(p.examples) < summaryExamples {
		p.examples = append(p.examples, ip.String()+" ("+key+")")
	}
}

func (p *planSummary) attrs() []any {
	return []any{slog.Int("keys", p.keys), slog.Int("ips", p.ips), slog.Any("examples", p.examples)}
}

// reportUnannounced records the NotAnnounced events that are due and
// updates the gauge.
func (s *Speaker) reportUnannounced() {
	for _, u := range s.st.Report(time.Now()) {
		s.unannouncedEvent(u)
	}
	n := s.st.UnannouncedIPs()
	s.unannounced.Store(&n)
}

// unannouncedEvent says on the Services of a group why no node announces
// their IPs. Only the reporter calls it, once per reason.
func (s *Speaker) unannouncedEvent(u Unannounced) {
	strs := make([]string, len(u.IPs))
	for i, ip := range u.IPs {
		strs[i] = ip.String()
	}
	msg := fmt.Sprintf("no node announces %s: %s", strings.Join(strs, ","), u.Why.Message())
	s.log.Warn("not announced", slog.String("key", u.Key), slog.Any("ips", strs), slog.String("reason", string(u.Why.Reason)),
		slog.String("message", msg))
	s.serviceEvents(u.Key, corev1.EventTypeWarning, ReasonNotAnnounced, msg)
}

// UnannouncedIPs counts, per reason, the IPs no node announces in layer 2
// mode; only the reporting speaker counts them (nil elsewhere).
func (s *Speaker) UnannouncedIPs() map[election.Reason]int {
	if p := s.unannounced.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Speaker) countIP(ip netip.Addr, d int64) {
	i := 0
	if ip.Is6() {
		i = 1
	}
	s.announcedN[i].Add(d)
}

// protocol names the neighbour protocol of ip.
func protocol(ip netip.Addr) string {
	if ip.Is4() {
		return "ARP"
	}
	return "NDP"
}

func (s *Speaker) announceEvent(key string, ip netip.Addr, want []string) {
	ifaces := s.announcer.Interfaces(ip)
	where := strings.Join(ifaces, ",")
	switch {
	case len(ifaces) > 0:
	case want == nil:
		where = "every usable interface"
	default:
		where = strings.Join(want, ",") + " (not up yet)"
	}
	msg := fmt.Sprintf("announcing %s from node %s on %s via %s", ip, s.self, where, protocol(ip))
	s.log.Debug("announcing", slog.String("ip", ip.String()), slog.String("key", key), slog.String("interfaces", where))
	s.serviceEvents(key, corev1.EventTypeNormal, ReasonAnnouncing, msg)
}

func (s *Speaker) withdrawEvent(st Stopped) {
	key := st.Key
	next := "no node is eligible now"
	if st.Next != "" {
		next = "node " + st.Next + " takes over"
	}
	strs := make([]string, len(st.IPs))
	for i, ip := range st.IPs {
		strs[i] = ip.String()
	}
	msg := fmt.Sprintf("node %s stopped announcing %s; %s", s.self, strings.Join(strs, ","), next)
	s.log.Debug("withdrawn", slog.String("key", key), slog.Any("ips", strs), slog.String("next", next))
	if len(s.st.Members(key)) == 0 {
		return // the Services are gone or lost their IPs: nobody to tell
	}
	s.serviceEvents(key, corev1.EventTypeNormal, ReasonWithdrawn, msg)
}

func (s *Speaker) serviceEvents(key, typ, reason, msg string) {
	if s.rec == nil {
		return
	}
	for _, name := range s.st.Members(key) {
		if svc, err := s.serviceByKey(name); err == nil {
			s.rec.Event(svc, typ, reason, msg)
		}
	}
}

// nodeEvent records an event on this node's Node object.
func (s *Speaker) nodeEvent(typ, reason, format string, args ...any) {
	if s.rec == nil {
		return
	}
	// The kubelet refers to its Node by name as UID, too.
	var obj runtime.Object = &corev1.ObjectReference{Kind: "Node", Name: s.self, UID: types.UID(s.self)}
	if n, err := s.nodes.Get(s.self); err == nil {
		obj = n
	}
	s.rec.Eventf(obj, typ, reason, format, args...)
}

// reportMismatch logs and records a memberlist key mismatch. The counter is
// the membership package's.
func (s *Speaker) reportMismatch(m membership.KeyMismatch) {
	s.log.Error("memberlist encryption key mismatch: a speaker uses another Secret; the cluster is split",
		slog.String("peer", m.From), slog.String("detail", m.Detail))
	from := m.From
	if from == "" {
		from = "a peer"
	}
	s.nodeEvent(corev1.EventTypeWarning, ReasonMemberlistKey,
		"memberlist traffic from %s could not be decrypted: the speakers use different memberlist Secrets (%s)", from, m.Detail)
}

// checkIPVS warns once when kube-proxy's IPVS mode lacks strictARP.
func (s *Speaker) checkIPVS() {
	warn, err := layer2.CheckIPVSStrictARP(s.cfg.SysClassNet, s.cfg.ProcSysNet)
	if err != nil {
		s.log.Warn("IPVS strictARP check failed", slog.Any("error", err))
		return
	}
	was := s.ipvsWarn.Swap(warn != "")
	if warn != "" && !was {
		s.log.Error(warn)
		s.nodeEvent(corev1.EventTypeWarning, ReasonIPVSStrictARP, "%s", warn)
	}
}

// excludedInterface reports whether this node never answers on the
// interface (--exclude-interfaces).
func (s *Speaker) excludedInterface(name string) bool {
	return election.MatchAnyInterface(s.cfg.ExcludeInterfaces, name)
}

// usableInterfaces lists the interfaces the announcer answers on, without
// the excluded ones.
func (s *Speaker) usableInterfaces() ([]string, error) {
	ifaces, err := layer2.UsableInterfaces(s.cfg.SysClassNet)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ifaces, s.excludedInterface), nil
}

// pollInterfaces publishes this node's interfaces when they change.
func (s *Speaker) pollInterfaces(ctx context.Context, cluster *membership.Cluster) {
	usable, err := s.usableInterfaces()
	if err != nil {
		s.log.Warn("cannot list interfaces", slog.Any("error", err))
		return
	}
	ifaces, held := s.hold.Publish(usable, time.Now())
	if !slices.Equal(held, s.holdLog) {
		if len(held) > 0 {
			s.log.Info("interfaces held back until the membership is stable", slog.Any("interfaces", held),
				slog.Duration("holdDown", s.cfg.HoldDown))
		}
		s.holdLog = held
	}
	// A key state whose publication failed is published again here.
	keysStale := !cluster.KeyState().Equal(s.pubKeys)
	if s.metaSet && slices.Equal(ifaces, s.ownIfaces) && !keysStale {
		return
	}
	mctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if !s.metaSet || !slices.Equal(ifaces, s.ownIfaces) {
		s.log.Info("interfaces changed", slog.Any("interfaces", ifaces))
	}
	s.ownIfaces, s.metaSet = ifaces, true
	s.publishMeta(mctx, cluster)
	// memberlist reports our own update as an event, which re-elects.
}

// publishMeta publishes this node's interfaces and key state in its
// memberlist metadata.
func (s *Speaker) publishMeta(ctx context.Context, cluster *membership.Cluster) {
	var keys *membership.KeyState
	ks := cluster.KeyState()
	if ks.Primary != "" {
		keys = &ks
	}
	if err := cluster.SetMeta(ctx, EncodeMeta(s.ownIfaces, keys)); err != nil {
		s.log.Warn("publish interfaces and keys", slog.Any("error", err))
		return
	}
	s.pubKeys = ks
}

// previousSecrets returns the memberlist Secret's previous secret, if any.
func previousSecrets(sec *corev1.Secret) [][]byte {
	if b := sec.Data[SecretKeyPrevious]; len(b) > 0 {
		return [][]byte{b}
	}
	return nil
}

// syncKeys hands the memberlist Secret's keys to the cluster, which adds
// the new ones, then moves the rotation on. A Secret that is gone or has
// no key changes nothing: the speakers keep the keys they have.
func (s *Speaker) syncKeys(ctx context.Context, cluster *membership.Cluster) {
	if s.keySec == nil {
		return
	}
	sec, err := s.keySec.Get(s.cfg.SecretName)
	var secret []byte
	if err == nil {
		secret = sec.Data[SecretKey]
	}
	if len(secret) == 0 {
		if !s.keyWarned {
			s.log.Warn("the memberlist Secret is gone or has no key; the speaker keeps its keys",
				slog.String("secret", s.cfg.Namespace+"/"+s.cfg.SecretName), slog.String("key", SecretKey))
			s.keyWarned = true
		}
		return
	}
	s.keyWarned = false
	changed, err := cluster.SetSecrets(secret, previousSecrets(sec))
	if err != nil {
		s.log.Error("cannot use the memberlist Secret", slog.Any("error", err))
		return
	}
	if changed {
		s.publishKeys(ctx, cluster)
	}
	s.rotateKeys(ctx, cluster)
}

// rotateKeys moves a key rotation on from the key states the live members
// publish, and publishes this member's state when it changed.
func (s *Speaker) rotateKeys(ctx context.Context, cluster *membership.Cluster) {
	peers := make(map[string]*membership.KeyState, len(s.alive))
	for name, meta := range s.alive {
		if name != s.self {
			peers[name] = DecodeKeys(meta)
		}
	}
	changed, err := cluster.Rotate(peers)
	if err != nil {
		s.log.Error("memberlist key rotation", slog.Any("error", err))
	}
	if changed || !cluster.KeyState().Equal(s.pubKeys) {
		s.publishKeys(ctx, cluster)
	}
}

// publishKeys publishes the key state at once, bounded in time; a failure
// is retried by pollInterfaces.
func (s *Speaker) publishKeys(ctx context.Context, cluster *membership.Cluster) {
	mctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	s.publishMeta(mctx, cluster)
}

// AnnouncedIPs returns how many IPv4 and IPv6 addresses this node answers
// for.
func (s *Speaker) AnnouncedIPs() (v4, v6 int64) {
	return s.announcedN[0].Load(), s.announcedN[1].Load()
}

// Members returns how many live members the memberlist has, 0 before it
// started.
func (s *Speaker) Members() int {
	if c := s.cluster.Load(); c != nil {
		return len(c.Members())
	}
	return 0
}

// Work returns how many configuration snapshots this speaker built and how
// many election keys it decided, since it started.
func (s *Speaker) Work() (rebuilds, elections uint64) {
	return s.rebuilds.Load(), s.elections.Load()
}

// KeyState returns this node's memberlist key state (zero before the
// memberlist started, or without encryption).
func (s *Speaker) KeyState() membership.KeyState {
	if c := s.cluster.Load(); c != nil {
		return c.KeyState()
	}
	return membership.KeyState{}
}

// MemberlistRejected returns how many memberlist packets and streams were
// discarded, and how many key rotations happened.
func (s *Speaker) MemberlistRejected() (rejected, rotations uint64) {
	if c := s.cluster.Load(); c != nil {
		return c.RejectedPackets(), c.KeyRotations()
	}
	return 0, 0
}

// KeyMismatches returns the memberlist key mismatch count.
func (s *Speaker) KeyMismatches() uint64 {
	if c := s.cluster.Load(); c != nil {
		return c.KeyMismatches()
	}
	return 0
}

// IPVSWithoutStrictARP reports whether the last IPVS check warned.
func (s *Speaker) IPVSWithoutStrictARP() bool { return s.ipvsWarn.Load() }
