// Package election decides which node announces a Service's load-balancer
// IPs in layer 2 mode.
//
// It is pure: it takes plain node and service descriptions and returns owners,
// with no I/O and no Kubernetes types. The owner of a service key is the
// eligible node with the highest rendezvous score (see [Score]); every speaker
// that feeds the same inputs computes the same owner, and when a node leaves
// only the keys it owned move. [Table] keeps owners incrementally and reports
// each change as a [Change].
package election
