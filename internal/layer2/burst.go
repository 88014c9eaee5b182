package layer2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// burster sends the gratuitous packets of one responder: a burst of count
// packets, interval apart, per IP taken over, and an optional periodic
// refresh of every owned IP. One goroutine (run) sends them all, so a
// takeover of 10,000 IPs costs no goroutine per IP.
type burster struct {
	count    int
	interval time.Duration
	refresh  time.Duration
	send     func(netip.Addr)
	owned    func() []netip.Addr

	mu      sync.Mutex
	pending map[netip.Addr]*burst
	kick    chan struct{}
}

type burst struct {
	left int
	next time.Time
}

func newBurster(o Options, send func(netip.Addr), owned func() []netip.Addr) *burster {
	return &burster{
		count:    o.GratuitousCount,
		interval: o.GratuitousInterval,
		refresh:  o.RefreshInterval,
		send:     send,
		owned:    owned,
		pending:  make(map[netip.Addr]*burst),
		kick:     make(chan struct{}, 1),
	}
}

// schedule starts (or restarts) the burst for ip.
func (b *burster) schedule(ip netip.Addr, count int) {
	if count <= 0 {
		return
	}
	b.mu.Lock()
	if p, ok := b.pending[ip]; ok && p.left >= count {
		b.mu.Unlock()
		return
	}
	b.pending[ip] = &burst{left: count}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// cancel stops the burst for ip, which is no longer owned.
func (b *burster) cancel(ip netip.Addr) {
	b.mu.Lock()
	delete(b.pending, ip)
	b.mu.Unlock()
}

// run sends until ctx is done.
func (b *burster) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var refresh <-chan time.Time
	if b.refresh > 0 {
		t := time.NewTicker(b.refresh)
		defer t.Stop()
		refresh = t.C
	}
	var due []netip.Addr
	for {
		now := time.Now()
		due = due[:0]
		var wake time.Time
		b.mu.Lock()
		for ip, p := range b.pending {
			if !p.next.After(now) {
				due = append(due, ip)
				p.left--
				if p.left <= 0 {
					delete(b.pending, ip)
					continue
				}
				p.next = now.Add(b.interval)
			}
			if wake.IsZero() || p.next.Before(wake) {
				wake = p.next
			}
		}
		b.mu.Unlock()
		for _, ip := range due {
			if ctx.Err() != nil {
				return
			}
			b.send(ip)
		}
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-timer.C:
		case <-refresh:
			for _, ip := range b.owned() {
				b.schedule(ip, 1)
			}
		}
	}
}

// serve runs a responder: b's bursts alongside read, which reads and handles
// one packet per call, until ctx ends (nil) or a read fails for good (the
// error). It closes conn either way.
func serve(ctx context.Context, conn io.Closer, b *burster, proto, ifname string, read func() error) error {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.run(ctx)
	}()
	defer func() {
		stop()
		cancel()
		<-done
		_ = conn.Close()
	}()
	for {
		err := read()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		return fmt.Errorf("interface %s: read %s: %w", ifname, proto, err)
	}
}
