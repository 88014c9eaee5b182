package bgp

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// gobgpHandler is the slog.Handler GoBGP logs through: the Speaker's own
// handler, minus one known-noisy record. BgpServer.Stop calls StopBgp
// again after Shutdown has already called StopBgp (the only way to stop
// GoBGP's BFD server), and logs its "not running" error at Error level.
type gobgpHandler struct {
	slog.Handler
	stopping *atomic.Bool
}

func (h gobgpHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.stopping.Load() && r.Message == "failed to stop BGP server" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h gobgpHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return gobgpHandler{Handler: h.Handler.WithAttrs(as), stopping: h.stopping}
}

func (h gobgpHandler) WithGroup(name string) slog.Handler {
	return gobgpHandler{Handler: h.Handler.WithGroup(name), stopping: h.stopping}
}
