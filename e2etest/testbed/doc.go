// Package testbed runs a small but real Kubernetes cluster on one Linux
// machine for Herald's integration and end-to-end tests.
//
// A bed is made of:
//   - etcd and kube-apiserver (RBAC, token auth) in the root network
//     namespace, listening only on loopback and on one transit veth;
//   - a "fabric" network namespace holding the L2 segment (a bridge);
//   - N node namespaces on that bridge, each registered as a Node object and
//     running a real kube-proxy;
//   - pod namespaces routed from their node (Calico style: a /32 route to the
//     pod, proxy ARP, and a default route via 169.254.1.1 in the pod), each
//     running a tiny HTTP server that answers with its name and the client's
//     address;
//   - an FRR router namespace (zebra, bgpd, bfdd) on the fabric, with a client
//     network behind it;
//   - client namespaces: one on the L2 segment, one behind the router.
//
// Every namespace, root-side link and run directory carries a per-run prefix
// (hl<pid><letter>-), processes are stopped by the PIDs the bed recorded, and
// Sweep removes what crashed runs left behind. The address plan follows
// shared/TESTBED.md: only 198.18.0.0/15, 198.51.100.0/24, 203.0.113.0/24 and
// 2001:db8::/32 are used.
//
// Tests call Start, which tears the bed down with t.Cleanup; programs (the
// testbed CLI) call Up and Bed.Close, or Down with a recorded state file.
package testbed
