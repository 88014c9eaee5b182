package config

import (
	"fmt"
	"path"
	"strings"
)

// ValidInterfacePattern checks one entry of an L2Advertisement's
// interfaces: an interface name, or a shell glob over names as path.Match
// reads it ("eth*", "bond[0-1]", "en?"), at most 15 characters, without
// "/" or white space.
func ValidInterfacePattern(p string) error {
	if p == "" || len(p) > 15 || strings.ContainsAny(p, "/ \t\n") {
		return fmt.Errorf("%q is not a valid interface name or pattern", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid interface pattern: %w", p, err)
	}
	return nil
}

// DefaultExcludedInterfaces are the interfaces a speaker never answers on
// unless its --exclude-interfaces flag says otherwise: the bridges,
// tunnels and virtual links of container runtimes, CNIs and kube-proxy,
// on which a client of the external network never asks. Patterns as in
// [ValidInterfacePattern].
var DefaultExcludedInterfaces = []string{
	"cni0", "docker0", "podman*", "virbr*", "lxcbr*", "lxc*",
	"cilium_*", "flannel.*", "flannel-wg*", "cali*", "vxlan.calico", "vxlan-v6.calico", "tunl0",
	"weave", "datapath", "kube-bridge", "kube-dummy-if", "kube-ipvs0", "nodelocaldns",
	"veth*", "genev_sys_*", "ovn-k8s-*", "antrea-*",
}
