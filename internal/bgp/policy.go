package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Markers are private large communities markerGlobal:markerLocal1:<n>
// that steer the export policy and never reach the wire: the policy
// removes every marker before a path is sent. ASN 0 is reserved (RFC 7607),
// so no real community collides with a marker.
//
// Every path carries markerAll, or the marker of each peer it is
// restricted to; a peer's export statement rejects a path that carries
// neither markerAll nor the peer's marker. A path with a next hop of its
// own also carries markerOwnNextHop, which exempts it from a peer's
// next-hop statements.
const (
	markerGlobal = 0
	markerLocal1 = 0x48524c44 // "HRLD"

	markerAll        = 0
	markerOwnNextHop = 1
	firstPeerID      = 2

	policyPeers  = "herald-peers"  // per-peer statements: restriction, next hop
	policyStrip  = "herald-strip"  // removes the markers
	policyImport = "herald-import" // accepts the speaker's own paths only
	setMarkers   = "herald-markers"
	setOwnNH     = "herald-own-nexthop"
)

// markerRegexp matches every marker.
var markerRegexp = fmt.Sprintf("^%d:%d:[0-9]+$", markerGlobal, markerLocal1)

func marker(id uint32) *bgp.LargeCommunity {
	return bgp.NewLargeCommunity(markerGlobal, markerLocal1, id)
}

func markerString(id uint32) string { return marker(id).String() }

func neighborSetName(id uint32) string { return fmt.Sprintf("herald-peer-%d", id) }
func allowSetName(id uint32) string    { return fmt.Sprintf("herald-allow-%d", id) }
func stmtName(id uint32, what string) string {
	return fmt.Sprintf("herald-peer-%d-%s", id, what)
}

// installPolicy defines the marker set and the two export policies, and
// assigns them, in order, as the global export policy with a default of
// accept; the global import policy rejects everything.
func (s *Speaker) installPolicy(ctx context.Context) error {
	for _, d := range []*api.DefinedSet{
		{DefinedType: api.DefinedType_DEFINED_TYPE_LARGE_COMMUNITY, Name: setMarkers, List: []string{markerRegexp}},
		{DefinedType: api.DefinedType_DEFINED_TYPE_LARGE_COMMUNITY, Name: setOwnNH, List: []string{markerString(markerOwnNextHop)}},
	} {
		if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: d}); err != nil {
			return fmt.Errorf("defined set %s: %w", d.Name, err)
		}
	}
	strip := &api.Policy{Name: policyStrip, Statements: []*api.Statement{{
		Name: policyStrip,
		Actions: &api.Actions{
			RouteAction: api.RouteAction_ROUTE_ACTION_UNSPECIFIED,
			LargeCommunity: &api.CommunityAction{
				Type:        api.CommunityAction_TYPE_REMOVE,
				Communities: []string{markerRegexp},
			},
		},
	}}}
	for _, p := range []*api.Policy{{Name: policyPeers}, strip} {
		if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: p}); err != nil {
			return fmt.Errorf("policy %s: %w", p.Name, err)
		}
	}
	err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		Policies:      []*api.Policy{{Name: policyPeers}, {Name: policyStrip}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}})
	if err != nil {
		return err
	}
	// Herald only announces: no received route enters the RIB, so nothing
	// a router sends is ever selected, re-advertised or installed. GoBGP
	// runs its own paths through the import policy too: those pass.
	local := &api.Policy{Name: policyImport, Statements: []*api.Statement{{
		Name:       policyImport,
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: local}); err != nil {
		return fmt.Errorf("policy %s: %w", policyImport, err)
	}
	return s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: policyImport}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}})
}

// peerStatements returns the export statements of one peer: reject a
// path that is neither for every peer nor for this one, and set the next
// hop of each family if the peer says so.
func peerStatements(id uint32, p *Peer) []*api.Statement {
	nbr := &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: neighborSetName(id)}
	st := []*api.Statement{{
		Name: stmtName(id, "restrict"),
		Conditions: &api.Conditions{
			NeighborSet:       nbr,
			LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: allowSetName(id)},
		},
		Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT},
	}}
	for _, nh := range []struct {
		addr netip.Addr
		fam  *api.Family
		what string
	}{
		{p.NextHopIPv4, &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, "nh4"},
		{p.NextHopIPv6, &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, "nh6"},
	} {
		if !nh.addr.IsValid() {
			continue
		}
		st = append(st, &api.Statement{
			Name: stmtName(id, nh.what),
			Conditions: &api.Conditions{
				NeighborSet:       nbr,
				AfiSafiIn:         []*api.Family{nh.fam},
				LargeCommunitySet: &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: setOwnNH},
			},
			Actions: &api.Actions{
				RouteAction: api.RouteAction_ROUTE_ACTION_UNSPECIFIED,
				Nexthop:     &api.NexthopAction{Address: nh.addr.String()},
			},
		})
	}
	return st
}

// addPeerPolicy defines the peer's sets and appends its statements to
// policyPeers. It runs before the peer is added, so the peer's first
// UPDATE is already filtered.
func (s *Speaker) addPeerPolicy(ctx context.Context, id uint32, p *Peer) error {
	sets := []*api.DefinedSet{
		{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
			Name:        neighborSetName(id),
			List:        []string{netip.PrefixFrom(p.Address, p.Address.BitLen()).String()},
		},
		{
			DefinedType: api.DefinedType_DEFINED_TYPE_LARGE_COMMUNITY,
			Name:        allowSetName(id),
			List:        []string{markerString(markerAll), markerString(id)},
		},
	}
	for _, d := range sets {
		if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: d, Replace: true}); err != nil {
			return fmt.Errorf("defined set %s: %w", d.Name, err)
		}
	}
	err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name:       policyPeers,
		Statements: peerStatements(id, p),
	}})
	if err != nil {
		return fmt.Errorf("policy %s: %w", policyPeers, err)
	}
	return nil
}

// deletePeerPolicy removes what addPeerPolicy added, after the peer is
// gone.
func (s *Speaker) deletePeerPolicy(ctx context.Context, id uint32, p *Peer) error {
	var errs []error
	err := s.srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{
		Name:       policyPeers,
		Statements: peerStatements(id, p),
	}})
	if err != nil {
		errs = append(errs, fmt.Errorf("policy %s: %w", policyPeers, err))
	}
	// GoBGP v4.8.0's DeletePolicy of some statements leaves them defined
	// (it only garbage-collects the statements that remain), so delete them
	// by name, or the peer's next AddPolicy finds them "already defined".
	for _, st := range peerStatements(id, p) {
		err := s.srv.DeleteStatement(ctx, &api.DeleteStatementRequest{Statement: &api.Statement{Name: st.Name}, All: true})
		if err != nil {
			errs = append(errs, fmt.Errorf("statement %s: %w", st.Name, err))
		}
	}
	for _, d := range []*api.DefinedSet{
		{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: neighborSetName(id)},
		{DefinedType: api.DefinedType_DEFINED_TYPE_LARGE_COMMUNITY, Name: allowSetName(id)},
	} {
		if err := s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: d, All: true}); err != nil {
			errs = append(errs, fmt.Errorf("defined set %s: %w", d.Name, err))
		}
	}
	return errors.Join(errs...)
}
