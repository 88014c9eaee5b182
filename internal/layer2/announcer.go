package layer2

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"path"
	"slices"
	"sync"
	"time"
)

// AnnouncerConfig configures an [Announcer].
type AnnouncerConfig struct {
	// Options apply to every responder. Their Stats, if nil, is the
	// announcer's own (see [Announcer.Stats]).
	Options Options
	// PollInterval is how often the interfaces are listed again, to follow
	// interfaces that come, go or change. Default 2s.
	PollInterval time.Duration
	// SysClassNet is where interface attributes are read. Default
	// /sys/class/net.
	SysClassNet string
	// Exclude, if not nil, reports the interfaces never to answer on
	// (CNI bridges and other virtual links).
	Exclude func(name string) bool
}

// Announcer answers ARP and NDP for the IPs this node owns, on every usable
// interface, and follows interfaces as they come and go. Create it with
// [NewAnnouncer], run it with [Announcer.Run], and tell it the IPs this
// node owns with [Announcer.Announce] and [Announcer.Withdraw]. All methods
// are safe for concurrent use.
type Announcer struct {
	cfg   AnnouncerConfig
	log   *slog.Logger
	stats *Stats

	mu    sync.Mutex
	ips   map[netip.Addr][]string // owned IP -> interface allow-list (nil: any)
	links map[string]*link        // interface name -> running responders

	lastRe  time.Time   // last Reannounce that sent
	reTimer *time.Timer // a Reannounce deferred by the rate limit

	// own holds the addresses of the interfaces answered on, and nodes
	// those SetNodeAddresses gave: the announcer never answers ARP/NDP for
	// them nor sends gratuitous ARP / unsolicited NA for them, whatever a
	// Service's status says. refused remembers the IPs already logged.
	own, nodes map[netip.Addr]bool
	refused    map[netip.Addr]bool
}

// ReannounceInterval is the least time between two rounds of
// [Announcer.Reannounce]; calls in between are merged into one round at the
// end of the interval.
const ReannounceInterval = time.Second

// link is the running responders of one interface.
type link struct {
	info   linkInfo
	arp    *ARPResponder
	ndp    *NDPResponder
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// done is closed when a responder stops (the link is restarted at the
	// next scan).
	done     chan struct{}
	doneOnce sync.Once
}

// NewAnnouncer returns an announcer; it does nothing until Run.
func NewAnnouncer(cfg AnnouncerConfig) *Announcer {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.SysClassNet == "" {
		cfg.SysClassNet = "/sys/class/net"
	}
	if cfg.Options.Stats == nil {
		cfg.Options.Stats = new(Stats)
	}
	cfg.Options = cfg.Options.withDefaults()
	return &Announcer{
		cfg:     cfg,
		log:     cfg.Options.Logger,
		stats:   cfg.Options.Stats,
		ips:     make(map[netip.Addr][]string),
		links:   make(map[string]*link),
		refused: make(map[netip.Addr]bool),
	}
}

// SetNodeAddresses sets the cluster's node addresses (their InternalIPs):
// the announcer never answers for them nor announces them, even when a
// Service's status holds one, since that would steal a node's traffic.
// Its own interfaces' addresses are always excluded.
func (a *Announcer) SetNodeAddresses(addrs []netip.Addr) {
	set := make(map[netip.Addr]bool, len(addrs))
	for _, ip := range addrs {
		set[ip.Unmap().WithZone("")] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if maps.Equal(set, a.nodes) {
		return
	}
	a.nodes = set
	a.reapply()
}

// forbidden reports whether ip is a node's own address. a.mu is held.
func (a *Announcer) forbidden(ip netip.Addr) bool {
	if !a.own[ip] && !a.nodes[ip] {
		delete(a.refused, ip)
		return false
	}
	if !a.refused[ip] {
		a.refused[ip] = true
		a.log.Warn("not announcing a node's own address", slog.String("ip", ip.String()))
	}
	return true
}

// reapply hands every owned IP to every link again, after the forbidden
// addresses changed. a.mu is held.
func (a *Announcer) reapply() {
	for ip, allowed := range a.ips {
		for _, l := range a.links {
			a.apply(l, ip, allowed, true)
		}
	}
}

// Stats returns the counters of every responder of the announcer.
func (a *Announcer) Stats() *Stats { return a.stats }

// Announce makes this node answer for ip, on the interfaces named in
// interfaces or, if it is empty, on every usable interface, and sends
// gratuitous ARP or unsolicited NA where it was not answering already.
// Calling it again with another list moves the IP between interfaces.
func (a *Announcer) Announce(ip netip.Addr, interfaces []string) {
	ip = ip.Unmap().WithZone("")
	if len(interfaces) == 0 {
		interfaces = nil
	} else {
		interfaces = slices.Clone(interfaces)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ips[ip] = interfaces
	for _, l := range a.links {
		a.apply(l, ip, interfaces, true)
	}
}

// Withdraw stops answering for ip on every interface.
func (a *Announcer) Withdraw(ip netip.Addr) {
	ip = ip.Unmap().WithZone("")
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.ips, ip)
	for _, l := range a.links {
		a.apply(l, ip, nil, false)
	}
}

// Reannounce sends a gratuitous ARP / unsolicited NA burst again for every
// IP this node answers for, on every interface. The speaker calls it after
// every membership change: after a partition heals, the clients of the other
// side may still hold the MAC of the node that answered there, until their
// cache entry expires. Rounds are at most one per [ReannounceInterval].
func (a *Announcer) Reannounce() {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if wait := a.lastRe.Add(ReannounceInterval).Sub(now); wait > 0 {
		if a.reTimer == nil {
			a.reTimer = time.AfterFunc(wait, func() {
				a.mu.Lock()
				a.reTimer = nil
				a.mu.Unlock()
				a.Reannounce()
			})
		}
		return
	}
	a.lastRe = now
	a.stats.Reannounces.Add(1)
	for _, l := range a.links {
		if l.arp != nil {
			l.arp.Reannounce()
		}
		if l.ndp != nil {
			l.ndp.Reannounce()
		}
	}
}

// Interfaces returns the interfaces ip is answered on now, sorted: empty
// if it is not announced, or no usable interface is allowed.
func (a *Announcer) Interfaces(ip netip.Addr) []string {
	ip = ip.Unmap().WithZone("")
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for name, l := range a.links {
		if (l.arp != nil && l.arp.Owns(ip)) || (l.ndp != nil && l.ndp.Owns(ip)) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Announced returns the IPs this node answers for, sorted.
func (a *Announcer) Announced() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	ips := make([]netip.Addr, 0, len(a.ips))
	for ip := range a.ips {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return ips
}

// Run follows the interfaces and runs their responders until ctx is done,
// then stops them all: after Run returns, nothing is answered any more.
func (a *Announcer) Run(ctx context.Context) error {
	defer a.stopAll()
	t := time.NewTicker(a.cfg.PollInterval)
	defer t.Stop()
	for {
		a.scan(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scan starts responders on new interfaces, stops them on vanished ones and
// restarts them on changed ones (and on ones whose responder failed).
func (a *Announcer) scan(ctx context.Context) {
	infos, err := usableLinks(a.cfg.SysClassNet)
	if err != nil {
		a.log.Warn("cannot list interfaces", slog.Any("error", err))
		return
	}
	seen := make(map[string]bool, len(infos))
	own := make(map[netip.Addr]bool)
	for _, info := range infos {
		for _, ip := range info.addrs {
			own[ip] = true
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !maps.Equal(own, a.own) {
		a.own = own
		a.reapply()
	}
	for _, info := range infos {
		name := info.ifi.Name
		if a.cfg.Exclude != nil && a.cfg.Exclude(name) {
			continue
		}
		seen[name] = true
		if l, ok := a.links[name]; ok {
			select {
			case <-l.done:
				a.log.Info("restarting responders", slog.String("interface", name))
			default:
				if l.info.same(info) {
					// A responder that failed to start (an NDP socket on a
					// link-local address still tentative after a flap) is
					// started again, without disturbing the other one.
					a.startMissing(l)
					continue
				}
				a.log.Info("interface changed", slog.String("interface", name))
			}
			a.stop(l)
			delete(a.links, name)
		}
		if l := a.start(ctx, info); l != nil {
			a.links[name] = l
		}
	}
	for name, l := range a.links {
		if !seen[name] {
			a.log.Info("interface gone", slog.String("interface", name))
			a.stop(l)
			delete(a.links, name)
		}
	}
}

// start opens and runs the responders of one interface and hands them the
// owned IPs that are allowed there. It returns nil if none could start.
// a.mu is held.
func (a *Announcer) start(ctx context.Context, info linkInfo) *link {
	l := &link{info: info, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(ctx)
	a.startMissing(l)
	if l.arp == nil && l.ndp == nil {
		l.cancel()
		return nil
	}
	a.log.Info("answering on interface", slog.String("interface", info.ifi.Name), slog.Bool("arp", l.arp != nil), slog.Bool("ndp", l.ndp != nil))
	return l
}

// startMissing starts the responders l should have and does not, and hands
// them the owned IPs. a.mu is held.
func (a *Announcer) startMissing(l *link) {
	ifi := l.info.ifi
	opts := a.cfg.Options
	var started []func(context.Context) error
	if l.info.arp && l.arp == nil {
		r, err := ListenARP(&ifi, opts)
		if err != nil {
			a.log.Warn("ARP responder not started; retrying", slog.String("interface", ifi.Name), slog.Any("error", err))
		} else {
			l.arp = r
			started = append(started, r.Run)
		}
	}
	if l.info.ndp && l.ndp == nil {
		r, err := ListenNDP(&ifi, opts)
		if err != nil {
			a.log.Warn("NDP responder not started; retrying", slog.String("interface", ifi.Name), slog.Any("error", err))
		} else {
			l.ndp = r
			started = append(started, r.Run)
		}
	}
	if len(started) == 0 {
		return
	}
	for _, run := range started {
		l.wg.Go(func() {
			if err := run(l.ctx); err != nil {
				a.log.Warn("responder stopped", slog.String("interface", ifi.Name), slog.Any("error", err))
			}
			// One failed responder restarts the link at the next scan.
			l.doneOnce.Do(func() { close(l.done) })
			l.cancel()
		})
	}
	if l.arp != nil && l.ndp != nil && len(started) == 1 {
		a.log.Info("responder started on retry", slog.String("interface", ifi.Name))
	}
	for ip, allowed := range a.ips {
		a.apply(l, ip, allowed, true)
	}
}

// apply adds ip to (or removes it from) l's responder of its family,
// according to own and the allow-list. a.mu is held.
func (a *Announcer) apply(l *link, ip netip.Addr, allowed []string, own bool) {
	on := own && (allowed == nil || matchAny(allowed, l.info.ifi.Name)) && !a.forbidden(ip)
	switch {
	case ip.Is4() && l.arp != nil:
		if on {
			l.arp.Add(ip)
		} else {
			l.arp.Remove(ip)
		}
	case ip.Is6() && l.ndp != nil:
		if !on {
			l.ndp.Remove(ip)
			return
		}
		if _, err := l.ndp.Add(ip); err != nil {
			a.log.Warn("cannot answer NDP", slog.String("ip", ip.String()), slog.Any("error", err))
		}
	}
}

// matchAny reports whether one of the allow-list's names or glob patterns
// (path.Match syntax) matches name.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); p == name || (err == nil && ok) {
			return true
		}
	}
	return false
}

// stop stops a link's responders and waits for them. a.mu is held.
func (a *Announcer) stop(l *link) {
	l.cancel()
	l.wg.Wait()
}

func (a *Announcer) stopAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reTimer != nil {
		a.reTimer.Stop()
		a.reTimer = nil
	}
	for name, l := range a.links {
		a.stop(l)
		delete(a.links, name)
	}
}
