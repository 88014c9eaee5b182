package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// SetPeers makes the speaker's sessions match peers, the full desired set.
// A peer is identified by Name: a new name is added, a missing name is
// removed (with a Cease NOTIFICATION), and a peer whose configuration
// changed is removed and added again, which resets that session only.
// Peers that did not change are not touched. An invalid peer is skipped
// and reported in the returned error; the others are still applied.
func (s *Speaker) SetPeers(ctx context.Context, peers []Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkRunning(); err != nil {
		return err
	}

	var errs []error
	want := make(map[string]*Peer, len(peers))
	addrs := make(map[netip.Addr]string, len(peers))
	for i := range peers {
		p := peers[i]
		p.Address = p.Address.Unmap()
		p.SourceAddress = p.SourceAddress.Unmap()
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("peer %q: %w", p.Name, err))
			continue
		}
		if _, dup := want[p.Name]; dup {
			errs = append(errs, fmt.Errorf("peer %q: duplicate name", p.Name))
			continue
		}
		if other, dup := addrs[p.Address]; dup {
			errs = append(errs, fmt.Errorf("peer %q: address %v already used by peer %q", p.Name, p.Address, other))
			continue
		}
		want[p.Name] = &p
		addrs[p.Address] = p.Name
	}

	// Remove first, so that a changed peer, or a new one reusing a removed
	// peer's address, can be added.
	var gone []string
	for name, cur := range s.peers {
		if w, ok := want[name]; !ok || !w.equal(&cur.cfg) {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		if err := s.deletePeer(ctx, s.peers[name]); err != nil {
			errs = append(errs, fmt.Errorf("peer %q: remove: %w", name, err))
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		if _, ok := s.peers[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := s.addPeer(ctx, want[name]); err != nil {
			errs = append(errs, fmt.Errorf("peer %q: add: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// addPeer installs p's export statements, then the GoBGP neighbor.
func (s *Speaker) addPeer(ctx context.Context, p *Peer) error {
	if other, ok := s.byAddr[p.Address]; ok {
		return fmt.Errorf("address %v already used by peer %q", p.Address, other.cfg.Name)
	}
	id := s.peerID(p.Name)
	if err := s.addPeerPolicy(ctx, id, p); err != nil {
		return err
	}
	if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p)}); err != nil {
		if perr := s.deletePeerPolicy(ctx, id, p); perr != nil {
			s.log.Warn("cleaning up peer policy", "peer", p.Name, "error", perr)
		}
		return err
	}
	e := &peerEntry{cfg: *p, id: id}
	s.peers[p.Name] = e
	s.byAddr[p.Address] = e
	s.sessMu.Lock()
	s.names[p.Address] = p.Name
	s.sessMu.Unlock()
	s.log.Info("BGP peer added", "peer", p.Name, "address", p.Address, "peerASN", p.PeerASN,
		"myASN", s.localASN(p), "bfd", p.BFD != nil)
	return nil
}

// deletePeer removes the GoBGP neighbor (GoBGP sends Cease / Peer
// De-configured), then its export statements.
func (s *Speaker) deletePeer(ctx context.Context, e *peerEntry) error {
	p := &e.cfg
	if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()}); err != nil {
		return err
	}
	delete(s.peers, p.Name)
	delete(s.byAddr, p.Address)
	s.sessMu.Lock()
	delete(s.names, p.Address)
	delete(s.sessions, p.Address)
	s.sessMu.Unlock()
	if err := s.deletePeerPolicy(ctx, e.id, p); err != nil {
		s.log.Warn("removing peer policy", "peer", p.Name, "error", err)
	}
	s.log.Info("BGP peer removed", "peer", p.Name, "address", p.Address)
	return nil
}

// peerID returns the marker id of a peer name. Ids are never reused, so a
// path restricted to a peer that is not configured yet already carries
// the right marker when the peer arrives.
func (s *Speaker) peerID(name string) uint32 {
	id, ok := s.ids[name]
	if !ok {
		id = uint32(len(s.ids)) + firstPeerID
		s.ids[name] = id
	}
	return id
}

func (s *Speaker) localASN(p *Peer) uint32 {
	if p.MyASN != 0 {
		return p.MyASN
	}
	return s.cfg.ASN
}

func seconds(d time.Duration) uint64 {
	return uint64((d + time.Second/2) / time.Second)
}

// defaultIdleHoldAfterReset is the idle hold after a reset of a peer
// without a ConnectTime.
const defaultIdleHoldAfterReset = 5 * time.Second

// idleHoldAfterReset returns how long, in seconds, GoBGP keeps a session
// Idle after it reset it with a Cease / Administrative Reset, which is what
// its BFD does when the peer's BFD goes down. GoBGP's default is 30s, so a
// BFD flap left the session Idle for 30s while BFD was Up again. The peer's
// ConnectTime is the pace the user chose for reconnecting; without one,
// defaultIdleHoldAfterReset.
func idleHoldAfterReset(p *Peer) uint64 {
	d := p.ConnectTime
	if d <= 0 {
		d = defaultIdleHoldAfterReset
	}
	return max(seconds(d), 1)
}

// apiPeer converts p to GoBGP's AddPeer request.
func apiPeer(p *Peer) *api.Peer {
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.PeerASN,
			LocalAsn:        p.MyASN, // zero: GoBGP uses the global ASN
			AuthPassword:    p.Password,
			Description:     p.Name,
		},
		Transport: &api.Transport{
			RemotePort: uint32(p.Port),
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:               seconds(p.HoldTime),
			KeepaliveInterval:      seconds(p.KeepaliveTime),
			ConnectRetry:           seconds(p.ConnectTime),
			IdleHoldTimeAfterReset: idleHoldAfterReset(p),
		}},
	}
	if p.SourceAddress.IsValid() {
		ap.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.EBGPMultiHopTTL > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.EBGPMultiHopTTL)}
	}
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{
			Family:  &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
			Enabled: true,
		}}
		if p.GracefulRestart {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		ap.AfiSafis = append(ap.AfiSafis, af)
	}
	if p.GracefulRestart {
		ap.GracefulRestart = &api.GracefulRestart{Enabled: true}
	}
	if b := p.BFD; b != nil {
		ap.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			Port:                     uint32(b.Port),
			DesiredMinimumTxInterval: uint32(b.TransmitInterval / time.Microsecond),
			RequiredMinimumReceive:   uint32(b.ReceiveInterval / time.Microsecond),
			DetectionMultiplier:      uint32(b.DetectMultiplier),
		}
	}
	return ap
}
