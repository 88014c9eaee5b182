package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
)

// linkLocalNeighbor returns the router of an unnumbered session on
// ifname: the one IPv6 link-local neighbour of the interface that is not
// the node's own address and not FAILED, with the interface as zone. It
// is GoBGP's own lookup for its neighbor-interface option; the neighbour
// is in the table once the router's router advertisements (or any packet
// from it) arrived. None, or several (not a point-to-point link), is an
// error.
func linkLocalNeighbor(ifname string) (netip.Addr, error) {
	s, err := oc.GetIPv6LinkLocalNeighborAddress(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w (an unnumbered router must send IPv6 router advertisements on the link)", err)
	}
	return netip.ParseAddr(s)
}

// checkDynamicExternal resets a dynamicASN: external session whose router
// opened with the local ASN: GoBGP, told no peer ASN, accepts any and
// would run the session as iBGP. Called by the dispatcher on the up
// event, so the cause is set before the down event; the reset runs on its
// own goroutine.
func (s *Speaker) checkDynamicExternal(addr netip.Addr, peerASN uint32) {
	s.sessMu.Lock()
	local, ok := s.dynExternal[addr]
	s.sessMu.Unlock()
	if !ok || peerASN != local {
		return
	}
	cause := fmt.Sprintf("dynamicASN external, but the router opened with AS %d, this node's own AS (an iBGP session): reset", peerASN)
	s.setCause(addr, cause)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: addr.String(), Communication: "Herald: expected an external AS, got " + fmt.Sprint(peerASN)})
		if err != nil {
			s.log.Warn("BGP reset", slog.String("address", addr.String()), slog.Any("error", err))
		}
	}()
}
