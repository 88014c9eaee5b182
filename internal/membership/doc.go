// Package membership keeps the speaker's view of which speakers are alive.
//
// It wraps hashicorp/memberlist: it joins the speakers' gossip cluster with
// timings tuned for sub-second failure detection on a LAN, encrypts it with
// a key derived from a Secret, reports members joining, leaving and
// changing as [Event]s, leaves gracefully on shutdown so that the others
// move IPs at once, and reports a peer that uses a different encryption key
// instead of silently splitting the cluster.
package membership
