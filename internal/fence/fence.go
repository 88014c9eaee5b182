package fence

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNotHeld is returned by Context when this replica may not write: it has
// not acquired the lease yet, or its lease has lapsed.
var ErrNotHeld = errors.New("fence: this replica does not hold a valid lease")

// Fence says whether this replica may write, and until when.
//
// A replica holds the lease from a successful write of the lease record
// that names it (acquire or renew) for Validity, counted by its own clock
// from the moment it *sent* that write. Another candidate can take the lease
// over only after it has seen that record unchanged for the full lease
// duration, counted from when it read it, which is after the write was
// sent. So with Validity shorter than the lease duration, the difference is
// a margin for clock-rate differences and in-flight requests, and two
// replicas never both hold a valid fence.
//
// A lapse is final: once the fence has expired while held, a later renewal
// does not revive it. Whatever the replica decided before the lapse may be
// stale (another leader may have written in between), so it must drop its
// state and start over with a new Fence.
type Fence struct {
	validity time.Duration
	now      func() time.Time

	mu sync.Mutex
	// until is the end of validity in monotonic time; untilWall the same
	// in wall-clock time. Both must be in the future: the monotonic clock
	// stops while a VM is suspended, the wall clock can jump.
	until, untilWall time.Time
	held             bool
	lapsed           bool
	lapsedCh         chan struct{}
	renewals         uint64
}

// New returns a Fence that is not held yet. validity is how long a renewal
// is trusted: the lease duration minus a safety margin.
func New(validity time.Duration) *Fence {
	return newFence(validity, time.Now)
}

func newFence(validity time.Duration, now func() time.Time) *Fence {
	return &Fence{validity: validity, now: now, lapsedCh: make(chan struct{})}
}

// Open returns a Fence that is always valid, for a replica that runs
// without leader election (it is the only writer by construction).
func Open() *Fence {
	f := newFence(0, time.Now)
	f.held = true
	return f
}

// Renewed records a successful write of the lease record naming this
// replica; sent is when that request was sent. A renewal that arrives after
// the fence lapsed is ignored.
func (f *Fence) Renewed(sent time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.validity == 0 || f.lapsed {
		return
	}
	if f.held && !f.validLocked() {
		f.lapseLocked()
		return
	}
	f.held = true
	f.until = sent.Add(f.validity)
	f.untilWall = sent.Round(0).Add(f.validity)
	f.renewals++
}

// Context returns a context for one write: it ends when the fence expires,
// so a request cannot outlive the lease. It returns ErrNotHeld when the
// fence is not valid now.
func (f *Fence) Context(ctx context.Context) (context.Context, context.CancelFunc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held || f.lapsed {
		return ctx, func() {}, ErrNotHeld
	}
	if f.validity == 0 {
		c, cancel := context.WithCancel(ctx)
		return c, cancel, nil
	}
	if !f.validLocked() {
		f.lapseLocked()
		return ctx, func() {}, ErrNotHeld
	}
	c, cancel := context.WithDeadline(ctx, f.until)
	return c, cancel, nil
}

// Valid reports whether a write may start now.
func (f *Fence) Valid() bool {
	_, cancel, err := f.Context(context.Background())
	cancel()
	return err == nil
}

// Lapsed returns a channel that is closed when the fence lapses.
func (f *Fence) Lapsed() <-chan struct{} { return f.lapsedCh }

// Watch closes Lapsed as soon as a held fence expires, and returns then or
// when ctx ends. Context notices a lapse on its own; Watch makes sure the
// replica learns of it even when it has nothing to write.
func (f *Fence) Watch(ctx context.Context) {
	for {
		f.mu.Lock()
		if f.lapsed {
			f.mu.Unlock()
			return
		}
		wait := time.Second
		if f.held && f.validity > 0 {
			if !f.validLocked() {
				f.lapseLocked()
				f.mu.Unlock()
				return
			}
			wait = min(wait, f.until.Sub(f.now())+time.Millisecond)
		}
		f.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Renewals returns how many renewals were recorded.
func (f *Fence) Renewals() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewals
}

func (f *Fence) validLocked() bool {
	now := f.now()
	return now.Before(f.until) && now.Round(0).Before(f.untilWall)
}

func (f *Fence) lapseLocked() {
	if !f.lapsed {
		f.lapsed = true
		close(f.lapsedCh)
	}
}
