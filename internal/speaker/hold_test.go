package speaker

import (
	"slices"
	"testing"
	"time"
)

func TestHoldDown(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const period = 3 * time.Second
	for _, tc := range []struct {
		desc string
		// steps: usable interfaces at an offset, or a membership change
		// (usable nil, members true); want is what is published.
		steps []holdStep
	}{
		{"interfaces at start are not held", []holdStep{
			{at: 0, usable: []string{"eth0"}, want: []string{"eth0"}},
		}},
		{"carrier back: held for the period", []holdStep{
			{at: 1 * time.Second, usable: []string{}, want: []string{}},
			{at: 10 * time.Second, usable: []string{"eth0"}, want: []string{}, held: true},
			{at: 12 * time.Second, usable: []string{"eth0"}, want: []string{}, held: true},
			{at: 13 * time.Second, usable: []string{"eth0"}, want: []string{"eth0"}},
			{at: 20 * time.Second, usable: []string{"eth0"}, want: []string{"eth0"}},
		}},
		{"the node rejoins during the hold: the period restarts", []holdStep{
			{at: 1 * time.Second, usable: []string{}, want: []string{}},
			{at: 10 * time.Second, usable: []string{"eth0"}, want: []string{}, held: true},
			{at: 11500 * time.Millisecond, members: true},
			{at: 13 * time.Second, usable: []string{"eth0"}, want: []string{}, held: true},
			{at: 14 * time.Second, usable: []string{"eth0"}, want: []string{}, held: true},
			{at: 14500 * time.Millisecond, usable: []string{"eth0"}, want: []string{"eth0"}},
		}},
		{"a flap during the hold starts it again", []holdStep{
			{at: 1 * time.Second, usable: []string{}, want: []string{}},
			{at: 10 * time.Second, usable: []string{"eth0"}, want: []string{}, held: true},
			{at: 11 * time.Second, usable: []string{}, want: []string{}},
			{at: 12 * time.Second, usable: []string{"eth0"}, want: []string{}, held: true},
			{at: 14 * time.Second, usable: []string{"eth0"}, want: []string{}, held: true},
			{at: 15 * time.Second, usable: []string{"eth0"}, want: []string{"eth0"}},
		}},
		{"only the returning interface is held", []holdStep{
			{at: 1 * time.Second, usable: []string{"eth0"}, want: []string{"eth0"}},
			{at: 2 * time.Second, usable: []string{"eth0", "eth1"}, want: []string{"eth0"}, held: true},
			{at: 5 * time.Second, usable: []string{"eth0", "eth1"}, want: []string{"eth0", "eth1"}},
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h := NewHoldDown(period, []string{"eth0"})
			for i, s := range tc.steps {
				if s.members {
					h.MembersChanged(at(s.at))
					continue
				}
				got, held := h.Publish(s.usable, at(s.at))
				if !slices.Equal(got, s.want) || (got == nil) {
					t.Errorf("step %d (%v): published %v, want %v", i, s.at, got, s.want)
				}
				if (len(held) > 0) != s.held || h.Holding() != s.held {
					t.Errorf("step %d (%v): held %v (holding %v), want held %v", i, s.at, held, h.Holding(), s.held)
				}
			}
		})
	}
}

type holdStep struct {
	at      time.Duration
	usable  []string
	members bool
	want    []string
	held    bool
}
