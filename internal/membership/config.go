package membership

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timings are memberlist's failure-detection and gossip timings.
//
// The defaults ([DefaultTimings]) aim at detecting a dead node in about
// 0.25 to 0.4 s on a LAN of up to ten nodes, against 4 to 6 s with
// memberlist's own LAN defaults. A dead node is declared after: up to one
// ProbeInterval until some node probes it; ProbeTimeout for the direct
// probe, then indirect probes until the interval ends; a suspicion timeout
// of SuspicionMult * max(1, log10(N)) * ProbeInterval; then one or two
// GossipIntervals for the others to hear it. The price is more probe
// traffic (one small UDP packet per node per ProbeInterval) and less
// tolerance of a node that stalls (long GC pause, CPU starvation): a node
// that cannot refute a suspicion within the suspicion timeout is declared
// dead, and comes back as soon as it refutes.
type Timings struct {
	// ProbeInterval is the time between two probes of a random member.
	// Default 80ms (memberlist LAN: 1s): with 100ms the slowest of 30 node
	// deaths on a 3-node bed took 518ms to fail over; with 80ms the slowest
	// of 20 took 400ms, and 10 minutes of CPU starvation (4 busy loops on 2
	// cores) still declared no live member dead (docs/scale.md).
	ProbeInterval time.Duration
	// ProbeTimeout is how long to wait for a direct probe's ack before
	// asking other members to probe indirectly. It must cover the LAN round
	// trip plus scheduling delays. Default 50ms (memberlist LAN: 500ms).
	ProbeTimeout time.Duration
	// IndirectChecks is how many members are asked to probe indirectly.
	// Default 3.
	IndirectChecks int
	// SuspicionMult scales the suspicion timeout (see the type comment).
	// Default 2: 160ms for up to ten nodes, 320ms for 100 (memberlist LAN: 4).
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout when confirmations
	// from other members are expected (SuspicionMult > 2). Default 3.
	SuspicionMaxTimeoutMult int
	// AwarenessMaxMultiplier caps how much a member that sees itself as
	// degraded (Lifeguard) stretches its probe interval and timeout, which
	// protects a healthy cluster from a sick prober. Default 4 (memberlist: 8),
	// so a degraded prober still detects a death within about 2s.
	AwarenessMaxMultiplier int
	// GossipInterval is the time between gossip rounds, which spread
	// suspicions, deaths and joins. Only rounds with something to say send
	// packets. Default 20ms (memberlist LAN: 200ms).
	GossipInterval time.Duration
	// GossipNodes is the number of members gossiped to per round. Default 3.
	GossipNodes int
	// RetransmitMult sets how many times a message is retransmitted:
	// RetransmitMult * log(N+1). Default 4.
	RetransmitMult int
	// GossipToTheDeadTime is how long a dead member is still gossiped to, so
	// that a member declared dead by mistake hears it and refutes. Default 15s.
	GossipToTheDeadTime time.Duration
	// PushPullInterval is the time between full state exchanges over TCP,
	// which repair any divergence. Default 15s (memberlist LAN: 30s).
	PushPullInterval time.Duration
	// TCPTimeout bounds a TCP exchange (join, push/pull). Default 2s.
	TCPTimeout time.Duration
}

// DefaultTimings returns the timings tuned for a LAN; see [Timings].
func DefaultTimings() Timings {
	return Timings{
		ProbeInterval:           80 * time.Millisecond,
		ProbeTimeout:            50 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           2,
		SuspicionMaxTimeoutMult: 3,
		AwarenessMaxMultiplier:  4,
		GossipInterval:          20 * time.Millisecond,
		GossipNodes:             3,
		RetransmitMult:          4,
		GossipToTheDeadTime:     15 * time.Second,
		PushPullInterval:        15 * time.Second,
		TCPTimeout:              2 * time.Second,
	}
}

// withDefaults fills the zero fields of t from DefaultTimings.
func (t Timings) withDefaults() Timings {
	d := DefaultTimings()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&t.ProbeInterval, d.ProbeInterval)
	setDur(&t.ProbeTimeout, d.ProbeTimeout)
	setInt(&t.IndirectChecks, d.IndirectChecks)
	setInt(&t.SuspicionMult, d.SuspicionMult)
	setInt(&t.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	setInt(&t.AwarenessMaxMultiplier, d.AwarenessMaxMultiplier)
	setDur(&t.GossipInterval, d.GossipInterval)
	setInt(&t.GossipNodes, d.GossipNodes)
	setInt(&t.RetransmitMult, d.RetransmitMult)
	setDur(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	setDur(&t.PushPullInterval, d.PushPullInterval)
	setDur(&t.TCPTimeout, d.TCPTimeout)
	return t
}

func (t Timings) validate() error {
	if t.ProbeTimeout >= t.ProbeInterval {
		return fmt.Errorf("timings: probeTimeout %v must be shorter than probeInterval %v", t.ProbeTimeout, t.ProbeInterval)
	}
	if t.SuspicionMult < 1 {
		return fmt.Errorf("timings: suspicionMult %d must be at least 1", t.SuspicionMult)
	}
	for name, v := range map[string]time.Duration{"probeInterval": t.ProbeInterval, "probeTimeout": t.ProbeTimeout, "gossipInterval": t.GossipInterval, "pushPullInterval": t.PushPullInterval, "tcpTimeout": t.TCPTimeout, "gossipToTheDeadTime": t.GossipToTheDeadTime} {
		if v < 0 {
			return fmt.Errorf("timings: %s %v is negative", name, v)
		}
	}
	return nil
}

// Config configures a [Cluster].
type Config struct {
	// Name is the member name: the Kubernetes node name. Required.
	Name string
	// BindAddr is the address to listen on (UDP and TCP). Default "0.0.0.0".
	BindAddr string
	// BindPort is the port to listen on. 0 picks a free port (for tests);
	// a speaker uses a fixed port, conventionally 7946.
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other members dial; by
	// default the bind address (or the host's private address when binding
	// 0.0.0.0) and the bound port. A speaker sets AdvertiseAddr to the node
	// IP it gives as a peer address to the others.
	AdvertiseAddr string
	// AdvertisePort: see AdvertiseAddr.
	AdvertisePort int
	// Secret is the content of the Secret the gossip key is derived from
	// (see [DeriveKey]). Nil disables encryption, which is logged as a
	// warning: anyone on the network could then join and steer elections.
	Secret []byte
	// PreviousSecrets are older secrets still accepted for decryption while
	// a key rotation rolls through the cluster. When set, the member starts
	// encrypting with the first of them, and moves to the key derived from
	// Secret once every member accepts it (see [Cluster.Rotate]).
	PreviousSecrets [][]byte
	// Meta is this member's metadata, gossiped with it (for example the
	// interfaces it can announce from). At most 512 bytes.
	Meta []byte
	// Timings are the failure-detection timings; zero fields take their
	// default from [DefaultTimings].
	Timings Timings
	// Logger receives memberlist's log, as structured records. Nil discards.
	Logger *slog.Logger
	// OnKeyMismatch, if set, is called when a peer's traffic cannot be
	// decrypted, which almost always means it uses another key (or none).
	// It is called at most once per MismatchReportInterval per peer address,
	// from memberlist's goroutines: it must not block.
	OnKeyMismatch func(KeyMismatch)
	// MismatchReportInterval limits OnKeyMismatch calls per peer. Default 1m.
	MismatchReportInterval time.Duration
	// Transport, when set, replaces memberlist's UDP and TCP sockets (and
	// BindAddr, BindPort and AdvertiseAddr are ignored): for simulations
	// that run many members in one process over a fake network.
	Transport memberlist.Transport
}

// KeyMismatch describes traffic from a peer that could not be decrypted.
type KeyMismatch struct {
	// From is the peer's address as memberlist reports it ("ip:port"), or
	// empty when unknown.
	From string
	// Detail is memberlist's message.
	Detail string
}

const maxMetaSize = 512
