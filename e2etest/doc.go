// Package e2etest holds Herald's integration and end-to-end tests, which run
// on the test bed of package testbed (a real kube-apiserver, etcd, network
// namespaces for nodes, kube-proxy, an FRR router and clients). They need
// root on Linux; see shared/TESTBED.md.
package e2etest
