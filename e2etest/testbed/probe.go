package testbed

import (
	"context"
	"sort"
	"sync"
	"time"
)

// ProbeResult is one probe: when it was sent, and whether (and by which pod)
// it was answered.
type ProbeResult struct {
	Sent time.Time
	OK   bool
	// Pod and Client are the pod server's answer, when OK.
	Pod, Client string
	// Err is why it failed, when not OK.
	Err string
	// Took is how long it took to answer or fail.
	Took time.Duration
}

// Outage is a window during which every probe failed: from the send time of
// the first failed probe to the send time of the next successful one. Its
// resolution is the probe interval.
type Outage struct {
	Start, End time.Time
	// Open is set when no probe succeeded after it; End is then the last
	// probe's send time.
	Open bool
}

// Duration is the length of the window.
func (o Outage) Duration() time.Duration { return o.End.Sub(o.Start) }

// ProbeReport summarises a probe run.
type ProbeReport struct {
	Sent, Failed int
	Outages      []Outage
	// ByPod counts successful replies per pod name; Clients counts the
	// source IPs the pods saw.
	ByPod, Clients map[string]int
	// Results are every probe, in send order.
	Results []ProbeResult
}

// LongestOutage returns the longest outage window, or 0.
func (r ProbeReport) LongestOutage() time.Duration {
	var m time.Duration
	for _, o := range r.Outages {
		m = max(m, o.Duration())
	}
	return m
}

// OutageAfter returns the first outage that ends after t (for example the
// moment a node was killed), or false if there is none.
func (r ProbeReport) OutageAfter(t time.Time) (Outage, bool) {
	for _, o := range r.Outages {
		if o.End.After(t) {
			return o, true
		}
	}
	return Outage{}, false
}

// Prober probes a pod server address repeatedly from one namespace.
type Prober struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	results []ProbeResult
}

// Probe starts asking addr (ip:port of a pod server, usually a LoadBalancer
// IP) from ns every interval until Stop. Every probe is a new connection on
// its own goroutine with the given timeout, so a hanging probe does not delay
// the next one and a recovery is seen within one interval.
func Probe(ctx context.Context, from NS, addr string, interval, timeout time.Duration) *Prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &Prober{cancel: cancel}
	p.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			sent := time.Now()
			p.wg.Go(func() {
				rctx, rcancel := context.WithTimeout(ctx, timeout)
				defer rcancel()
				r, err := from.Get(rctx, addr)
				if ctx.Err() != nil {
					return // stopped: not a failure of the path
				}
				res := ProbeResult{Sent: sent, OK: err == nil, Took: time.Since(sent)}
				if err == nil {
					res.Pod, res.Client = r.Pod, r.ClientIP().String()
				} else {
					res.Err = err.Error()
				}
				p.mu.Lock()
				p.results = append(p.results, res)
				p.mu.Unlock()
			})
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return p
}

// Snapshot returns the report of the probes answered or failed so far.
func (p *Prober) Snapshot() ProbeReport {
	p.mu.Lock()
	res := append([]ProbeResult(nil), p.results...)
	p.mu.Unlock()
	return makeReport(res)
}

// Stop stops probing, waits for the probes in flight, and returns the report.
func (p *Prober) Stop() ProbeReport {
	p.cancel()
	p.wg.Wait()
	return p.Snapshot()
}

func makeReport(res []ProbeResult) ProbeReport {
	sort.SliceStable(res, func(i, j int) bool { return res[i].Sent.Before(res[j].Sent) })
	r := ProbeReport{ByPod: map[string]int{}, Clients: map[string]int{}, Results: res}
	var cur *Outage
	for _, x := range res {
		r.Sent++
		if !x.OK {
			r.Failed++
			if cur == nil {
				cur = &Outage{Start: x.Sent}
			}
			continue
		}
		r.ByPod[x.Pod]++
		r.Clients[x.Client]++
		if cur != nil {
			cur.End = x.Sent
			r.Outages = append(r.Outages, *cur)
			cur = nil
		}
	}
	if cur != nil {
		cur.End, cur.Open = res[len(res)-1].Sent, true
		r.Outages = append(r.Outages, *cur)
	}
	return r
}

// Report summarises probe results (for example a filtered Results list).
func Report(res []ProbeResult) ProbeReport {
	return makeReport(append([]ProbeResult(nil), res...))
}
