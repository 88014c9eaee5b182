package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// PeerErrors maps the name of each peer that SetPeers could not apply as
// asked to why. The peers not named were applied.
type PeerErrors map[string]error

func (e PeerErrors) Error() string {
	names := slices.Sorted(maps.Keys(e))
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("peer %q: %v", n, e[n]))
	}
	return strings.Join(parts, "; ")
}

// SetPeers makes the speaker's sessions match peers, the full desired set.
// A peer is identified by Name: a new name is added, a missing name is
// removed (with a Cease / Peer De-configured NOTIFICATION), and a peer
// whose configuration changed is shut down (Cease / Administrative
// Shutdown naming what changed) and added again, which resets that
// session only. Peers that did not change are not touched.
//
// The error is nil, an error that concerns the whole call (the speaker is
// not running), or a PeerErrors naming each peer that is not applied as
// asked (invalid, or GoBGP refused it). A peer that failed to be added is
// not remembered, so the next call with it tries again.
func (s *Speaker) SetPeers(ctx context.Context, peers []Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkRunning(); err != nil {
		return err
	}

	errs := PeerErrors{}
	want := make(map[string]*Peer, len(peers))
	addrs := make(map[netip.Addr]string, len(peers))
	for i := range peers {
		p := peers[i]
		p.Address = p.Address.Unmap()
		p.SourceAddress = p.SourceAddress.Unmap()
		if err := p.validate(); err != nil {
			errs[p.Name] = err
			continue
		}
		if p.Passive && s.cfg.ListenPort == 0 {
			errs[p.Name] = errors.New("passive: this speaker accepts no BGP connection (it was started without a listen port, --bgp-listen-port)")
			continue
		}
		if p.Interface != "" {
			addr, err := s.linkLocalNeighbor(p.Interface)
			if err != nil {
				errs[p.Name] = fmt.Errorf("interface %s: %w", p.Interface, err)
				continue
			}
			p.Address = addr
			p.NextHopIPv4, p.NextHopIPv6 = netip.Addr{}, netip.Addr{}
		}
		if _, dup := want[p.Name]; dup {
			errs[p.Name] = errors.New("duplicate name")
			continue
		}
		if other, dup := addrs[p.Address]; dup {
			errs[p.Name] = fmt.Errorf("address %v already used by peer %q", p.Address, other)
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
		cur := s.peers[name]
		cause := "BGPPeer " + name + " removed"
		if w, ok := want[name]; ok {
			cause = "BGPPeer " + name + " changed (" + strings.Join(changedFields(&cur.cfg, w), ", ") + ")"
		}
		if err := s.deletePeer(ctx, cur, cause, ok(want, name)); err != nil {
			errs[name] = fmt.Errorf("remove: %w", err)
			delete(want, name) // still configured the old way: not re-added now
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
			errs[name] = fmt.Errorf("add: %w", err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func ok[V any](m map[string]V, k string) bool {
	_, found := m[k]
	return found
}

// changedFields names the fields that differ between two configurations
// of one peer, without their values (a password stays secret).
func changedFields(a, b *Peer) []string {
	var out []string
	add := func(name string, differs bool) {
		if differs {
			out = append(out, name)
		}
	}
	add("myASN", a.MyASN != b.MyASN)
	add("peerASN", a.PeerASN != b.PeerASN || a.DynamicASN != b.DynamicASN)
	add("address", a.Address != b.Address)
	add("interface", a.Interface != b.Interface)
	add("passive", a.Passive != b.Passive)
	add("vrf", a.VRF != b.VRF)
	add("port", a.Port != b.Port)
	add("sourceAddress", a.SourceAddress != b.SourceAddress)
	add("holdTime", a.HoldTime != b.HoldTime)
	add("keepaliveTime", a.KeepaliveTime != b.KeepaliveTime)
	add("connectTime", a.ConnectTime != b.ConnectTime)
	add("password", a.Password != b.Password)
	add("ebgpMultiHop", a.EBGPMultiHopTTL != b.EBGPMultiHopTTL)
	add("gracefulRestart", a.GracefulRestart != b.GracefulRestart || a.GracefulRestartTime != b.GracefulRestartTime)
	add("bfd", (a.BFD == nil) != (b.BFD == nil) || (a.BFD != nil && *a.BFD != *b.BFD))
	add("nextHop", a.NextHopIPv4 != b.NextHopIPv4 || a.NextHopIPv6 != b.NextHopIPv6)
	add("disableMP", a.DisableMP != b.DisableMP)
	if len(out) == 0 {
		out = append(out, "configuration")
	}
	return out
}

// addPeer installs p's export statements, then the GoBGP neighbor, then
// its BFD session.
func (s *Speaker) addPeer(ctx context.Context, p *Peer) error {
	if other, ok := s.byAddr[p.Address]; ok {
		return fmt.Errorf("address %v already used by peer %q", p.Address, other.cfg.Name)
	}
	id := s.peerID(p.Name)
	if err := s.addPeerPolicy(ctx, id, p); err != nil {
		return err
	}
	if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(p)}); err != nil {
		if perr := s.deletePeerPolicy(ctx, id, p); perr != nil {
			s.log.Warn("cleaning up peer policy", slog.String("peer", p.Name), slog.Any("error", perr))
		}
		return err
	}
	if b := p.BFD; b != nil {
		if err := s.bfd.add(p.Address, p.SourceAddress, p.EBGPMultiHopTTL > 0, *b); err != nil {
			_ = s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()})
			if perr := s.deletePeerPolicy(ctx, id, p); perr != nil {
				s.log.Warn("cleaning up peer policy", slog.String("peer", p.Name), slog.Any("error", perr))
			}
			return err
		}
	}
	if p.Interface != "" {
		s.ra.add(p.Interface)
	}
	e := &peerEntry{cfg: *p, id: id}
	s.peers[p.Name] = e
	s.byAddr[p.Address] = e
	s.sessMu.Lock()
	s.names[p.Address] = p.Name
	s.sessions[p.Address] = StateIdle
	delete(s.lastDown, p.Address)
	s.watch[p.Address] = &stallWatch{since: time.Now(), after: stallAfter(p), password: p.Password != "", passive: p.Passive}
	if p.DynamicASN == DynamicExternal {
		s.dynExternal[p.Address] = s.localASN(p)
	}
	s.sessMu.Unlock()
	s.log.Info("BGP peer added", slog.String("peer", p.Name), slog.String("address", p.Address.String()),
		slog.Uint64("peerASN", uint64(p.PeerASN)), slog.String("dynamicASN", string(p.DynamicASN)),
		slog.Uint64("myASN", uint64(s.localASN(p))), slog.Bool("bfd", p.BFD != nil),
		slog.String("interface", p.Interface), slog.Bool("passive", p.Passive), slog.String("vrf", p.VRF))
	return nil
}

// stallAfter is how long a session of p may stay down before the speaker
// explains it: two connection attempts, at least 15s.
func stallAfter(p *Peer) time.Duration {
	return max(minStall, 2*p.ConnectTime)
}

// minStall is the shortest wait before a session that does not come up
// is explained; tests shorten it.
var minStall = 15 * time.Second

// deletePeer removes the GoBGP neighbor, then its export statements. A
// peer that is changed (readd) first gets a Cease / Administrative
// Shutdown naming the change; a removed one gets GoBGP's Cease / Peer
// De-configured. An established session gets one down event with cause.
func (s *Speaker) deletePeer(ctx context.Context, e *peerEntry, cause string, readd bool) error {
	p := &e.cfg
	s.sessMu.Lock()
	was := s.sessions[p.Address]
	s.sessMu.Unlock()
	if was == StateEstablished {
		s.setCause(p.Address, cause)
	}
	if readd {
		if err := s.adminShutdown(ctx, []string{p.Address.String()}, cause); err != nil {
			s.log.Warn("BGP shutdown before re-adding", slog.String("peer", p.Name), slog.Any("error", err))
		}
	}
	// BFD after BGP: a router that reads AdminDown first closes the BGP
	// session itself (Cease / BFD down), and the real cause is lost.
	s.bfd.remove(p.Address)
	if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: p.Address.String()}); err != nil {
		if b := p.BFD; b != nil {
			_ = s.bfd.add(p.Address, p.SourceAddress, p.EBGPMultiHopTTL > 0, *b)
		}
		return err
	}
	if p.Interface != "" {
		s.ra.remove(p.Interface)
	}
	delete(s.peers, p.Name)
	delete(s.byAddr, p.Address)
	// The session's down event comes from GoBGP, with the cause set above;
	// wait for the dispatcher to report it under the peer's name before
	// forgetting the name. If it does not come, say it ourselves.
	reported := was != StateEstablished
	for deadline := time.Now().Add(time.Second); !reported && time.Now().Before(deadline); {
		s.sessMu.Lock()
		reported = s.sessions[p.Address] != StateEstablished
		s.sessMu.Unlock()
		if !reported {
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.sessMu.Lock()
	delete(s.names, p.Address)
	delete(s.sessions, p.Address)
	delete(s.causes, p.Address)
	delete(s.lastDown, p.Address)
	delete(s.watch, p.Address)
	delete(s.dynExternal, p.Address)
	s.sessMu.Unlock()
	if !reported {
		s.queue(rawEvent{addr: p.Address, name: p.Name, old: StateEstablished, state: StateIdle, reason: cause})
	}
	if err := s.deletePeerPolicy(ctx, e.id, p); err != nil {
		s.log.Warn("removing peer policy", slog.String("peer", p.Name), slog.Any("error", err))
	}
	s.log.Info("BGP peer removed", slog.String("peer", p.Name), slog.String("address", p.Address.String()), slog.String("cause", cause))
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

// apiPeer converts p to GoBGP's AddPeer request. BFD is not GoBGP's: see
// bfd.go.
func (s *Speaker) apiPeer(p *Peer) *api.Peer {
	maxPrefixes := s.cfg.MaxReceivedPrefixes
	if maxPrefixes == 0 {
		maxPrefixes = DefaultMaxReceivedPrefixes
	}
	peerASN := p.PeerASN
	if p.DynamicASN == DynamicInternal {
		// iBGP is exactly "the router's ASN is ours": GoBGP checks it.
		peerASN = s.localASN(p)
	}
	// DynamicExternal leaves it zero: GoBGP then skips the ASN check and
	// takes the router's from its OPEN (see onEstablished).
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         peerASN,
			LocalAsn:        p.MyASN, // zero: GoBGP uses the global ASN
			AuthPassword:    p.Password,
			Description:     p.Name,
		},
		Transport: &api.Transport{
			RemotePort:    uint32(p.Port),
			PassiveMode:   p.Passive,
			BindInterface: p.VRF,
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
	afis := []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6}
	if p.DisableMP {
		afis = afis[1:]
		if p.Address.Is4() {
			afis = afis[:0:0]
			afis = append(afis, api.Family_AFI_IP)
		}
	}
	for _, afi := range afis {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{
			Family:  &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
			Enabled: true,
		}, PrefixLimits: &api.PrefixLimit{MaxPrefixes: maxPrefixes}}
		if p.GracefulRestart {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		ap.AfiSafis = append(ap.AfiSafis, af)
	}
	if p.GracefulRestart {
		rt := p.GracefulRestartTime
		if rt == 0 {
			rt = DefaultGracefulRestartTime
		}
		ap.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(seconds(rt))}
	}
	return ap
}
