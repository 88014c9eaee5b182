package layer2

import "sync/atomic"

// Stats counts layer 2 traffic, for the metrics package. All fields are
// updated atomically and may be read at any time.
type Stats struct {
	// ARPRequests counts well-formed ARP requests received (Ethernet and
	// IPv4 addresses), for any target.
	ARPRequests atomic.Uint64
	// ARPReplies counts ARP replies sent for owned IPs.
	ARPReplies atomic.Uint64
	// GratuitousARP counts gratuitous ARP packets sent.
	GratuitousARP atomic.Uint64
	// NDPSolicitations counts well-formed neighbour solicitations
	// received, for any target.
	NDPSolicitations atomic.Uint64
	// NDPAdvertisements counts solicited neighbour advertisements sent for
	// owned IPs.
	NDPAdvertisements atomic.Uint64
	// UnsolicitedNA counts unsolicited neighbour advertisements sent.
	UnsolicitedNA atomic.Uint64
	// Malformed counts received frames rejected as malformed: by the
	// parser, or by the sockets' kernel filters (added once a second, see
	// filter.go).
	Malformed atomic.Uint64
	// SendErrors counts packets that could not be sent.
	SendErrors atomic.Uint64
	// Reannounces counts the rounds of gratuitous packets sent again for
	// every owned IP after a membership change (Announcer.Reannounce).
	Reannounces atomic.Uint64
}
