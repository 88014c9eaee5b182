// Package speaker is the logic of Herald's speaker in layer 2 mode.
//
// It turns what the informers see (Services with load-balancer IPs,
// EndpointSlices, Nodes, the Herald configuration) and what memberlist
// reports (the live speakers) into one election table, and makes this node's
// [layer2.Announcer] answer for exactly the IPs the table gives it. The work
// is incremental: a Service or EndpointSlice change re-elects that Service's
// key, a member or Node change goes through [election.Table.SetNode] or
// [election.Table.RemoveNode], which touch only the keys that can move, and a
// configuration change re-elects each key once.
//
// The pure half (model.go, groups.go) converts API objects into election
// inputs and is unit-tested without a server; [Speaker] is the half with
// goroutines, sockets and clients.
package speaker
