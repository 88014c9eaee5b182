package allocator

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/config"
)

func benchRequests(n int, fams []config.Family) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{
			Key:          fmt.Sprintf("ns%d/svc%d", i%50, i),
			Namespace:    fmt.Sprintf("ns%d", i%50),
			Families:     fams,
			FamilyPolicy: SingleStack,
			Ports:        []Port{{Protocol: "TCP", Port: 80}},
		}
	}
	return reqs
}

// allocateAll allocates every request from a fresh allocator and returns it.
func allocateAll(b *testing.B, ps []*config.Pool, reqs []Request) *Allocator {
	a := New()
	a.SetConfig(ps)
	for _, r := range reqs {
		if _, err := a.Allocate(r); err != nil {
			b.Fatal(err)
		}
	}
	return a
}

// benchSequential times n allocations from one pool and reports the time
// per run and per allocation.
func benchSequential(b *testing.B, p *config.Pool, n int, fams []config.Family, bound time.Duration) {
	reqs := benchRequests(n, fams)
	ps := pools(p)
	b.ReportAllocs()
	var runs int
	start := time.Now()
	for b.Loop() {
		allocateAll(b, ps, reqs)
		runs++
	}
	perRun := time.Since(start) / time.Duration(runs)
	b.ReportMetric(float64(perRun.Nanoseconds())/float64(n), "ns/alloc")
	b.Logf("%d allocations from %s: %v per run (bound %v)", n, p.Name, perRun, bound)
}

// BenchmarkAllocateSlash8 allocates 100,000 addresses in sequence from one
// IPv4 /8 (bound: under 1 s in all) and reports the memory kept per
// allocation.
func BenchmarkAllocateSlash8(b *testing.B) {
	const n = 100_000
	p := mkPool("slash8", []string{"10.0.0.0/8"})
	benchSequential(b, p, n, v4, time.Second)

	// Measure what the allocator keeps: the heap with it, minus the heap
	// once it is dropped. The requests (and their key strings) stay alive
	// in both measurements.
	reqs := benchRequests(n, v4)
	var with, without runtime.MemStats
	a := allocateAll(b, pools(p), reqs)
	runtime.GC()
	runtime.ReadMemStats(&with)
	s, _ := a.Stats("slash8")
	intervals := a.pools["slash8"].fam[0].used.len()
	a = nil
	runtime.GC()
	runtime.ReadMemStats(&without)
	runtime.KeepAlive(reqs)
	kept := float64(with.HeapAlloc-without.HeapAlloc) / n
	b.ReportMetric(kept, "heap-B/alloc")
	b.Logf("memory kept: %.0f bytes per allocation (Service record, address record, map entries; free space costs nothing); tree intervals: %d; assigned %s, available %s",
		kept, intervals, s.IPv4.Assigned, s.IPv4.Available)
}

// BenchmarkAllocateSlash64 allocates 5,000 addresses in sequence from one
// IPv6 /64 (bound: under 50 ms in all).
func BenchmarkAllocateSlash64(b *testing.B) {
	benchSequential(b, mkPool("slash64", []string{"2001:db8::/64"}), 5_000, v6, 50*time.Millisecond)
}

// BenchmarkAllocateExhausted times one failed allocation on a full /16
// (bound: under 10 µs).
func BenchmarkAllocateExhausted(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []poolOpt
	}{{"plain", nil}, {"avoidBuggyIPs", []poolOpt{avoid}}} {
		b.Run(tc.name, func(b *testing.B) {
			p := mkPool("slash16", []string{"10.0.0.0/16"}, tc.opts...)
			a := New()
			a.SetConfig(pools(p))
			for i := 0; ; i++ {
				if _, err := a.Allocate(Request{Key: fmt.Sprintf("ns/s%d", i), Families: v4}); err != nil {
					break
				}
			}
			req := Request{Key: "ns/one-too-many", Namespace: "ns", Families: v4}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Allocate(req); err == nil {
					b.Fatal("allocated from a full pool")
				}
			}
			_, err := a.Allocate(req)
			b.Logf("error: %v", err)
		})
	}
}

// BenchmarkAllocateManyPools allocates 10,000 Services across 200 pools
// that select them by namespace and by service labels, ordered by priority,
// plus a default pool.
func BenchmarkAllocateManyPools(b *testing.B) {
	const n, npools = 10_000, 200
	var ps []*config.Pool
	for i := range npools {
		ps = append(ps, mkPool(fmt.Sprintf("pool%03d", i), []string{fmt.Sprintf("10.%d.%d.0/22", i/64, (i%64)*4)},
			inNamespaces(fmt.Sprintf("ns%d", i%50)), svcSelector(fmt.Sprintf("app=app%d", i/50)), prio(int32(i%7))))
	}
	ps = append(ps, mkPool("default", []string{"192.168.0.0/16"}))
	reqs := benchRequests(n, v4)
	for i := range reqs {
		reqs[i].ServiceLabels = map[string]string{"app": fmt.Sprintf("app%d", i%5)}
		reqs[i].NamespaceLabels = map[string]string{"team": "x"}
	}
	b.ReportAllocs()
	var runs int
	start := time.Now()
	var a *Allocator
	for b.Loop() {
		a = allocateAll(b, ps, reqs)
		runs++
	}
	perRun := time.Since(start) / time.Duration(runs)
	b.ReportMetric(float64(perRun.Nanoseconds())/n, "ns/alloc")
	s, _ := a.Stats("default")
	b.Logf("%d allocations across %d pools: %v per run; %s went to the default pool", n, npools+1, perRun, s.IPv4.Assigned)
}

// BenchmarkAllocateFragmented allocates and releases in a /16 where every
// other address is in use, so the tree holds 32,768 intervals: one lookup
// costs O(log n) in the number of intervals.
func BenchmarkAllocateFragmented(b *testing.B) {
	const n = 1 << 16
	reqs := benchRequests(n, v4)
	a := allocateAll(b, pools(mkPool("slash16", []string{"10.0.0.0/16"})), reqs)
	for i := 0; i < n; i += 2 {
		a.Release(reqs[i].Key)
	}
	req := Request{Key: "ns/churn", Namespace: "ns", Families: v4}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Allocate(req); err != nil {
			b.Fatal(err)
		}
		a.Release(req.Key)
	}
	b.Logf("tree intervals: %d", a.pools["slash16"].fam[0].used.len())
}
