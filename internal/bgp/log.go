package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
)

// gobgpHandler is the slog.Handler GoBGP logs through: the Speaker's own
// handler, minus one known-noisy record, plus one that tells a cause
// GoBGP reports nowhere else. BgpServer.Stop calls StopBgp again after
// Shutdown has already called StopBgp (the only way to stop GoBGP's BFD
// server), and logs its "not running" error at Error level. When a peer
// sends more prefixes than its limit, GoBGP logs "prefix limit reached"
// and closes the session, which its peer events report only as a read
// failure.
type gobgpHandler struct {
	slog.Handler
	stopping      *atomic.Bool
	onPrefixLimit func(addr netip.Addr, family string)
	key           string // the peer address of a per-peer logger (GoBGP's "Key" attribute)
}

// Enabled lets warnings through even when the Speaker's handler drops
// them, so that Handle sees "prefix limit reached".
func (h gobgpHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.Handler.Enabled(ctx, l)
}

func (h gobgpHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.stopping.Load() && r.Message == "failed to stop BGP server" {
		return nil
	}
	if r.Message == "prefix limit reached" && h.onPrefixLimit != nil {
		family, warnOnly := "", false
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "Family":
				family = a.Value.String()
			case "Pct":
				warnOnly = true // the threshold warning, not the limit
			}
			return true
		})
		if addr, err := netip.ParseAddr(h.key); err == nil && !warnOnly {
			h.onPrefixLimit(addr, family)
		}
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h gobgpHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := h
	out.Handler = h.Handler.WithAttrs(as)
	for _, a := range as {
		if a.Key == "Key" {
			out.key = a.Value.String()
		}
	}
	return out
}

func (h gobgpHandler) WithGroup(name string) slog.Handler {
	out := h
	out.Handler = h.Handler.WithGroup(name)
	return out
}
