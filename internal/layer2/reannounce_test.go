package layer2

import (
	"context"
	"testing"
	"time"
)

// TestReannounce checks that a responder re-sends a full gratuitous burst
// for what it owns on Reannounce, and nothing for what it gave up.
func TestReannounce(t *testing.T) {
	stats := new(Stats)
	r, _ := newTestARP(t, Options{GratuitousCount: 2, GratuitousInterval: 10 * time.Millisecond, Stats: stats})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	r.Add(ownedV4)
	waitFor(t, func() bool { return stats.GratuitousARP.Load() == 4 }, "the takeover burst")
	r.Reannounce()
	waitFor(t, func() bool { return stats.GratuitousARP.Load() == 8 }, "the burst again")
	r.Remove(ownedV4)
	r.Reannounce()
	time.Sleep(50 * time.Millisecond)
	if n := stats.GratuitousARP.Load(); n != 8 {
		t.Fatalf("%d gratuitous packets after Reannounce of nothing, want 8", n)
	}
	cancel()
	<-done
}

// TestAnnouncerReannounceRate checks that the announcer merges the
// Reannounce calls of a burst of membership changes into one round per
// ReannounceInterval.
func TestAnnouncerReannounceRate(t *testing.T) {
	tests := []struct {
		desc      string
		calls     int
		wantFirst uint64 // rounds at once
		wantLater uint64 // rounds after the interval
	}{
		{desc: "one change", calls: 1, wantFirst: 1, wantLater: 1},
		{desc: "a burst of changes", calls: 50, wantFirst: 1, wantLater: 2},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			a := NewAnnouncer(AnnouncerConfig{SysClassNet: t.TempDir()})
			defer a.stopAll()
			for range tc.calls {
				a.Reannounce()
			}
			if n := a.Stats().Reannounces.Load(); n != tc.wantFirst {
				t.Fatalf("%d rounds at once, want %d", n, tc.wantFirst)
			}
			time.Sleep(ReannounceInterval + 200*time.Millisecond)
			if n := a.Stats().Reannounces.Load(); n != tc.wantLater {
				t.Fatalf("%d rounds after the interval, want %d", n, tc.wantLater)
			}
		})
	}
}
