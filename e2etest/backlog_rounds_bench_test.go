package e2etest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// BenchmarkBacklogRounds measures the controller's backlog against the
// plain-client ceiling in one run, alternating, HERALD_BENCH_ROUNDS times
// (default 5), on 5,000 Services (HERALD_BENCH_SERVICES): each round runs
// the ceiling and the controller on fresh backlogs, in alternating order
// (even rounds the ceiling first), with the other idle, then deletes both
// backlogs. It reports the median ratio and its spread (min and max), so
// that one noisy run on a shared machine does not decide.
func BenchmarkBacklogRounds(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the test bed needs root")
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_SERVICES")); err == nil && v > 0 {
		n = v
	}
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	bed := testbed.Start(b, testbed.Options{Nodes: 1, NoKubeProxy: true})
	ctx := context.Background()
	if _, err := bed.ApplyCRDs(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := bed.HeraldBinary(ctx, "controller"); err != nil { // built before any clock starts
		b.Fatal(err)
	}
	var nss []string
	for i := range rounds {
		nss = append(nss, fmt.Sprintf("ctrl-%d", i))
	}
	apply(b, bed, poolYAML("rounds", []string{"198.18.128.0/17"}, "  serviceAllocation: {namespaces: ["+strings.Join(nss, ", ")+"]}\n"))
	class := "bench.example.com/ceiling"
	for b.Loop() {
		var ceilings, ctrls, ratios, firsts, writing []float64
		for i := range rounds {
			cns, hns := fmt.Sprintf("ceiling-%d", i), nss[i]
			createBacklog(b, bed, cns, n, &class)
			createBacklog(b, bed, hns, n, nil)
			runCeiling := func() backlogTime {
				return timeToAll(b, bed, cns, n, func() { patchAll(b, unthrottled(b, bed.Controller), cns, n, 32, false) })
			}
			runCtrl := func() backlogTime {
				var p *testbed.Process
				d := timeToAll(b, bed, hns, n, func() {
					p = startController(b, bed, fmt.Sprintf("controller-%d", i), "--log-level", "info")
				})
				_ = p.Stop(3 * time.Second)
				return d
			}
			var ceil, ctrl backlogTime
			if i%2 == 0 {
				ceil = runCeiling()
				ctrl = runCtrl()
			} else {
				ctrl = runCtrl()
				ceil = runCeiling()
			}
			ceilings = append(ceilings, ceil.all.Seconds())
			ctrls = append(ctrls, ctrl.all.Seconds())
			ratios = append(ratios, ctrl.all.Seconds()/ceil.all.Seconds())
			firsts = append(firsts, ctrl.first.Seconds())
			writing = append(writing, ctrl.writing().Seconds()/ceil.writing().Seconds())
			line := fmt.Sprintf("round %d (%s first): ceiling %v, controller %v, ratio %.2f: %s", i, map[bool]string{true: "ceiling", false: "controller"}[i%2 == 0],
				ceil.all.Round(time.Millisecond), ctrl.all.Round(time.Millisecond), ratios[i], startupAndWriting(ctrl, ceil))
			b.Log(line)
			fmt.Fprintln(os.Stderr, line) // at once: a benchmark's log comes out at its end

			for _, ns := range []string{cns, hns} {
				deleteServices(b, bed, ns, n)
			}
		}
		med := func(v []float64) float64 {
			s := slices.Clone(v)
			slices.Sort(s)
			return s[len(s)/2]
		}
		b.ReportMetric(med(ceilings), "ceiling-s-median")
		b.ReportMetric(med(ctrls), "controller-s-median")
		b.ReportMetric(med(ratios), "ratio-median")
		b.ReportMetric(slices.Min(ratios), "ratio-min")
		b.ReportMetric(slices.Max(ratios), "ratio-max")
		b.ReportMetric(med(firsts), "controller-first-ip-s-median")
		b.ReportMetric(med(writing), "writing-ratio-median")
		b.Logf("%d rounds of %d Services: ratio median %.2f (min %.2f, max %.2f); ceilings %v s; controller %v s; "+
			"the controller's first IP after %v s (median %.2f); first to last IP against the ceiling's %v (median %.2f)",
			rounds, n, med(ratios), slices.Min(ratios), slices.Max(ratios), ceilings, ctrls, firsts, med(firsts), writing, med(writing))
	}
}

// deleteServices deletes svc-0..n-1 in ns, 32 at a time. (Namespaces are
// not deleted: the bed has no namespace controller to finish the job.)
func deleteServices(tb testing.TB, bed *testbed.Bed, ns string, n int) {
	tb.Helper()
	client := fastClient(tb, bed)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				_ = client.CoreV1().Services(ns).Delete(context.Background(), fmt.Sprintf("svc-%d", i), metav1.DeleteOptions{})
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
