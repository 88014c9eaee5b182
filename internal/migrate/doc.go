// Package migrate converts MetalLB's configuration into Herald's.
//
// It reads MetalLB's custom resources (metallb.io v1beta1 and v1beta2:
// IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile,
// Community) and the pre-0.13 ConfigMap format, from YAML or JSON documents
// or from objects already decoded (as a cluster returns them), and writes
// herald.io/v1beta1 objects plus a Report: what was converted, what has no
// equivalent in Herald (object and field), and what behaves differently.
//
// It is pure: no client-go, no file system. The kubectl-herald command does
// the reading and the writing; internal/migrate/cluster lists the objects
// from a cluster.
//
// The rule for serviceAllocation.priority: MetalLB reads 0 as "unset", the
// lowest priority; Herald reads an unset priority as the lowest and 0 as the
// highest. So MetalLB's 0 becomes no priority, and a positive priority is
// kept as it is; a serviceAllocation left with nothing to select (MetalLB's
// match-everything) selects every Service with an empty serviceSelector, so
// that the pool keeps its place before the pools without serviceAllocation.
package migrate
