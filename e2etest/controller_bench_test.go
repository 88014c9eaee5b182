package e2etest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// BenchmarkControllerBacklog measures, on the bed's real API server:
//   - the ceiling: a plain client with 32 workers patching the status of
//     5,000 pending Services (of another loadBalancerClass, so the
//     controller ignores them);
//   - the controller: from its start to the last of 5,000 pending Services
//     having an IP;
//   - with those 5,000 assigned, the time from a restart to a new Service's
//     IP;
//   - the controller's RSS at 5,000 Services (and at 20,000 with
//     HERALD_BENCH_LARGE=1), with no other Services in the cluster: the
//     ceiling's are deleted before the controller starts.
//
// Run it with `make bench-e2e` (root); it runs once whatever -benchtime says.
func BenchmarkControllerBacklog(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the test bed needs root")
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_SERVICES")); err == nil && v > 0 {
		n = v
	}
	bed := testbed.Start(b, testbed.Options{Nodes: 1, NoKubeProxy: true})
	ctx := context.Background()
	if _, err := bed.ApplyCRDs(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		// The controller's RSS with few Services: 10, served, then stopped.
		apply(b, bed, poolYAML("few", []string{"198.18.127.0/24"}, "  serviceAllocation: {namespaces: [few]}\n"))
		createBacklog(b, bed, "few", 10, nil)
		fewArgs, fewAddr := pprofArgs(b, true)
		few := startController(b, bed, "controller-few", fewArgs...)
		eventually(b, 2*time.Minute, "10 Services served", func() (bool, string) {
			_, pending := svcIPIndex(b, bed, "few")
			return len(pending) == 0, fmt.Sprint(len(pending), " pending")
		})
		time.Sleep(2 * time.Second) // past the pool-status write delay
		rssFew := rssKiB(few.PID)
		b.Logf("controller, 10 Services: %s", memSplit(few.PID))
		saveHeap(b, testbed.NS{}, fewAddr, "controller-heap-10.pb.gz")
		_ = few.Stop(3 * time.Second)
		b.ReportMetric(float64(rssFew)/1024, "rss-MiB-10svc")
		b.Logf("controller RSS with 10 Services: %d KiB", rssFew)

		// The ceiling.
		class := "bench.example.com/ceiling"
		createBacklog(b, bed, "ceiling", n, &class)
		ceiling := timeToAll(b, bed, "ceiling", n, func() { patchAll(b, unthrottled(b, bed.Controller), "ceiling", n, 32, false) })
		// Gone before the controller starts, so that it lists, caches and is
		// measured with n Services in the cluster, as the ceiling was (it
		// caches every Service, whatever its class).
		deleteServices(b, bed, "ceiling", n)

		// The controller on the same backlog.
		apply(b, bed, poolYAML("bench", []string{"198.18.128.0/17"}, "  serviceAllocation: {namespaces: [ctrl]}\n"))
		createBacklog(b, bed, "ctrl", n, nil)
		var p *testbed.Process
		if _, err := bed.HeraldBinary(ctx, "controller"); err != nil { // built before the clock starts
			b.Fatal(err)
		}
		before := apiWrites(b, bed)
		ctrlArgs, ctrlAddr := pprofArgs(b, true)
		var cpuSaved <-chan struct{}
		ctrl := timeToAll(b, bed, "ctrl", n, func() {
			p = startController(b, bed, "controller", append([]string{"--log-level", "info"}, ctrlArgs...)...)
			cpuSaved = saveCPU(b, ctrlAddr, fmt.Sprintf("controller-cpu-%d.pb.gz", n), 10*time.Second)
		})
		<-cpuSaved
		after := apiWrites(b, bed)
		b.Logf("API writes until the last IP: %d Service patches, %d event writes", after[0]-before[0], after[1]-before[1])
		rss5k := rssKiB(p.PID)
		b.Logf("controller, %d Services: %s", n, memSplit(p.PID))
		saveHeap(b, testbed.NS{}, ctrlAddr, fmt.Sprintf("controller-heap-%d.pb.gz", n))
		b.Logf("controller CPU time for the backlog: %v", cpuTime(p.PID))

		// A restart with everything assigned, then one new Service.
		if err := p.Signal(syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		<-p.Exited()
		start := time.Now()
		p = startController(b, bed, "controller-restarted")
		createService(b, bed, lbService{ns: "ctrl", name: "newcomer"})
		eventually(b, 60*time.Second, "the newcomer gets an IP", func() (bool, string) {
			return len(ingressIPs(getService(b, bed, "ctrl", "newcomer"))) == 1, ""
		})
		restart := time.Since(start)

		b.ReportMetric(ceiling.all.Seconds(), "ceiling-s")
		b.ReportMetric(ctrl.all.Seconds(), "controller-s")
		b.ReportMetric(ctrl.all.Seconds()/ceiling.all.Seconds(), "ratio")
		b.ReportMetric(ctrl.first.Seconds(), "controller-first-ip-s")
		b.ReportMetric(ctrl.writing().Seconds()/ceiling.writing().Seconds(), "writing-ratio")
		b.ReportMetric(restart.Seconds(), "restart-to-new-ip-s")
		b.ReportMetric(float64(rss5k)/1024, "rss-MiB")
		b.Logf("%d Services: ceiling %s, controller %s (%.2fx): %s; restart to a new Service's IP %s; controller RSS %d MiB",
			n, ceiling.all.Round(time.Millisecond), ctrl.all.Round(time.Millisecond), ctrl.all.Seconds()/ceiling.all.Seconds(),
			startupAndWriting(ctrl, ceiling), restart.Round(time.Millisecond), rss5k/1024)

		// What storage-enforced uniqueness would cost: the same ceiling
		// with one networking.k8s.io/v1 IPAddress created per address
		// before its status write, as the ClusterIP allocator does, both as
		// admin, which may create IPAddresses. Measured last, so that its
		// 10,000 Services do not slow the figures above;
		// HERALD_BENCH_CLAIMS=0 skips it.
		if os.Getenv("HERALD_BENCH_CLAIMS") != "0" {
			createBacklog(b, bed, "plain", n, &class)
			plain := timeToAll(b, bed, "plain", n, func() { patchAll(b, fastClient(b, bed), "plain", n, 32, false) })
			createBacklog(b, bed, "claims", n, &class)
			claims := timeToAll(b, bed, "claims", n, func() { patchAll(b, fastClient(b, bed), "claims", n, 32, true) })
			b.Logf("storage-enforced uniqueness: %d status writes %s, with an IPAddress object each %s (%.2fx)",
				n, plain.all.Round(time.Millisecond), claims.all.Round(time.Millisecond), claims.all.Seconds()/plain.all.Seconds())
			b.ReportMetric(claims.all.Seconds()/plain.all.Seconds(), "ipaddress-claims-x")
		}

		if os.Getenv("HERALD_BENCH_LARGE") == "1" {
			if os.Getenv("HERALD_BENCH_CLAIMS") != "0" {
				deleteServices(b, bed, "plain", n)
				deleteServices(b, bed, "claims", n)
			}
			createBacklog(b, bed, "ctrl", 4*n, nil)
			eventually(b, 10*time.Minute, "20,000 Services served", func() (bool, string) {
				_, pending := svcIPIndex(b, bed, "ctrl")
				return len(pending) == 0, fmt.Sprint(len(pending), " pending")
			})
			b.Logf("controller RSS with %d Services: %d MiB", 4*n, rssKiB(p.PID)/1024)
		}
	}
}

// fastClient is an admin client without client-side rate limits, so that
// the API server, not the client, sets the pace.
func fastClient(tb testing.TB, bed *testbed.Bed) kubernetes.Interface {
	return unthrottled(tb, bed.Admin)
}

// unthrottled returns a client for cfg without client-side rate limits.
func unthrottled(tb testing.TB, base *rest.Config) kubernetes.Interface {
	tb.Helper()
	cfg := rest.CopyConfig(base)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// createBacklog creates n LoadBalancer Services in ns, with class if set.
func createBacklog(tb testing.TB, bed *testbed.Bed, ns string, n int, class *string) {
	tb.Helper()
	createRange(tb, bed, ns, 0, n, class)
}

// createRange creates LoadBalancer Services svc-from..svc-(to-1) in ns.
func createRange(tb testing.TB, bed *testbed.Bed, ns string, from, to int, class *string) {
	tb.Helper()
	ctx := context.Background()
	client := fastClient(tb, bed)
	if err := bed.EnsureNamespace(ctx, ns); err != nil {
		tb.Fatal(err)
	}
	no := false
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("svc-%d", i)},
					Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: &no, LoadBalancerClass: class,
						Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
				}
				_, _ = client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// patchAll gives svc-0..n-1 in ns an IP each, as a controller would, with
// the given number of workers. With the controller's own identity, the API
// server's priority and fairness treats it as the controller (an admin's
// requests are exempt from it). With claims, each address is first claimed
// by creating its networking.k8s.io/v1 IPAddress object.
func patchAll(tb testing.TB, client kubernetes.Interface, ns string, n, workers int, claims bool) {
	tb.Helper()
	ctx := context.Background()
	base := netip.MustParseAddr("198.18.64.0")
	if claims {
		base = netip.MustParseAddr("198.18.96.0")
	}
	vip := corev1.LoadBalancerIPModeVIP
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				a := base.As4()
				a[2], a[3] = a[2]+byte(i>>8), byte(i)
				ip := netip.AddrFrom4(a)
				if claims {
					_, err := client.NetworkingV1().IPAddresses().Create(ctx, &networkingv1.IPAddress{
						ObjectMeta: metav1.ObjectMeta{Name: ip.String()},
						Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{
							Resource: "services", Namespace: ns, Name: fmt.Sprintf("svc-%d", i)}},
					}, metav1.CreateOptions{})
					if err != nil {
						tb.Error(err)
						continue
					}
				}
				patch, _ := json.Marshal(map[string]any{"status": map[string]any{"loadBalancer": map[string]any{
					"ingress": []corev1.LoadBalancerIngress{{IP: ip.String(), IPMode: &vip}}}}})
				if _, err := client.CoreV1().Services(ns).Patch(ctx, fmt.Sprintf("svc-%d", i), types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
					tb.Error(err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// backlogTime is how long a writer took to give a backlog its IPs.
type backlogTime struct {
	all   time.Duration // from the start until the last Service has an IP
	first time.Duration // from the start until the first has one: the writer's start-up
}

// writing is the time from the first IP to the last.
func (t backlogTime) writing() time.Duration { return t.all - t.first }

// startupAndWriting splits ctrl's lead over ceiling into its start-up and
// its writing, for the log.
func startupAndWriting(ctrl, ceiling backlogTime) string {
	return fmt.Sprintf("first IP after %v (ceiling %v); first to last IP %v (ceiling %v, %.2fx)",
		ctrl.first.Round(time.Millisecond), ceiling.first.Round(time.Millisecond),
		ctrl.writing().Round(time.Millisecond), ceiling.writing().Round(time.Millisecond), ctrl.writing().Seconds()/ceiling.writing().Seconds())
}

// timeToAll runs start, and times it until n Services in ns have an IP, as
// a watch sees them. A watch the API server closes under load is resumed
// from a fresh list.
func timeToAll(tb testing.TB, bed *testbed.Bed, ns string, n int, start func()) backlogTime {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	client := fastClient(tb, bed)
	served := map[string]bool{}
	var first time.Duration
	note := func(svc *corev1.Service, t0 time.Time) {
		if len(svc.Status.LoadBalancer.Ingress) == 0 || served[svc.Name] {
			return
		}
		served[svc.Name] = true
		if len(served) == 1 {
			first = time.Since(t0)
			tb.Logf("%s: first IP after %v", ns, first.Round(time.Millisecond))
		}
	}
	var t0 time.Time
	for started := false; ; {
		list, err := client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		for i := range list.Items {
			note(&list.Items[i], t0)
		}
		if started && len(served) == n {
			return backlogTime{all: time.Since(t0), first: first}
		}
		w, err := client.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			tb.Fatal(err)
		}
		if !started {
			started, t0 = true, time.Now()
			go start()
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			if svc, ok := ev.Object.(*corev1.Service); ok {
				note(svc, t0)
			}
			if len(served) == n {
				w.Stop()
				return backlogTime{all: time.Since(t0), first: first}
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			tb.Fatalf("%d of %d Services served in 10 minutes", len(served), n)
		}
		tb.Logf("%s: watch closed by the API server with %d of %d served; resuming", ns, len(served), n)
	}
}

func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return v
		}
	}
	return 0
}

// memSplit describes where a process's RSS goes, from
// /proc/PID/smaps_rollup: anonymous memory (heap, GC headroom, stacks) and
// file pages (the binary's text and read-only data, shared and clean), with
// how much of those the kernel mapped as 2 MiB pages (a whole 2 MiB of the
// binary counts as soon as one byte of it is touched).
func memSplit(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return err.Error()
	}
	kib := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			kib[k] = n
		}
	}
	mib := func(k string) string { return fmt.Sprintf("%.1f MiB", float64(kib[k])/1024) }
	return fmt.Sprintf("RSS %s: anonymous %s, file %s (of which mapped as huge pages %s)",
		mib("Rss"), mib("Anonymous"), fmt.Sprintf("%.1f MiB", float64(kib["Rss"]-kib["Anonymous"])/1024), mib("FilePmdMapped"))
}

// cpuTime returns the user+system CPU time a process has used.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// apiWrites reads the API server's counters of Service patches and event
// writes (creates and patches).
func apiWrites(tb testing.TB, bed *testbed.Bed) [2]int {
	tb.Helper()
	raw, err := bed.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	var out [2]int
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, `resource="services"`) && strings.Contains(line, `verb="PATCH"`):
			out[0] += int(v)
		case strings.Contains(line, `resource="events"`) && (strings.Contains(line, `verb="POST"`) || strings.Contains(line, `verb="PATCH"`)):
			out[1] += int(v)
		}
	}
	return out
}
