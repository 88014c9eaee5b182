package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// SetAdvertisements makes the speaker's announcements match ads, the full
// desired set. Each prefix is masked (see Advertisement.Prefix) and the
// advertisements of one prefix are merged: communities and large
// communities are united, the highest local preference wins, and peer
// restrictions are united (an unrestricted one makes the prefix go to every
// peer). GoBGP holds one local path per prefix, so one prefix cannot carry
// different attributes toward different peers.
//
// The result is diffed against the previous call: new and changed prefixes
// are added in one AddPath call, gone ones are withdrawn in one DeletePath
// call, and unchanged ones are not touched, so nothing is re-sent. There is
// no debounce: the UPDATEs are on their way when SetAdvertisements returns.
// An invalid advertisement is skipped and reported in the returned error;
// the others are still applied.
func (s *Speaker) SetAdvertisements(ctx context.Context, ads []Advertisement) error {
	want, verr := routesFrom(ads)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkRunning(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	var withdraw []*apiutil.Path
	var gone []netip.Prefix
	for p, cur := range s.routes {
		if _, ok := want[p]; !ok {
			withdraw = append(withdraw, s.apiPath(cur, true))
			gone = append(gone, p)
		}
	}
	var add []*apiutil.Path
	var changed []*route
	for p, w := range want {
		if cur, ok := s.routes[p]; ok && cur.equal(w) {
			continue
		}
		add = append(add, s.apiPath(w, false))
		changed = append(changed, w)
	}

	var errs []error
	if verr != nil {
		errs = append(errs, verr)
	}
	if len(withdraw) > 0 {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: withdraw}); err != nil {
			// Keep them in s.routes: the next call retries the withdrawal.
			errs = append(errs, fmt.Errorf("withdraw %d prefixes: %w", len(withdraw), err))
		} else {
			for _, p := range gone {
				delete(s.routes, p)
			}
		}
	}
	if len(add) > 0 {
		if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: add}); err != nil {
			// GoBGP does not say which paths failed; forget them all so the
			// next call adds them again.
			for _, r := range changed {
				delete(s.routes, r.prefix)
			}
			errs = append(errs, fmt.Errorf("announce %d prefixes: %w", len(add), err))
		} else {
			for _, r := range changed {
				s.routes[r.prefix] = r
			}
		}
	}
	if len(add)+len(withdraw) > 0 {
		s.log.Debug("BGP advertisements updated", slog.Int("announced", len(add)), slog.Int("withdrawn", len(withdraw)), slog.Int("total", len(s.routes)))
	}
	return errors.Join(errs...)
}

// Advertised returns the prefixes currently handed to GoBGP, sorted.
func (s *Speaker) Advertised() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Prefix, 0, len(s.routes))
	for p := range s.routes {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}

// apiPath converts r to a GoBGP path, with its markers (see policy.go).
func (s *Speaker) apiPath(r *route, withdraw bool) *apiutil.Path {
	fam := familyOf(r.prefix)
	nlri, _ := bgp.NewIPAddrPrefix(r.prefix) // r.prefix is valid and masked
	p := &apiutil.Path{Family: fam, Nlri: nlri, Withdrawal: withdraw, Age: time.Now().Unix()}
	if withdraw {
		return p
	}
	nh := r.nextHop
	if !nh.IsValid() {
		nh = netip.IPv4Unspecified()
		if fam == bgp.RF_IPv6_UC {
			nh = netip.IPv6Unspecified()
		}
	} else if fam == bgp.RF_IPv6_UC && nh.Is4() {
		nh = netip.AddrFrom16(nh.As16())
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if fam == bgp.RF_IPv4_UC {
		a, _ := bgp.NewPathAttributeNextHop(nh)
		attrs = append(attrs, a)
	} else {
		a, _ := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		attrs = append(attrs, a)
	}
	if len(r.comms) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(slices.Clone(r.comms)))
	}
	if r.localPref != 0 {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(r.localPref))
	}
	large := make([]*bgp.LargeCommunity, 0, len(r.large)+len(r.peers)+2)
	for _, c := range r.large {
		large = append(large, bgp.NewLargeCommunity(c.GlobalAdmin, c.LocalData1, c.LocalData2))
	}
	if r.peers == nil {
		large = append(large, marker(markerAll))
	}
	for _, name := range r.peers {
		large = append(large, marker(s.peerID(name)))
	}
	if r.nextHop.IsValid() {
		large = append(large, marker(markerOwnNextHop))
	}
	attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(large))
	p.Attrs = attrs
	return p
}
