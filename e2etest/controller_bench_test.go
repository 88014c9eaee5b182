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
//     HERALD_BENCH_LARGE=1).
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
		// The ceiling.
		class := "bench.example.com/ceiling"
		createBacklog(b, bed, "ceiling", n, &class)
		ceiling := timeToAll(b, bed, "ceiling", n, func() { patchAll(b, bed, "ceiling", n, 32) })

		// The controller on the same backlog.
		apply(b, bed, poolYAML("bench", []string{"198.18.128.0/17"}, "  serviceAllocation: {namespaces: [ctrl]}\n"))
		createBacklog(b, bed, "ctrl", n, nil)
		var p *testbed.Process
		ctrl := timeToAll(b, bed, "ctrl", n, func() { p = startController(b, bed, "controller") })
		rss5k := rssKiB(p.PID)

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

		b.ReportMetric(ceiling.Seconds(), "ceiling-s")
		b.ReportMetric(ctrl.Seconds(), "controller-s")
		b.ReportMetric(ctrl.Seconds()/ceiling.Seconds(), "ratio")
		b.ReportMetric(restart.Seconds(), "restart-to-new-ip-s")
		b.ReportMetric(float64(rss5k)/1024, "rss-MiB")
		b.Logf("%d Services: ceiling %s, controller %s (%.2fx); restart to a new Service's IP %s; controller RSS %d MiB",
			n, ceiling.Round(time.Millisecond), ctrl.Round(time.Millisecond), ctrl.Seconds()/ceiling.Seconds(), restart.Round(time.Millisecond), rss5k/1024)

		if os.Getenv("HERALD_BENCH_LARGE") == "1" {
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
	tb.Helper()
	cfg := rest.CopyConfig(bed.Admin)
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
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// patchAll gives svc-0..n-1 in ns an IP each, as a controller would, with
// the given number of workers.
func patchAll(tb testing.TB, bed *testbed.Bed, ns string, n, workers int) {
	tb.Helper()
	ctx := context.Background()
	client := fastClient(tb, bed)
	base := netip.MustParseAddr("198.18.64.0")
	vip := corev1.LoadBalancerIPModeVIP
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				a := base.As4()
				a[2], a[3] = a[2]+byte(i>>8), byte(i)
				ip := netip.AddrFrom4(a)
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

// timeToAll runs start, and returns the time from then until a watch has
// seen n Services in ns with an IP.
func timeToAll(tb testing.TB, bed *testbed.Bed, ns string, n int, start func()) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	list, err := bed.Client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	w, err := bed.Client.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Stop()
	served := map[string]bool{}
	t0 := time.Now()
	go start()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			tb.Fatalf("watch: %v", ev.Object)
		}
		svc, ok := ev.Object.(*corev1.Service)
		if !ok || len(svc.Status.LoadBalancer.Ingress) == 0 {
			continue
		}
		served[svc.Name] = true
		if len(served) == n {
			return time.Since(t0)
		}
	}
	tb.Fatalf("watch ended with %d of %d Services served", len(served), n)
	return 0
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
