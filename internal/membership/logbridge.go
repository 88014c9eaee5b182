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

// logBridge is the io.Writer behind memberlist's *log.Logger. memberlist
// reports problems only through its log, so the bridge turns each line into
// a structured record and spots the lines that mean a key mismatch.
type logBridge struct {
	log        *slog.Logger
	mismatches *atomic.Uint64
	onMismatch func(KeyMismatch)
	interval   time.Duration

	mu       sync.Mutex
	reported map[string]time.Time // peer address -> last OnKeyMismatch call
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
	if isKeyMismatch(msg) {
		b.mismatches.Add(1)
		b.report(KeyMismatch{From: from, Detail: msg})
		level = slog.LevelError
	} else if strings.Contains(msg, "use of closed network connection") {
		// memberlist's goroutines race its own shutdown; not a problem.
		level = slog.LevelDebug
	}
	if b.log.Enabled(context.Background(), level) {
		attrs := []slog.Attr{slog.String("component", "memberlist")}
		if from != "" {
			attrs = append(attrs, slog.String("peer", from))
		}
		b.log.LogAttrs(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}

func (b *logBridge) report(m KeyMismatch) {
	if b.onMismatch == nil {
		return
	}
	now := time.Now()
	b.mu.Lock()
	last, seen := b.reported[m.From]
	due := !seen || now.Sub(last) >= b.interval
	if due {
		b.reported[m.From] = now
	}
	b.mu.Unlock()
	if due {
		b.onMismatch(m)
	}
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
//	Decrypt packet failed: no installed keys could decrypt the message (UDP)
//	failed to receive: no installed keys could decrypt the message (TCP)
//	... remote state is encrypted and encryption is not configured
//	... encryption is configured but remote state is not encrypted
func isKeyMismatch(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "decrypt") ||
		strings.Contains(m, "encryption is not configured") ||
		strings.Contains(m, "remote state is not encrypted")
}
