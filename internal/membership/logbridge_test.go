package membership

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLogBridgeGarbage feeds the bridge the lines memberlist writes for a
// flood of garbage from many source addresses: the log stays a few lines,
// the tables stay bounded, and the counters count every packet.
func TestLogBridgeGarbage(t *testing.T) {
	lines := []struct {
		desc       string
		line       string
		mismatch   bool
		rejected   bool
		wantLevel  string
		wantLogged int // for 10,000 lines within one interval
	}{
		{desc: "UDP from another key", line: "[ERR] memberlist: Decrypt packet failed: No installed keys could decrypt the message from=198.18.%d.%d:7946",
			mismatch: true, rejected: true, wantLevel: "ERROR", wantLogged: 1},
		{desc: "UDP garbage", line: "[ERR] memberlist: Decrypt packet failed: Unsupported encryption version 99 from=198.18.%d.%d:7946",
			rejected: true, wantLevel: "WARN", wantLogged: 1},
		{desc: "TCP garbage", line: "[ERR] memberlist: failed to receive: Payload is too small to decrypt: 3 from=198.18.%d.%d:40000",
			rejected: true, wantLevel: "WARN", wantLogged: 1},
		{desc: "garbage label", line: "[ERR] memberlist: discarding packet with unacceptable label \"x%d-%d\": from=198.18.0.1:7946",
			rejected: true, wantLevel: "WARN", wantLogged: 1},
		{desc: "unencrypted garbage", line: "[ERR] memberlist: msg type (77) not supported from=198.18.%d.%d:7946",
			rejected: true, wantLevel: "WARN", wantLogged: 1},
		{desc: "info passes", line: "[INFO] memberlist: Suspect node%d-%d has failed, no acks received", wantLevel: "INFO", wantLogged: 10000},
	}
	for _, tc := range lines {
		t.Run(tc.desc, func(t *testing.T) {
			var out bytes.Buffer
			var mismatches, rejected atomic.Uint64
			var reports atomic.Int64
			b := newLogBridge(slog.New(slog.NewTextHandler(&out, nil)), &mismatches, &rejected,
				func(KeyMismatch) { reports.Add(1) }, time.Minute)
			const n = 10000
			for i := range n {
				fmt.Fprintf(b, tc.line+"\n", i/250, i%250)
			}
			logged := strings.Count(out.String(), "\n")
			if logged != tc.wantLogged {
				t.Errorf("%d lines logged, want %d", logged, tc.wantLogged)
			}
			if logged > 0 && !strings.Contains(out.String(), "level="+tc.wantLevel) {
				t.Errorf("log %q is not at %s", strings.SplitN(out.String(), "\n", 2)[0], tc.wantLevel)
			}
			if got, want := rejected.Load(), map[bool]uint64{true: n}[tc.rejected]; got != want {
				t.Errorf("rejected = %d, want %d", got, want)
			}
			if got, want := mismatches.Load(), map[bool]uint64{true: n}[tc.mismatch]; got != want {
				t.Errorf("mismatches = %d, want %d", got, want)
			}
			if r := reports.Load(); r > maxReportedPeers {
				t.Errorf("%d mismatch reports for %d sources, want at most %d", r, n, maxReportedPeers)
			}
			if b.reported.len() > maxReportedPeers || b.logged.len() > maxLogKinds {
				t.Errorf("tables hold %d peers and %d kinds", b.reported.len(), b.logged.len())
			}
		})
	}
}

// limitStep is one call of limiter.allow and its expected result.
type limitStep struct {
	key            string
	at             time.Duration
	ok             bool
	suppressedWant uint64
}

func TestLimiter(t *testing.T) {
	t0 := time.Unix(0, 0)
	tests := []struct {
		desc     string
		overflow string
		steps    []limitStep
	}{
		{desc: "one per interval, with the count of the refused", steps: []limitStep{
			{"a", 0, true, 0}, {"a", time.Second, false, 0}, {"a", 2 * time.Second, false, 0}, {"a", 10 * time.Second, true, 2},
		}},
		{desc: "a full table refuses new keys until entries expire", steps: []limitStep{
			{"a", 0, true, 0}, {"b", 0, true, 0}, {"c", time.Second, false, 0}, {"c", 10 * time.Second, true, 0},
		}},
		{desc: "a full table sends new keys to the overflow slot", overflow: "other", steps: []limitStep{
			{"a", 0, true, 0}, {"b", 0, true, 0}, {"c", time.Second, true, 0}, {"d", time.Second, false, 0},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			l := limiter{max: 2, every: 10 * time.Second, overflow: tc.overflow}
			for i, s := range tc.steps {
				ok, n := l.allow(s.key, t0.Add(s.at))
				if ok != s.ok || n != s.suppressedWant {
					t.Fatalf("step %d (%s at %v): allow = %v, %d; want %v, %d", i, s.key, s.at, ok, n, s.ok, s.suppressedWant)
				}
				if l.len() > 2 {
					t.Fatalf("step %d: %d keys held", i, l.len())
				}
			}
		})
	}
}
