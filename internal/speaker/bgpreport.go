package speaker

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/bgpwhy"
	"github.com/heraldlb/herald/internal/k8s"
)

// ReasonNotAdvertised is the warning event on a Service whose IPs nodes
// advertise in BGP mode while none of them has an established session to
// a peer it advertises them to.
const ReasonNotAdvertised = "NotAdvertised"

// bgpReporter says on the Services when their BGP advertisement reaches no
// router. Only the reporter (see [State.Reporter], the same speaker that
// reports the layer 2 reasons) does: it decides with [bgpwhy.Judge] from
// the ServiceAnnouncements <service>.bgp.<node> of live nodes and the
// BGPSessionStates, both from its informers, so that any speaker in its
// place decides the same. It is incremental: a change of an object marks
// its Service (or its node's Services) for the next pass; a pass judges
// only those, in memory, and writes nothing but the events that are due.
type bgpReporter struct {
	sessions cache.SharedIndexInformer // BGPSessionStates in Herald's namespace

	// Loop-owned.
	tracker *bgpwhy.Tracker
	active  bool              // this speaker was the reporter at the last pass
	all     bool              // judge every Service at the next pass (membership, configuration or a node's labels changed)
	svcs    map[string]bool   // Services to judge at the next pass (their spec, IPs or endpoints changed)
	nodeFP  map[string]string // node -> what judging reads of it (labels, exclusion)

	ips atomic.Pointer[map[string]int] // reason -> IPs, for the metrics
}

// setupBGPReporter watches the BGPSessionStates and the BGP
// ServiceAnnouncements for the reporter.
func (s *Speaker) setupBGPReporter() error {
	c := s.cfg.Clients
	lw := cache.NewListWatchFromClient(c.Herald, resourceSessionStates, s.cfg.Namespace, fields.Everything())
	inf := cache.NewSharedIndexInformer(lw, &v1beta1.BGPSessionState{}, 0, cache.Indexers{})
	_ = inf.SetTransform(k8s.Transform) // without managedFields; fails only once the informer runs
	s.bgpRep = &bgpReporter{sessions: inf, tracker: bgpwhy.NewTracker(), svcs: map[string]bool{}, nodeFP: map[string]string{}}
	node := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if st, ok := obj.(*v1beta1.BGPSessionState); ok {
			n := st.Status.Node
			if n == "" {
				n = st.Labels[v1beta1.LabelSessionNode]
			}
			s.pend.mark(func() { s.pend.bgpNodes[n] = struct{}{} })
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: node,
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*v1beta1.BGPSessionState)
			c, ok2 := cur.(*v1beta1.BGPSessionState)
			if !ok1 || !ok2 || o.Status.State != c.Status.State || o.Status.Node != c.Status.Node {
				node(cur)
			}
		},
		DeleteFunc: node,
	}); err != nil {
		return fmt.Errorf("speaker: bgpsessionstate handler: %w", err)
	}
	svc := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		// Any protocol: an .l2 object says layer 2 announces the Service.
		if a, ok := obj.(*v1beta1.ServiceAnnouncement); ok {
			key := a.Namespace + "/" + a.Status.Service
			s.pend.mark(func() { s.pend.bgpSvcs[key] = struct{}{} })
		}
	}
	if _, err := s.ann.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: svc,
		UpdateFunc: func(old, cur any) {
			o, ok1 := old.(*v1beta1.ServiceAnnouncement)
			c, ok2 := cur.(*v1beta1.ServiceAnnouncement)
			if !ok1 || !ok2 || !sameAnnouncement(o.Status, c.Status) {
				svc(old)
				svc(cur)
			}
		},
		DeleteFunc: svc,
	}); err != nil {
		return fmt.Errorf("speaker: serviceannouncement reporter handler: %w", err)
	}
	return nil
}

// reportBGP judges the Services marked since the last pass, when this
// speaker is the reporter, records the NotAdvertised events that are due
// and updates the gauge. The loop calls it after each batch and on its
// tick (for the events whose delay ran out).
func (s *Speaker) reportBGP(now time.Time) {
	r := s.bgpRep
	if r == nil {
		return
	}
	svcs, nodes := s.pend.takeBGP()
	reporter := s.st.Settled() && s.st.Reporter() == s.self && s.ann.synced() && r.sessions.HasSynced()
	if !reporter {
		if r.active {
			r.active = false
			r.tracker.Reset()
			r.ips.Store(nil)
		}
		return
	}
	now = now.Truncate(time.Millisecond)
	todo := map[string]bool{}
	if !r.active || r.all {
		// Just became the reporter, or the membership changed (objects of
		// a node that left no longer count): judge every Service.
		r.active, r.all = true, false
		for _, k := range s.ann.services() {
			todo[k] = true
		}
		for k := range s.st.Services() {
			todo[k] = true
		}
	}
	for _, k := range svcs {
		todo[k] = true
	}
	for k := range r.svcs {
		todo[k] = true
	}
	clear(r.svcs)
	for _, n := range nodes {
		for _, a := range s.ann.byNode(n) {
			if a.Status.Protocol == v1beta1.ProtocolBGP {
				todo[a.Namespace+"/"+a.Status.Service] = true
			}
		}
	}
	for k := range todo {
		r.tracker.Set(k, s.judgeBGP(k), now)
	}
	for _, d := range r.tracker.Due(now) {
		s.notAdvertisedEvent(d)
	}
	n := r.tracker.IPs()
	r.ips.Store(&n)
}

// bgpChanged tells the reporter what the loop handled: the Services it
// re-read, the nodes whose objects changed, and whether the configuration
// did. A node counts only when what judging reads of it changed, so that a
// Node status heartbeat re-judges nothing.
func (s *Speaker) bgpChanged(services, nodes []string, cfg bool) {
	r := s.bgpRep
	if r == nil {
		return
	}
	for _, k := range services {
		r.svcs[k] = true
	}
	if cfg {
		r.all = true
	}
	for _, name := range nodes {
		fp := ""
		if n, err := s.nodes.Get(name); err == nil {
			fp = fmt.Sprintf("%v/%v", Candidate(n, nil, s.cfg.IgnoreExcludeLB).Excluded, n.Labels)
		}
		if old, ok := r.nodeFP[name]; !ok || old != fp {
			r.all = true
		}
		if fp == "" {
			delete(r.nodeFP, name)
		} else {
			r.nodeFP[name] = fp
		}
	}
}

// judgeBGP decides whether a Service's BGP advertisement reaches a router,
// from the objects of live nodes; when no node advertises it, from the
// configuration, the live nodes and the Service why none does.
func (s *Speaker) judgeBGP(svc string) bgpwhy.Verdict {
	var anns []v1beta1.ServiceAnnouncementStatus
	l2 := false
	for _, a := range s.ann.byService(svc) {
		if a.Status.Protocol == v1beta1.ProtocolL2 {
			l2 = true
		}
		if a.Status.Protocol == v1beta1.ProtocolBGP && (a.Status.Node == s.self || s.isAlive(a.Status.Node)) {
			anns = append(anns, a.Status)
		}
	}
	var cov bgpwhy.Coverage
	if len(anns) == 0 {
		cov = s.bgpCoverage(svc)
		cov.L2 = cov.L2 || l2
	}
	return bgpwhy.Judge(anns, s.sessionState, cov)
}

// bgpCoverage returns what bgpwhy.Judge reads when no node advertises a
// Service: the BGPAdvertisements that cover it and the live nodes.
func (s *Speaker) bgpCoverage(svc string) bgpwhy.Coverage {
	var cov bgpwhy.Coverage
	cfg, info := s.st.Config(), s.st.Info(svc)
	if cfg == nil || info == nil {
		return cov
	}
	cov.L2, cov.Local = s.st.L2Covers(svc), info.LocalTraffic
	nodeLabels := map[string]map[string]string{}
	labelsOf := func(name string) map[string]string {
		l, ok := nodeLabels[name]
		if !ok {
			if n, err := s.nodes.Get(name); err == nil {
				l = n.Labels
			}
			nodeLabels[name] = l
		}
		return l
	}
	seen := map[string]bool{}
	for _, ip := range info.IPs {
		pool := cfg.PoolOf(ip)
		if pool == nil {
			continue
		}
		covered := false
		for _, ad := range cfg.BGPAdvertisements {
			if !slices.Contains(ad.Pools, pool.Name) || !matchesAny(ad.ServiceSelectors, info.Labels) {
				continue
			}
			covered = true
			if !seen[ad.Name] {
				seen[ad.Name] = true
				sels := ad.NodeSelectors
				cov.Ads = append(cov.Ads, bgpwhy.Ad{Name: ad.Name, Peers: ad.Peers,
					Selects: func(n string) bool { return matchesAny(sels, labelsOf(n)) }})
			}
		}
		if covered {
			cov.IPs = append(cov.IPs, ip.String())
		}
	}
	if len(cov.Ads) == 0 || cov.L2 {
		return cov
	}
	for _, name := range s.st.LiveNodes() {
		n := bgpwhy.Node{Name: name, Endpoint: info.EndpointNodes.Has(name)}
		if c, ok := s.st.Node(name); ok {
			n.Excluded = c.Excluded
		}
		l := labelsOf(name)
		for _, p := range cfg.Peers {
			if matchesAny(p.NodeSelectors, l) {
				n.Peers = append(n.Peers, p.Name)
			}
		}
		cov.Nodes = append(cov.Nodes, n)
	}
	return cov
}

// sessionState returns the FSM state of a node's session with a peer, as
// its BGPSessionState says.
func (s *Speaker) sessionState(node, peer string) (string, bool) {
	o, ok, _ := s.bgpRep.sessions.GetIndexer().GetByKey(s.cfg.Namespace + "/" + SessionStateName(node, peer))
	if !ok {
		return "", false
	}
	st, ok := o.(*v1beta1.BGPSessionState)
	if !ok {
		return "", false
	}
	return st.Status.State, true
}

// notAdvertisedEvent says on a Service that no router learns its IPs.
func (s *Speaker) notAdvertisedEvent(d bgpwhy.Due) {
	msg := fmt.Sprintf("no router learns %s: %s", strings.Join(d.Verdict.IPs, ","), d.Verdict.Message())
	s.log.Warn("not advertised", slog.String("service", d.Service), slog.Any("ips", d.Verdict.IPs),
		slog.String("reason", d.Verdict.Reason), slog.String("message", msg))
	if s.rec == nil {
		return
	}
	if svc, err := s.serviceByKey(d.Service); err == nil {
		s.rec.Event(svc, corev1.EventTypeWarning, ReasonNotAdvertised, msg)
	}
}

// UnadvertisedIPs counts, per reason, the IPs that nodes advertise in BGP
// mode but no router can learn; only the reporting speaker counts them
// (nil elsewhere).
func (s *Speaker) UnadvertisedIPs() map[string]int {
	if s.bgpRep == nil {
		return nil
	}
	if p := s.bgpRep.ips.Load(); p != nil {
		return *p
	}
	return nil
}
