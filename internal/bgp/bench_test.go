package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// ribWatch follows the router's best paths through WatchEvent, so a
// benchmark learns when a prefix lands without polling the RIB.
type ribWatch struct {
	mu      sync.Mutex
	present map[netip.Prefix]time.Time
	changed chan struct{} // signalled (non-blocking) on every change
}

func watchRIB(b testing.TB, r *router) *ribWatch {
	w := &ribWatch{present: map[netip.Prefix]time.Time{}, changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	err := r.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnBestPath: func(paths []*apiutil.Path, _ time.Time) {
			now := time.Now()
			w.mu.Lock()
			for _, p := range paths {
				pfx := netip.MustParsePrefix(p.Nlri.String())
				if p.Withdrawal {
					delete(w.present, pfx)
				} else {
					w.present[pfx] = now
				}
			}
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		},
	}, server.WatchBestPath(false))
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// waitFor waits until cond holds on the present set, and returns when the
// last change before that happened.
func (w *ribWatch) waitFor(b testing.TB, d time.Duration, cond func(map[netip.Prefix]time.Time) bool) {
	b.Helper()
	timeout := time.After(d)
	for {
		w.mu.Lock()
		ok := cond(w.present)
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-w.changed:
		case <-timeout:
			b.Fatalf("router RIB did not converge within %v", d)
		}
	}
}

func benchSetup(b *testing.B) (*Speaker, *ribWatch) {
	r := newRouter(b, "127.0.0.1", ebgpASN)
	r.neighbor(speakerIP, speakerASN)
	w := watchRIB(b, r)
	s := newSpeaker(b, speakerASN)
	if err := s.SetPeers(context.Background(), []Peer{r.peerFor("r", 0)}); err != nil {
		b.Fatal(err)
	}
	eventually(b, 10*time.Second, "established", func() bool { return r.established(speakerIP) })
	return s, w
}

// BenchmarkAnnounce5000 measures the time from SetAdvertisements with
// 5,000 new prefixes until all 5,000 are in the router's RIB.
func BenchmarkAnnounce5000(b *testing.B) {
	const n = 5000
	s, w := benchSetup(b)
	ads := make([]Advertisement, n)
	for i := range ads {
		ads[i] = Advertisement{
			Prefix:      netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 30, byte(i >> 8), byte(i)}), 32),
			Communities: []uint32{65000<<16 | 1},
		}
	}
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := s.SetAdvertisements(context.Background(), ads); err != nil {
			b.Fatal(err)
		}
		w.waitFor(b, 30*time.Second, func(m map[netip.Prefix]time.Time) bool { return len(m) == n })
		took = append(took, time.Since(start))

		b.StopTimer()
		if err := s.SetAdvertisements(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		w.waitFor(b, 30*time.Second, func(m map[netip.Prefix]time.Time) bool { return len(m) == 0 })
		b.StartTimer()
	}
	med := median(took)
	b.ReportMetric(float64(med.Microseconds())/1000, "ms-median/5000")
	fmt.Printf("5,000 prefixes: SetAdvertisements -> all in the router's RIB: median %v over %d runs (min %v, max %v)\n",
		med.Round(time.Millisecond), len(took), slices.Min(took).Round(time.Millisecond), slices.Max(took).Round(time.Millisecond))
}

// BenchmarkSinglePrefixLatency measures the time from SetAdvertisements
// adding one prefix (to a set of 1,000 announced ones) until the router
// has it.
func BenchmarkSinglePrefixLatency(b *testing.B) {
	const base = 1000
	s, w := benchSetup(b)
	ads := make([]Advertisement, base, base+1)
	for i := range ads {
		ads[i] = Advertisement{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 40, byte(i >> 8), byte(i)}), 32)}
	}
	if err := s.SetAdvertisements(context.Background(), ads); err != nil {
		b.Fatal(err)
	}
	w.waitFor(b, 30*time.Second, func(m map[netip.Prefix]time.Time) bool { return len(m) == base })
	var took []time.Duration
	i := 0
	for b.Loop() {
		i++
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 50, byte(i >> 8), byte(i)}), 32)
		start := time.Now()
		if err := s.SetAdvertisements(context.Background(), append(ads, Advertisement{Prefix: p})); err != nil {
			b.Fatal(err)
		}
		w.waitFor(b, 10*time.Second, func(m map[netip.Prefix]time.Time) bool { _, ok := m[p]; return ok })
		took = append(took, time.Since(start))
	}
	med := median(took)
	b.ReportMetric(float64(med.Microseconds())/1000, "ms-median")
	fmt.Printf("one prefix: SetAdvertisements -> router's RIB: median %v over %d runs (p90 %v, max %v)\n",
		med.Round(10*time.Microsecond), len(took), percentile(took, 0.9).Round(10*time.Microsecond), slices.Max(took).Round(10*time.Microsecond))
}

func median(d []time.Duration) time.Duration { return percentile(d, 0.5) }

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q)]
}
