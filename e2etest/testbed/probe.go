package testbed

import (
	"context"
	"sync"
	"time"
)

// Outage is a window during which every probe failed.
type Outage struct {
	// Start is the time of the first failed probe after a success (or the
	// start of probing), End the time of the next success.
	Start, End time.Time
}

// Duration is the length of the window.
func (o Outage) Duration() time.Duration { return o.End.Sub(o.Start) }

// ProbeReport summarises a probe run.
type ProbeReport struct {
	Sent, Failed int
	// Outages are the windows with no successful probe; an outage still
	// open when probing stopped ends at Stop time and has Open set.
	Outages []Outage
	Open    bool
	// ByPod counts successful replies per pod name.
	ByPod map[string]int
	// Clients counts the source IPs the pods saw.
	Clients map[string]int
}

// LongestOutage returns the longest outage window, or 0.
func (r ProbeReport) LongestOutage() time.Duration {
	var m time.Duration
	for _, o := range r.Outages {
		m = max(m, o.Duration())
	}
	return m
}

// Prober probes a pod server address repeatedly from one namespace.
type Prober struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	report ProbeReport
}

// Probe starts asking addr (ip:port of a pod server, usually a LoadBalancer
// IP) every interval from ns, each request a new connection with the given
// timeout, until Stop.
func Probe(ctx context.Context, from NS, addr string, interval, timeout time.Duration) *Prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &Prober{cancel: cancel, done: make(chan struct{}), report: ProbeReport{ByPod: map[string]int{}, Clients: map[string]int{}}}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		var outStart time.Time
		inOutage := false
		for {
			at := time.Now()
			rctx, rcancel := context.WithTimeout(ctx, timeout)
			r, err := from.Get(rctx, addr)
			rcancel()
			if ctx.Err() != nil {
				p.mu.Lock()
				if inOutage {
					p.report.Outages = append(p.report.Outages, Outage{Start: outStart, End: time.Now()})
					p.report.Open = true
				}
				p.mu.Unlock()
				return
			}
			p.mu.Lock()
			p.report.Sent++
			if err != nil {
				p.report.Failed++
				if !inOutage {
					inOutage, outStart = true, at
				}
			} else {
				p.report.ByPod[r.Pod]++
				p.report.Clients[r.ClientIP().String()]++
				if inOutage {
					p.report.Outages = append(p.report.Outages, Outage{Start: outStart, End: at})
					inOutage = false
				}
			}
			p.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}()
	return p
}

// Snapshot returns the report so far.
func (p *Prober) Snapshot() ProbeReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.report
	r.Outages = append([]Outage(nil), r.Outages...)
	return r
}

// Stop stops probing and returns the report.
func (p *Prober) Stop() ProbeReport {
	p.cancel()
	<-p.done
	return p.Snapshot()
}
