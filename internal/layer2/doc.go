// Package layer2 makes the local network deliver a load-balancer IP's
// packets to this node: it answers ARP requests (IPv4) and neighbour
// solicitations (IPv6) for the IPs this node owns, and sends gratuitous ARP
// and unsolicited neighbour advertisements when it takes an IP over.
//
// [ARPResponder] and [NDPResponder] serve one interface each; both have a
// constructor that opens the real socket ([ListenARP], [ListenNDP]) and one
// that takes an injected connection, so tests drive the real parsing and
// reply code. [Announcer] runs the responders of every usable interface,
// following interfaces as they come and go, and is what the speaker uses.
// [CheckIPVSStrictARP] detects a node configuration under which the kernel
// answers ARP for every node at once.
package layer2
