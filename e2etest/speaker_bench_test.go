package e2etest

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// BenchmarkSpeakerScale measures, on a 2-node bed with the real controller
// and speakers, the ARP reply latency seen by the L2 client and the
// speakers' RSS, first with 10 Services and then with 10,000 (or
// HERALD_BENCH_SERVICES). Run it with `make bench-e2e` (root).
func BenchmarkSpeakerScale(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the test bed needs root")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_SERVICES")); err == nil && v > 0 {
		n = v
	}
	bed := testbed.Start(b, testbed.Options{Nodes: 2, PodsPerNode: 1})
	ctx := context.Background()
	if _, err := bed.ApplyCRDs(ctx); err != nil {
		b.Fatal(err)
	}
	// The pool lies off the client's subnet: nothing is routed to it, and
	// arping asks for the addresses on the segment all the same.
	apply(b, bed, poolYAML("scale", []string{"198.18.64.0/18"}, "  serviceAllocation: {namespaces: [scale]}\n")+
		"---\napiVersion: herald.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: scale}\nspec: {ipAddressPools: [scale]}\n")
	startController(b, bed, "controller")
	speakerBin, err := bed.HeraldBinary(ctx, "speaker")
	if err != nil {
		b.Fatal(err)
	}
	speakers := map[string]*testbed.Process{}
	pprof, pprofAddr := pprofArgs(b, false)
	for _, node := range bed.Nodes {
		p, err := node.StartSpeaker(ctx, "speaker-"+node.Name, speakerBin, append([]string{"--kubeconfig", bed.SpeakerKubeconfig,
			"--metrics-addr", "", "--health-addr", ""}, pprof...)...)
		if err != nil {
			b.Fatal(err)
		}
		speakers[node.Name] = p
	}
	for b.Loop() {
		createBacklog(b, bed, "scale", 10, nil)
		small := measureARP(b, bed, "scale", 10)
		rssSmall := speakersRSS(speakers)
		logMemSplit(b, speakers, "10 Services")
		saveHeap(b, bed.Nodes[0].NS, pprofAddr, "speaker-heap-10.pb.gz")
		createBacklog(b, bed, "scale", n, nil)
		large := measureARP(b, bed, "scale", n)
		rssLarge := speakersRSS(speakers)
		logMemSplit(b, speakers, fmt.Sprintf("%d Services", n))
		saveHeap(b, bed.Nodes[0].NS, pprofAddr, fmt.Sprintf("speaker-heap-%d.pb.gz", n))
		b.ReportMetric(small.Seconds()*1e3, "arp-ms-10ips")
		b.ReportMetric(large.Seconds()*1e3, fmt.Sprintf("arp-ms-%dips", n))
		b.ReportMetric(float64(slices.Max(slices.Collect(maps.Values(rssSmall))))/1024, "speaker-rss-MiB-10svc")
		b.ReportMetric(float64(slices.Max(slices.Collect(maps.Values(rssLarge))))/1024, "speaker-rss-MiB")
		b.Logf("ARP reply latency at the client: %v with 10 Services, %v with %d; speaker RSS %v KiB with 10, %v KiB with %d",
			small, large, n, rssSmall, rssLarge, n)
	}
}

// logMemSplit logs each speaker's RSS split: anonymous memory, and the
// binary's pages.
func logMemSplit(b *testing.B, speakers map[string]*testbed.Process, at string) {
	for _, name := range slices.Sorted(maps.Keys(speakers)) {
		b.Logf("%s, %s: %s", name, at, memSplit(speakers[name].PID))
	}
}

// BenchmarkSpeakerBurst measures the work of each speaker when, on a
// 3-node bed where the speakers announce 5,000 Services (or
// HERALD_BENCH_SERVICES), 500 more are allocated in one burst: the
// configuration rebuilds (the pool-status echoes must cost none) and the
// elections (each new Service costs its own key's, not a re-election of
// every key). Run it with `make bench-e2e` (root).
func BenchmarkSpeakerBurst(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the test bed needs root")
	}
	n, burst := 5000, 500
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_SERVICES")); err == nil && v > 0 {
		n = v
	}
	bed := testbed.Start(b, testbed.Options{Nodes: 3, PodsPerNode: 1})
	ctx := context.Background()
	if _, err := bed.ApplyCRDs(ctx); err != nil {
		b.Fatal(err)
	}
	apply(b, bed, poolYAML("burst", []string{"198.18.64.0/18"}, "  serviceAllocation: {namespaces: [burst]}\n")+
		"---\napiVersion: herald.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: burst}\nspec: {ipAddressPools: [burst]}\n")
	startController(b, bed, "controller")
	speakerBin, err := bed.HeraldBinary(ctx, "speaker")
	if err != nil {
		b.Fatal(err)
	}
	procs := map[string]*testbed.Process{}
	for _, node := range bed.Nodes {
		p, err := node.StartSpeaker(ctx, "speaker-"+node.Name, speakerBin, "--kubeconfig", bed.SpeakerKubeconfig,
			"--metrics-addr", "127.0.0.1:7472", "--metrics-secure=false", "--health-addr", "")
		if err != nil {
			b.Fatal(err)
		}
		procs[node.Name] = p
	}
	// writes returns each live speaker's ServiceAnnouncement writes once
	// they have stopped rising for 3 s (the writer runs behind the loop).
	writes := func(nodes []*testbed.Node) map[string]float64 {
		b.Helper()
		read := func() map[string]float64 {
			out := map[string]float64{}
			for _, node := range nodes {
				m, err := speakerMetrics(ctx, node)
				if err != nil {
					b.Fatal(err)
				}
				out[node.Name] = m[`herald_announcement_status_writes_total{op="apply"}`] + m[`herald_announcement_status_writes_total{op="delete"}`]
			}
			return out
		}
		last, since := read(), time.Now()
		for time.Since(since) < 3*time.Second {
			time.Sleep(500 * time.Millisecond)
			if cur := read(); !maps.Equal(cur, last) {
				last, since = cur, time.Now()
			}
		}
		return last
	}
	// work returns each speaker's rebuilds and elections once the speakers
	// together announce want IPs.
	work := func(want int) map[string][2]float64 {
		b.Helper()
		eventually(b, 10*time.Minute, fmt.Sprintf("%d Services served", want), func() (bool, string) {
			holders, pending := svcIPIndex(b, bed, "burst")
			return len(pending) == 0 && len(holders) >= want, fmt.Sprintf("%d served, %d pending", len(holders), len(pending))
		})
		out := map[string][2]float64{}
		eventually(b, 10*time.Minute, fmt.Sprintf("the speakers announce %d IPs", want), func() (bool, string) {
			total := 0.0
			for _, node := range bed.Nodes {
				m, err := speakerMetrics(ctx, node)
				if err != nil {
					return false, err.Error()
				}
				total += m[`herald_layer2_announced_ips{protocol="arp"}`]
				out[node.Name] = [2]float64{m["herald_config_rebuilds_total"], m["herald_elections_total"]}
			}
			return total == float64(want), fmt.Sprintf("%v announced", total)
		})
		return out
	}
	for b.Loop() {
		createBacklog(b, bed, "burst", n, nil)
		before := work(n)
		w0 := writes(bed.Nodes)
		start := time.Now()
		createRange(b, bed, "burst", n, n+burst, nil)
		after := work(n + burst)
		took := time.Since(start)
		w1 := writes(bed.Nodes)
		total := 0.0
		for _, node := range bed.Nodes {
			b.Logf("%s: %v ServiceAnnouncement writes for the first %d Services, %v for the burst of %d", node.Name, w0[node.Name], n, w1[node.Name]-w0[node.Name], burst)
			total += w1[node.Name] - w0[node.Name]
		}
		b.ReportMetric(total/float64(burst), "announcement-writes/new-service")
		maxRebuilds, maxElections := 0.0, 0.0
		for _, node := range bed.Nodes {
			r, e := after[node.Name][0]-before[node.Name][0], after[node.Name][1]-before[node.Name][1]
			b.Logf("%s: %v configuration rebuilds and %v elections for %d new Services (on top of %d); %s", node.Name, r, e, burst, n, memSplit(procs[node.Name].PID))
			maxRebuilds, maxElections = max(maxRebuilds, r), max(maxElections, e)
		}
		b.Logf("the burst of %d was announced %v after the first create", burst, took.Round(time.Millisecond))
		b.ReportMetric(maxRebuilds, "rebuilds/speaker")
		b.ReportMetric(maxElections/float64(burst), "elections/new-service")
		b.ReportMetric(took.Seconds(), "burst-s")
		// The owner of a third of the IPs dies: the others take its IPs
		// over, and write one ServiceAnnouncement per IP they take.
		dead := bed.Nodes[len(bed.Nodes)-1]
		m, err := speakerMetrics(ctx, dead)
		if err != nil {
			b.Fatal(err)
		}
		moved := m[`herald_layer2_announced_ips{protocol="arp"}`]
		live := bed.Nodes[:len(bed.Nodes)-1]
		wl := writes(live)
		if err := procs[dead.Name].Kill(); err != nil {
			b.Fatal(err)
		}
		eventually(b, 10*time.Minute, "the live speakers announce every IP", func() (bool, string) {
			sum := 0.0
			for _, node := range live {
				m, err := speakerMetrics(ctx, node)
				if err != nil {
					return false, err.Error()
				}
				sum += m[`herald_layer2_announced_ips{protocol="arp"}`]
			}
			return sum == float64(n+burst), fmt.Sprint(sum)
		})
		wf := writes(live)
		fw := 0.0
		for _, node := range live {
			fw += wf[node.Name] - wl[node.Name]
		}
		b.Logf("%s died owning %v IPs: the others wrote %v ServiceAnnouncements for the takeover", dead.Name, moved, fw)
		if moved > 0 {
			b.ReportMetric(fw/moved, "announcement-writes/moved-ip")
		}
	}
}

// measureARP waits until count Services in ns have an IP, then returns the
// median ARP round trip, from the L2 client, to one of those IPs.
func measureARP(b *testing.B, bed *testbed.Bed, ns string, count int) time.Duration {
	b.Helper()
	eventually(b, 10*time.Minute, fmt.Sprintf("%d Services served", count), func() (bool, string) {
		holders, pending := svcIPIndex(b, bed, ns)
		return len(pending) == 0 && len(holders) >= count, fmt.Sprintf("%d served, %d pending", len(holders), len(pending))
	})
	// The last address handed out is the one whose announcement comes last.
	holders, _ := svcIPIndex(b, bed, ns)
	var last netip.Addr
	for ip := range holders {
		if a := netip.MustParseAddr(ip); !last.IsValid() || last.Less(a) {
			last = a
		}
	}
	ctx := context.Background()
	rtt := regexp.MustCompile(`time=([0-9.]+) (usec|msec|sec)`)
	var samples []time.Duration
	eventually(b, 2*time.Minute, "ARP replies for "+last.String(), func() (bool, string) {
		out, _ := bed.ClientL2.Output(ctx, "arping", "-c", "20", "-W", "0.05", "-w", "5", "-i", "eth0", last.String())
		samples = samples[:0]
		for _, m := range rtt.FindAllStringSubmatch(string(out), -1) {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil {
				unit := map[string]time.Duration{"usec": time.Microsecond, "msec": time.Millisecond, "sec": time.Second}[m[2]]
				samples = append(samples, time.Duration(v*float64(unit)))
			}
		}
		return len(samples) >= 10, string(out)
	})
	slices.Sort(samples)
	return samples[len(samples)/2]
}

func speakersRSS(speakers map[string]*testbed.Process) map[string]int {
	out := map[string]int{}
	for name, p := range speakers {
		// The process is `ip netns exec`, which execs the speaker: same PID.
		out[name] = rssKiB(p.PID)
	}
	return out
}
