package fence

import (
	"context"
	"errors"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestFence(t *testing.T) {
	start := time.Now()
	tests := []struct {
		desc string
		// steps: renew at offset (negative = none), then check at offset.
		renewals []time.Duration
		check    time.Duration
		want     bool
	}{
		{desc: "never acquired", check: 0, want: false},
		{desc: "right after acquiring", renewals: []time.Duration{0}, check: time.Second, want: true},
		{desc: "just before validity ends", renewals: []time.Duration{0}, check: 1999 * time.Millisecond, want: true},
		{desc: "at the end of validity", renewals: []time.Duration{0}, check: 2 * time.Second, want: false},
		{desc: "renewed in time", renewals: []time.Duration{0, 1500 * time.Millisecond}, check: 3 * time.Second, want: true},
		{desc: "a renewal after a lapse does not revive it", renewals: []time.Duration{0, 5 * time.Second}, check: 5500 * time.Millisecond, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := &clock{t: start}
			f := newFence(2*time.Second, c.now)
			for _, r := range tc.renewals {
				c.t = start.Add(r)
				f.Renewed(c.t)
			}
			c.t = start.Add(tc.check)
			if got := f.Valid(); got != tc.want {
				t.Fatalf("Valid() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestContextEndsAtExpiry(t *testing.T) {
	f := New(50 * time.Millisecond)
	if _, _, err := f.Context(context.Background()); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("before acquiring: err = %v, want ErrNotHeld", err)
	}
	f.Renewed(time.Now())
	ctx, cancel, err := f.Context(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the write's context outlived the lease")
	}
}

func TestWatchClosesLapsed(t *testing.T) {
	f := New(30 * time.Millisecond)
	f.Renewed(time.Now())
	done := make(chan struct{})
	go func() { f.Watch(context.Background()); close(done) }()
	select {
	case <-f.Lapsed():
	case <-time.After(2 * time.Second):
		t.Fatal("Lapsed not closed after expiry")
	}
	<-done
	f.Renewed(time.Now())
	if f.Valid() {
		t.Fatal("a lapsed fence became valid again")
	}
}

func TestOpenIsAlwaysValid(t *testing.T) {
	f := Open()
	if !f.Valid() {
		t.Fatal("Open fence not valid")
	}
}
