package layer2

import (
	"log/slog"
	"time"
)

// Options tune a responder's announcements.
type Options struct {
	// GratuitousCount is how many gratuitous ARP / unsolicited NA packets are
	// sent when an IP is taken over; the first goes at once. Default 3;
	// negative disables them.
	GratuitousCount int
	// GratuitousInterval is the time between them. Default 250ms.
	GratuitousInterval time.Duration
	// RefreshInterval, if positive, re-sends one gratuitous packet per owned
	// IP at this interval, for switches and hosts that age entries out.
	// Default 0 (off).
	RefreshInterval time.Duration
	// Stats receives the counters. Nil gives the responder its own.
	Stats *Stats
	// Logger receives the log. Nil discards.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.GratuitousCount == 0 {
		o.GratuitousCount = 3
	}
	if o.GratuitousCount < 0 {
		o.GratuitousCount = 0
	}
	if o.GratuitousInterval <= 0 {
		o.GratuitousInterval = 250 * time.Millisecond
	}
	if o.Stats == nil {
		o.Stats = new(Stats)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
