package e2etest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// Steady state is silent: with nothing changing, neither the controller nor
// the speakers write anything to the API server but the leader-election
// Lease renewals. The API server's own counters (apiserver_request_total,
// by verb, resource and subresource) are read over a window with Herald
// running and nothing changing, and over a window of the same length before
// Herald started (the bed's own background: the API server renews its
// identity Lease and reconciles its Endpoints through its own handlers).
// The difference is Herald's.

// TestSteadyStateSilent: 3 speakers, a leader-electing controller, 30
// Services; a 30 s window. It fails on any Herald write but a Lease
// renewal.
func TestSteadyStateSilent(t *testing.T) {
	steadyState(t, 30, 30*time.Second)
}

// BenchmarkSteadyState: 3 speakers, a leader-electing controller, 5,000
// Services (HERALD_BENCH_SERVICES), over 5 minutes (HERALD_BENCH_WINDOW, a
// Go duration). It prints Herald's requests per minute by verb and resource.
func BenchmarkSteadyState(b *testing.B) {
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_SERVICES")); err == nil && v > 0 {
		n = v
	}
	window := 5 * time.Minute
	if v, err := time.ParseDuration(os.Getenv("HERALD_BENCH_WINDOW")); err == nil && v > 0 {
		window = v
	}
	for b.Loop() {
		writes, reads := steadyState(b, n, window)
		b.ReportMetric(writes, "writes/min")
		b.ReportMetric(reads, "reads/min")
	}
}

// requestCounts reads apiserver_request_total, summed by
// "VERB resource[/subresource]".
func requestCounts(tb testing.TB, bed *testbed.Bed) map[string]float64 {
	tb.Helper()
	raw, err := bed.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	label := func(line, name string) string {
		_, v, ok := strings.Cut(line, name+`="`)
		if !ok {
			return ""
		}
		v, _, _ = strings.Cut(v, `"`)
		return v
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		key := label(line, "verb") + " " + label(line, "resource")
		if sub := label(line, "subresource"); sub != "" {
			key += "/" + sub
		}
		out[key] += v
	}
	return out
}

func diffCounts(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func isWrite(key string) bool {
	verb, _, _ := strings.Cut(key, " ")
	switch verb {
	case "POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY":
		return true
	}
	return false
}

func formatCounts(c map[string]float64, per time.Duration) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(c)) {
		fmt.Fprintf(&b, "\n  %-40s %6.0f  (%.1f/min)", k, c[k], c[k]/per.Minutes())
	}
	if b.Len() == 0 {
		return " none"
	}
	return b.String()
}

// steadyState runs the scenario and returns Herald's writes and reads per
// minute over the window, Lease writes excluded from the writes.
func steadyState(tb testing.TB, n int, window time.Duration) (writesPerMin, readsPerMin float64) {
	if os.Geteuid() != 0 {
		tb.Skip("the test bed needs root")
	}
	bed := testbed.Start(tb, testbed.Options{Nodes: 3, PodsPerNode: 1, NoKubeProxy: true})
	ctx := context.Background()
	if _, err := bed.ApplyCRDs(ctx); err != nil {
		tb.Fatal(err)
	}
	speakerBin, err := bed.HeraldBinary(ctx, "speaker")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := bed.HeraldBinary(ctx, "controller"); err != nil {
		tb.Fatal(err)
	}
	// The bed's own background, before anything of Herald's runs, scaled
	// to the window.
	bgWindow := min(window, time.Minute)
	b0 := requestCounts(tb, bed)
	time.Sleep(bgWindow)
	background := diffCounts(b0, requestCounts(tb, bed))
	tb.Logf("the bed's own requests over %v, without Herald:%s", bgWindow, formatCounts(background, bgWindow))
	for k := range background {
		background[k] *= window.Seconds() / bgWindow.Seconds()
	}

	apply(tb, bed, poolYAML("steady", []string{"198.18.64.0/18"}, "  serviceAllocation: {namespaces: [steady]}\n")+
		"---\napiVersion: herald.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: steady}\nspec: {ipAddressPools: [steady]}\n")
	startController(tb, bed, "controller", "--leader-elect", "--namespace", testbed.HeraldNamespace, "--log-level", "info")
	for _, node := range bed.Nodes {
		p, err := node.StartSpeaker(ctx, "speaker-"+node.Name, speakerBin, "--kubeconfig", bed.SpeakerKubeconfig,
			"--metrics-addr", "", "--health-addr", "")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = p.Stop(3 * time.Second) })
	}
	createBacklog(tb, bed, "steady", n, nil)
	eventually(tb, 10*time.Minute, fmt.Sprintf("%d Services served", n), func() (bool, string) {
		holders, pending := svcIPIndex(tb, bed, "steady")
		return len(pending) == 0 && len(holders) >= n, fmt.Sprintf("%d served, %d pending", len(holders), len(pending))
	})
	// Let the last announcements, events and pool statuses go out: wait
	// until a 10 s stretch has no write but Lease renewals.
	eventually(tb, 3*time.Minute, "a quiet 10 s", func() (bool, string) {
		before := requestCounts(tb, bed)
		time.Sleep(10 * time.Second)
		d := diffCounts(before, requestCounts(tb, bed))
		for k := range d {
			if isWrite(k) && !strings.HasSuffix(k, " leases") {
				return false, formatCounts(d, 10*time.Second)
			}
		}
		return true, ""
	})

	h0 := requestCounts(tb, bed)
	time.Sleep(window)
	with := diffCounts(h0, requestCounts(tb, bed))
	herald := map[string]float64{}
	for k, v := range with {
		if d := v - background[k]; d > 0.5 {
			herald[k] = d
		}
	}
	var writes, reads, leases float64
	var bad []string
	for k, v := range herald {
		switch {
		case isWrite(k) && strings.HasSuffix(k, " leases"):
			leases += v
		case isWrite(k):
			writes += v
			bad = append(bad, k)
		default:
			reads += v
		}
	}
	tb.Logf("over %v with %d Services, 3 speakers and a leader-electing controller, nothing changing:\n"+
		"all requests:%s\nHerald's (minus the bed's background):%s\n"+
		"Herald's writes: %.0f (%.1f/min) besides %.0f Lease writes (%.1f/min); reads: %.0f (%.1f/min)",
		window, n, formatCounts(with, window), formatCounts(herald, window),
		writes, writes/window.Minutes(), leases, leases/window.Minutes(), reads, reads/window.Minutes())
	if len(bad) > 0 {
		slices.Sort(bad)
		tb.Errorf("Herald wrote at steady state: %v", bad)
	}
	return writes / window.Minutes(), reads / window.Minutes()
}
