package membership

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrKeyMismatch is wrapped by Join's error when the peers could not decrypt
// our traffic or we theirs: the Secret differs between speakers.
var ErrKeyMismatch = errors.New("memberlist encryption key mismatch")

// Member is a live member of the cluster.
type Member struct {
	// Name is the member's name (its node name).
	Name string
	// Addr is the address the member is reached at.
	Addr netip.AddrPort
	// Meta is the member's metadata (see Config.Meta).
	Meta []byte
}

// EventType says what happened to a member.
type EventType int

const (
	// EventJoin is a member becoming alive: it joined, or came back.
	EventJoin EventType = iota + 1
	// EventLeave is a member gone: it left gracefully or was declared dead.
	EventLeave
	// EventUpdate is a member's metadata or address changing.
	EventUpdate
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is a change of one member. The local member's own join is reported
// too, as the first event.
type Event struct {
	Type   EventType
	Member Member
	// Time is when memberlist reported the change.
	Time time.Time
}

// Cluster is this speaker's membership in the speakers' gossip cluster.
// Create it with [New]; stop it with [Cluster.Leave] (graceful) or
// [Cluster.Shutdown].
type Cluster struct {
	ml     *memberlist.Memberlist
	log    *slog.Logger
	name   string
	meta   atomic.Pointer[[]byte]
	timing Timings

	mismatches atomic.Uint64
	rejected   atomic.Uint64
	rotations  atomic.Uint64

	// keyring is memberlist's, nil without encryption. kmu serialises
	// SetSecrets and Rotate; want is the key the Secret asks to encrypt
	// with, keep the previous keys it still lists.
	keyring *memberlist.Keyring
	kmu     sync.Mutex
	want    []byte
	keep    [][]byte

	// Events flow: memberlist callbacks append to queue (never blocking
	// memberlist), the pump goroutine moves them to events.
	qmu    sync.Mutex
	queue  []Event
	signal chan struct{}
	events chan Event
	stop   chan struct{}
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// New creates the local member and starts listening. It does not join
// anyone: call [Cluster.Join] with the peers' addresses.
func New(cfg Config) (*Cluster, error) {
	if cfg.Name == "" {
		return nil, errors.New("membership: config: name is required")
	}
	if len(cfg.Meta) > maxMetaSize {
		return nil, fmt.Errorf("membership: config: meta has %d bytes, limit %d", len(cfg.Meta), maxMetaSize)
	}
	t := cfg.Timings.withDefaults()
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("membership: config: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(slog.String("member", cfg.Name))
	if cfg.MismatchReportInterval == 0 {
		cfg.MismatchReportInterval = time.Minute
	}

	c := &Cluster{
		log:    logger,
		name:   cfg.Name,
		timing: t,
		signal: make(chan struct{}, 1),
		events: make(chan Event),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	meta := slices.Clone(cfg.Meta)
	c.meta.Store(&meta)

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = "0.0.0.0"
	if cfg.BindAddr != "" {
		mc.BindAddr = cfg.BindAddr
	}
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort
	}
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.IndirectChecks = t.IndirectChecks
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	mc.AwarenessMaxMultiplier = t.AwarenessMaxMultiplier
	mc.GossipInterval = t.GossipInterval
	mc.GossipNodes = t.GossipNodes
	mc.RetransmitMult = t.RetransmitMult
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	// No LZW: memberlist compresses every packet with a fresh
	// compress/lzw Writer, a 64 KiB table allocated per probe and ack (and a
	// 20 KiB Reader per packet received), which made LZW and the garbage
	// collector most of a speaker's idle CPU, and saturated a 200-agent
	// simulation. The packets are a few hundred bytes; a peer that still
	// compresses is understood (memberlist decodes both).
	mc.EnableCompression = false
	mc.Events = (*eventDelegate)(c)
	mc.Delegate = (*metaDelegate)(c)
	mc.LogOutput = nil
	mc.Logger = log.New(newLogBridge(logger, &c.mismatches, &c.rejected, cfg.OnKeyMismatch, cfg.MismatchReportInterval), "", 0)

	if cfg.Secret == nil {
		logger.Warn("memberlist encryption is disabled: any host that reaches the memberlist port can join the speakers")
	} else {
		primary, err := DeriveKey(cfg.Secret)
		if err != nil {
			return nil, fmt.Errorf("membership: config: secret: %w", err)
		}
		keys := [][]byte{primary}
		for i, s := range cfg.PreviousSecrets {
			k, err := DeriveKey(s)
			if err != nil {
				return nil, fmt.Errorf("membership: config: previous secret %d: %w", i, err)
			}
			keys = append(keys, k)
			c.keep = append(c.keep, k)
		}
		c.want = primary
		// With previous secrets, a rotation may be under way: encrypt with
		// the oldest-known key, which every member still accepts, until
		// Rotate sees that every member accepts the new one.
		use := primary
		if len(c.keep) > 0 {
			use = c.keep[0]
		}
		kr, err := memberlist.NewKeyring(keys, use)
		if err != nil {
			return nil, fmt.Errorf("membership: keyring: %w", err)
		}
		mc.Keyring = kr
		c.keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}

	// The pump must run before Create: memberlist reports the local
	// member's join from within Create.
	go c.pump()
	ml, err := memberlist.Create(mc)
	if err != nil {
		close(c.stop)
		<-c.done
		return nil, fmt.Errorf("membership: start memberlist on %s:%d: %w", mc.BindAddr, cfg.BindPort, err)
	}
	c.ml = ml
	return c, nil
}

// Join contacts the given peers ("host:port" or "host", which uses the
// default port) and merges their view of the cluster. It returns how many
// peers were contacted. An error that wraps [ErrKeyMismatch] means the
// peers use another Secret. Joining is idempotent: a speaker may call Join
// whenever its list of peers changes, and should retry while it is alone.
func (c *Cluster) Join(peers []string) (int, error) {
	if len(peers) == 0 {
		return 0, nil
	}
	n, err := c.ml.Join(peers)
	if err != nil {
		if isKeyMismatch(err.Error()) {
			return n, fmt.Errorf("join %v: %w: %w", peers, ErrKeyMismatch, err)
		}
		return n, fmt.Errorf("join %v: %w", peers, err)
	}
	return n, nil
}

// Events returns the channel of member changes. The caller must keep
// reading it until it is closed, which happens after Leave or Shutdown;
// changes are queued, never dropped, while the caller is busy.
func (c *Cluster) Events() <-chan Event { return c.events }

// Members returns the live members, this one included, sorted by name.
func (c *Cluster) Members() []Member {
	nodes := c.ml.Members()
	ms := make([]Member, 0, len(nodes))
	for _, n := range nodes {
		ms = append(ms, toMember(n))
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// LocalAddr returns the address other members reach this one at.
func (c *Cluster) LocalAddr() netip.AddrPort {
	return toMember(c.ml.LocalNode()).Addr
}

// KeyMismatches returns how many times traffic that could not be decrypted
// was received, for a metric.
func (c *Cluster) KeyMismatches() uint64 { return c.mismatches.Load() }

// RejectedPackets returns how many packets or streams memberlist discarded
// because they could not be decrypted or decoded (key mismatches included),
// for a metric.
func (c *Cluster) RejectedPackets() uint64 { return c.rejected.Load() }

// KeyRotations returns how many times the primary key changed, for a metric.
func (c *Cluster) KeyRotations() uint64 { return c.rotations.Load() }

// SetMeta replaces this member's metadata and gossips it; the others see
// an [EventUpdate]. It waits for the broadcast until ctx is done.
func (c *Cluster) SetMeta(ctx context.Context, meta []byte) error {
	if len(meta) > maxMetaSize {
		return fmt.Errorf("membership: meta has %d bytes, limit %d", len(meta), maxMetaSize)
	}
	m := slices.Clone(meta)
	c.meta.Store(&m)
	if err := c.ml.UpdateNode(timeoutFrom(ctx, c.timing.TCPTimeout)); err != nil {
		return fmt.Errorf("membership: update meta: %w", err)
	}
	return nil
}

// Leave tells the cluster that this member leaves, so the others move its
// IPs at once instead of waiting for failure detection, then shuts down.
// It waits for the leave to be broadcast until ctx is done (one second if
// ctx has no deadline).
func (c *Cluster) Leave(ctx context.Context) error {
	err := c.ml.Leave(timeoutFrom(ctx, time.Second))
	if err != nil {
		err = fmt.Errorf("membership: leave: %w", err)
	}
	return errors.Join(err, c.Shutdown())
}

// Shutdown stops the member without telling the others, which will detect
// it as dead. It closes the Events channel. It is safe to call more than
// once.
func (c *Cluster) Shutdown() error {
	c.closeOnce.Do(func() {
		if err := c.ml.Shutdown(); err != nil {
			c.closeErr = fmt.Errorf("membership: shutdown: %w", err)
		}
		close(c.stop)
		<-c.done
	})
	return c.closeErr
}

func timeoutFrom(ctx context.Context, def time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if t := time.Until(d); t > 0 {
			return t
		}
		return time.Millisecond
	}
	return def
}

// pump moves queued events to the events channel; it is the only sender
// and closes it when stopped.
func (c *Cluster) pump() {
	defer close(c.done)
	defer close(c.events)
	for {
		c.qmu.Lock()
		var (
			next Event
			have bool
		)
		if len(c.queue) > 0 {
			next, have = c.queue[0], true
			c.queue[0] = Event{}
			c.queue = c.queue[1:]
		}
		c.qmu.Unlock()
		if !have {
			select {
			case <-c.signal:
				continue
			case <-c.stop:
				return
			}
		}
		select {
		case c.events <- next:
		case <-c.stop:
			return
		}
	}
}

func (c *Cluster) enqueue(t EventType, n *memberlist.Node) {
	ev := Event{Type: t, Member: toMember(n), Time: time.Now()}
	c.qmu.Lock()
	c.queue = append(c.queue, ev)
	c.qmu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
	c.log.Debug("member change", slog.String("event", t.String()), slog.String("peer", n.Name), slog.String("addr", ev.Member.Addr.String()))
}

func toMember(n *memberlist.Node) Member {
	m := Member{Name: n.Name, Meta: slices.Clone(n.Meta)}
	if ip, ok := netip.AddrFromSlice(n.Addr); ok {
		m.Addr = netip.AddrPortFrom(ip.Unmap(), n.Port)
	}
	return m
}

// eventDelegate receives memberlist's member notifications. memberlist
// calls it with its state lock held: it only queues.
type eventDelegate Cluster

func (d *eventDelegate) NotifyJoin(n *memberlist.Node) { (*Cluster)(d).enqueue(EventJoin, n) }

func (d *eventDelegate) NotifyLeave(n *memberlist.Node) { (*Cluster)(d).enqueue(EventLeave, n) }

func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Cluster)(d).enqueue(EventUpdate, n) }

// metaDelegate hands memberlist this member's metadata. The speakers
// exchange nothing else through memberlist.
type metaDelegate Cluster

func (d *metaDelegate) NodeMeta(limit int) []byte {
	m := *d.meta.Load()
	if len(m) > limit {
		return nil
	}
	return m
}

func (d *metaDelegate) NotifyMsg([]byte) {}

func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

func (d *metaDelegate) LocalState(join bool) []byte { return nil }

func (d *metaDelegate) MergeRemoteState(buf []byte, join bool) {}

var _ io.Writer = (*logBridge)(nil)
