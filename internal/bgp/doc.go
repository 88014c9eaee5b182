// Package bgp announces Herald's service prefixes to BGP routers through
// one embedded GoBGP v4 server per speaker.
//
// Its one job is to make the wire match a desired state: the caller hands
// over the full set of peers ([Speaker.SetPeers]) and the full set of
// advertisements ([Speaker.SetAdvertisements]), and the Speaker diffs them
// against what it has and changes only what differs. A peer that did not
// change keeps its session; a prefix that did not change is not re-sent.
// Changes are pushed at once, with no debounce timer: every path of one
// call enters GoBGP in one operation, and GoBGP's per-peer sender coalesces
// the queued paths into as few UPDATE messages as their attributes allow.
//
// The server is driven only through GoBGP's Go API request structs
// (AddPeer, DeletePeer, AddPath, DeletePath, AddDefinedSet, AddPolicy,
// SetPolicyAssignment, WatchEvent, ListPeer); no TOML is rendered.
//
// # How each feature maps onto GoBGP v4
//
//   - Listening: the server dials out only (GoBGP listen port -1) unless
//     [Config.ListenPort] is set, so it can share a node with Calico or
//     kube-router, which own TCP 179.
//   - Local ASN: GoBGP has one global ASN ([Config.ASN]); a [Peer] whose
//     MyASN differs uses GoBGP's per-neighbor local-as, and GoBGP derives
//     iBGP or eBGP from MyASN == PeerASN.
//   - Families: every session negotiates IPv4 and IPv6 unicast (MP-BGP), so
//     either family can be announced over an IPv4 or an IPv6 session.
//   - Next hop: an advertisement without a next hop is added with the
//     unspecified address (0.0.0.0 or ::), which GoBGP replaces, per
//     session, by the session's local address. For the other family than
//     the session's transport that would be an IPv4-mapped IPv6 address, so
//     a Peer can name the node's address of each family
//     ([Peer.NextHopIPv4], [Peer.NextHopIPv6]); those are applied by a
//     per-peer statement of the export policy (see below).
//   - Local preference: the path carries LOCAL_PREF; GoBGP strips it on the
//     way to every eBGP peer (and adds the default 100 toward iBGP peers
//     when the path has none), so it reaches iBGP peers only.
//   - Peer restriction: GoBGP v4 keeps one global RIB and allows per-peer
//     policies only for route-server clients, but its global export policy
//     is evaluated once per destination peer with that peer's address. An
//     advertisement restricted to some peers therefore carries one private
//     marker large community (0:1213352004:<peer id>) per allowed peer.
//     The global export policy "herald-peers" has, per peer, a statement
//     "destination is this peer AND the path has a marker AND not this
//     peer's marker -> reject"; a second policy, "herald-strip", removes
//     every marker before the UPDATE is built, so markers never reach the
//     wire. Restriction changes travel with the path itself: re-adding the
//     path with new markers makes GoBGP withdraw it from a peer that lost
//     it, with no soft reset and no policy change.
//   - TCP-MD5: GoBGP's per-neighbor auth password, set on the dialing
//     socket (and on the listener when listening).
//   - BFD: GoBGP v4's native BFD (RFC 5880/5881, asynchronous mode) per
//     neighbor. When a BFD session expires, or the remote signals down,
//     GoBGP hard-resets the BGP session at once, which drops its routes.
//     GoBGP's BFD has no passive mode and does not check the received TTL:
//     [BFD.PassiveMode] is rejected and [BFD.MinimumTTL] is not enforced.
//     GoBGP's BFD listener is UDP 3784 on every address, opened only while
//     a peer has BFD enabled.
//   - Shutdown: advertisements are withdrawn explicitly, then every session
//     gets a Cease NOTIFICATION, except sessions with graceful restart,
//     which are closed without one (and without the explicit withdrawal),
//     so that the router keeps their routes as stale across a restart.
package bgp
