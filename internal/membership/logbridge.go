package membership

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxReportedPeers bounds the table of peers recently reported to
	// OnKeyMismatch. Anyone who reaches the port can pick the source
	// address of a datagram, so a table keyed by it must not grow with
	// what arrives: when it is full of fresh entries, further reports wait.
	maxReportedPeers = 64
	// logInterval is how often one kind of problem line is logged; the
	// lines in between are counted and the count is logged with the next.
	logInterval = 10 * time.Second
	// maxLogKinds bounds the table of problem kinds; beyond it every kind
	// shares one slot.
	maxLogKinds = 32
)

// logBridge is the io.Writer behind memberlist's *log.Logger. memberlist
// reports problems only through its log, so the bridge turns each line into
// a structured record, spots the lines that mean a key mismatch or a
// rejected packet, and rate-limits the warnings and errors: a neighbour
// that sends garbage to the memberlist port must not be able to fill the
// log, nor grow the speaker's memory.
type logBridge struct {
	log        *slog.Logger
	mismatches *atomic.Uint64
	rejected   *atomic.Uint64
	onMismatch func(KeyMismatch)
	interval   time.Duration
	now        func() time.Time

	reported limiter // peer address -> last OnKeyMismatch call
	logged   limiter // problem kind -> last line logged
}

func newLogBridge(log *slog.Logger, mismatches, rejected *atomic.Uint64, onMismatch func(KeyMismatch), interval time.Duration) *logBridge {
	return &logBridge{
		log:        log,
		mismatches: mismatches,
		rejected:   rejected,
		onMismatch: onMismatch,
		interval:   interval,
		now:        time.Now,
		reported:   limiter{max: maxReportedPeers, every: interval},
		logged:     limiter{max: maxLogKinds, every: logInterval, overflow: "other"},
	}
}

// Write handles one log line (log.Logger writes each line with one call).
func (b *logBridge) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level, msg := splitLevel(line)
	msg = strings.TrimPrefix(msg, "memberlist: ")
	from := ""
	if i := strings.LastIndex(msg, " from="); i >= 0 {
		from = msg[i+len(" from="):]
		msg = msg[:i]
	}
	mismatch, rejected := isKeyMismatch(msg), isRejected(msg)
	switch {
	case mismatch:
		b.mismatches.Add(1)
		b.rejected.Add(1)
		if b.onMismatch != nil {
			if ok, _ := b.reported.allow(from, b.now()); ok {
				b.onMismatch(KeyMismatch{From: from, Detail: msg})
			}
		}
		level = slog.LevelError
	case rejected:
		// Garbage or a broken peer: not an error of this speaker.
		b.rejected.Add(1)
		level = slog.LevelWarn
	case strings.Contains(msg, "use of closed network connection"):
		// memberlist's goroutines race its own shutdown; not a problem.
		level = slog.LevelDebug
	}
	if !b.log.Enabled(context.Background(), level) {
		return len(p), nil
	}
	attrs := []slog.Attr{slog.String("component", "memberlist")}
	if from != "" {
		attrs = append(attrs, slog.String("peer", from))
	}
	if level >= slog.LevelWarn {
		ok, suppressed := b.logged.allow(problemKind(msg), b.now())
		if !ok {
			return len(p), nil
		}
		if suppressed > 0 {
			attrs = append(attrs, slog.Uint64("suppressed", suppressed))
		}
	}
	b.log.LogAttrs(context.Background(), level, msg, attrs...)
	return len(p), nil
}

// problemKind is the part of a memberlist message before its variable
// part (after a colon, in quotes or parentheses, or a number), bounded in
// length: garbage must not make up a new kind per packet.
func problemKind(msg string) string {
	if i := strings.IndexAny(msg, ":\"(0123456789"); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 64 {
		msg = msg[:64]
	}
	return msg
}

// limiter lets one event per key through every interval, in a table of at
// most max keys. When the table is full, expired keys are dropped; if none
// has expired, the event goes to the overflow key, or is refused when there
// is none. Memory is bounded whatever the keys are.
type limiter struct {
	max      int
	every    time.Duration
	overflow string

	mu      sync.Mutex
	entries map[string]*limitEntry
}

type limitEntry struct {
	last       time.Time
	suppressed uint64
}

// allow reports whether an event for key may go through now, and how many
// were refused for it since the last one that went through.
func (l *limiter) allow(key string, now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = make(map[string]*limitEntry)
	}
	e, ok := l.entries[key]
	if !ok && len(l.entries) >= l.max {
		for k, old := range l.entries {
			if now.Sub(old.last) >= l.every {
				delete(l.entries, k)
			}
		}
		if len(l.entries) >= l.max {
			if l.overflow == "" {
				return false, 0
			}
			key = l.overflow
			e, ok = l.entries[key]
			if !ok {
				// Make room for the overflow slot itself.
				for k := range l.entries {
					delete(l.entries, k)
					break
				}
			}
		}
	}
	if !ok {
		l.entries[key] = &limitEntry{last: now}
		return true, 0
	}
	if now.Sub(e.last) < l.every {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// len returns the number of keys held.
func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// splitLevel maps memberlist's "[LEVEL] " prefix to a slog level.
func splitLevel(line string) (slog.Level, string) {
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG] ", slog.LevelDebug},
		{"[INFO] ", slog.LevelInfo},
		{"[WARN] ", slog.LevelWarn},
		{"[ERR] ", slog.LevelError},
		{"[ERROR] ", slog.LevelError},
	} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			return l.level, rest
		}
	}
	return slog.LevelInfo, line
}

// isKeyMismatch recognises memberlist's messages for traffic encrypted with
// another key, or not encrypted when it should be (or the reverse):
//
//	Decrypt packet failed: No installed keys could decrypt the message (UDP)
//	failed to receive: No installed keys could decrypt the message (TCP)
//	... remote state is encrypted and encryption is not configured
//	... encryption is configured but remote state is not encrypted
//
// Other decryption failures ("Unsupported encryption version", "Payload is
// too small to decrypt") come from bytes that are no memberlist traffic at
// all: they are rejected packets (see isRejected), not a mismatch.
func isKeyMismatch(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "no installed keys could decrypt") ||
		strings.Contains(m, "encryption is not configured") ||
		strings.Contains(m, "remote state is not encrypted")
}

// rejectedMarkers are memberlist's messages for an inbound packet or stream
// it discarded: undecryptable, undecodable, truncated or of an unknown type.
var rejectedMarkers = []string{
	"decrypt",
	"failed to receive",
	"failed to decode",
	"failed to read remote state",
	"failed to decompress",
	"failed push/pull merge",
	"invalid checksum",
	"invalid msgtype",
	"not supported",
	"missing message type",
	"truncated messages",
	"unacceptable label",
	"cannot decode label",
	"truncated",
	"label header",
	"remote node state size",
	"failed to receive user message",
}

// isRejected recognises memberlist's messages for a discarded inbound
// packet or stream.
func isRejected(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range rejectedMarkers {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
