package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// SessionState is the BGP finite-state-machine state of a session
// (RFC 4271 section 8).
type SessionState int

// The session states, in FSM order.
const (
	StateUnknown SessionState = iota
	StateIdle
	StateConnect
	StateActive
	StateOpenSent
	StateOpenConfirm
	StateEstablished
)

var stateNames = [...]string{"Unknown", "Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"}

// String returns the state's RFC 4271 name.
func (s SessionState) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("SessionState(%d)", int(s))
	}
	return stateNames[s]
}

func sessionStateFrom(s bgp.FSMState) SessionState {
	switch s {
	case bgp.BGP_FSM_IDLE:
		return StateIdle
	case bgp.BGP_FSM_CONNECT:
		return StateConnect
	case bgp.BGP_FSM_ACTIVE:
		return StateActive
	case bgp.BGP_FSM_OPENSENT:
		return StateOpenSent
	case bgp.BGP_FSM_OPENCONFIRM:
		return StateOpenConfirm
	case bgp.BGP_FSM_ESTABLISHED:
		return StateEstablished
	}
	return StateUnknown
}

func sessionStateFromAPI(s api.PeerState_SessionState) SessionState {
	if s >= api.PeerState_SESSION_STATE_IDLE && s <= api.PeerState_SESSION_STATE_ESTABLISHED {
		return SessionState(s) // the API enum has the same order
	}
	return StateUnknown
}

// BFDState is the local state of a BFD session (RFC 5880 section 4.1).
type BFDState string

// BFD session states. BFDDisabled means the peer has no BFD.
const (
	BFDDisabled  BFDState = ""
	BFDAdminDown BFDState = "AdminDown"
	BFDDown      BFDState = "Down"
	BFDInit      BFDState = "Init"
	BFDUp        BFDState = "Up"
)

// SessionEvent reports one state change of one session.
type SessionEvent struct {
	// Peer is the peer's Name ("" if it was removed meanwhile).
	Peer string
	// Address is the peer's address.
	Address netip.Addr
	// State is the new state; OldState the one before.
	State, OldState SessionState
	// Reason says why a session left Established: the cause when Herald
	// caused it (a peer removed or changed, the speaker stopping, BFD down),
	// else what GoBGP saw (a NOTIFICATION, the hold timer). For a Stalled
	// event, why the session does not come up.
	Reason string
	// Stalled marks the one event of a session that has not come up for a
	// while (State equals OldState): see Reason.
	Stalled bool
	// Time is when the Speaker saw the change.
	Time time.Time
}

// Up reports whether the session has just become established.
func (e SessionEvent) Up() bool { return e.State == StateEstablished }

// Down reports whether an established session has just gone.
func (e SessionEvent) Down() bool {
	return e.OldState == StateEstablished && e.State != StateEstablished
}

// PeerStatus is the state of one session, for status objects and metrics.
type PeerStatus struct {
	// Name and Address identify the peer.
	Name    string
	Address netip.Addr
	// LocalAddress is the session's local address, once connected.
	LocalAddress netip.Addr
	// State is the session's FSM state.
	State SessionState
	// EstablishedAt is when the session became established; zero unless
	// State is StateEstablished.
	EstablishedAt time.Time
	// PrefixesSent counts the prefixes advertised on the session after
	// export policy, per family ("ipv4-unicast", "ipv6-unicast").
	PrefixesSent map[string]uint64
	// PrefixesReceived counts the prefixes received, per family.
	PrefixesReceived map[string]uint64
	// UpdatesSent and UpdatesReceived count UPDATE messages, and
	// NotificationsSent and NotificationsReceived NOTIFICATION messages,
	// since the peer was added.
	UpdatesSent, UpdatesReceived             uint64
	NotificationsSent, NotificationsReceived uint64
	// BFD is the BFD session's state; BFDDisabled without BFD.
	BFD BFDState
	// LastError says why the session last went down, when known.
	LastError string
}

// Status returns the state of every configured peer, sorted by name. It
// counts the advertised prefixes, which walks the RIB once per peer and
// family: call it at status or scrape pace, not per packet.
func (s *Speaker) Status(ctx context.Context) ([]PeerStatus, error) {
	s.mu.Lock()
	err := s.checkRunning()
	srv := s.srv
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.sessMu.Lock()
	names := make(map[netip.Addr]string, len(s.names))
	for a, n := range s.names {
		names[a] = n
	}
	s.sessMu.Unlock()

	var out []PeerStatus
	err = srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		addr, _ := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		st := PeerStatus{
			Name:                  names[addr],
			Address:               addr,
			State:                 sessionStateFromAPI(p.GetState().GetSessionState()),
			PrefixesSent:          map[string]uint64{},
			PrefixesReceived:      map[string]uint64{},
			UpdatesSent:           p.GetState().GetMessages().GetSent().GetUpdate(),
			UpdatesReceived:       p.GetState().GetMessages().GetReceived().GetUpdate(),
			NotificationsSent:     p.GetState().GetMessages().GetSent().GetNotification(),
			NotificationsReceived: p.GetState().GetMessages().GetReceived().GetNotification(),
			LastError:             disconnectReason(p.GetState().GetDisconnectReason(), p.GetState().GetDisconnectMessage()),
		}
		if la, err := netip.ParseAddr(p.GetTransport().GetLocalAddress()); err == nil {
			st.LocalAddress = la
		}
		if st.State == StateEstablished {
			if up := p.GetTimers().GetState().GetUptime(); up != nil {
				st.EstablishedAt = up.AsTime()
			}
		}
		for _, af := range p.GetAfiSafis() {
			fam := af.GetState().GetFamily()
			if fam == nil {
				continue
			}
			name := bgp.NewFamily(uint16(fam.GetAfi()), uint8(fam.GetSafi())).String()
			st.PrefixesSent[name] = af.GetState().GetAdvertised()
			st.PrefixesReceived[name] = af.GetState().GetReceived()
		}
		if why := s.lastError(addr); why != "" {
			st.LastError = why
		}
		if b, ok := s.bfd.state(addr); ok {
			st.BFD = b
		}
		if st.State != StateEstablished {
			if why := s.stallExplanation(addr); why != "" {
				st.LastError = why
			}
		}
		out = append(out, st)
	})
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func disconnectReason(r api.PeerState_DisconnectReason, msg string) string {
	if r == api.PeerState_DISCONNECT_REASON_UNSPECIFIED {
		return msg
	}
	s := strings.ToLower(strings.TrimPrefix(r.String(), "DISCONNECT_REASON_"))
	s = strings.ReplaceAll(s, "_", " ")
	if msg != "" {
		s += ": " + msg
	}
	return s
}
