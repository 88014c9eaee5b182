package layer2

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// IPVSInterface is the dummy interface kube-proxy's IPVS mode binds every
// Service IP to.
const IPVSInterface = "kube-ipvs0"

// CheckIPVSStrictARP detects kube-proxy in IPVS mode without strictARP. In
// IPVS mode kube-proxy binds every load-balancer IP to kube-ipvs0 on every
// node; unless arp_ignore is at least 1 (what kube-proxy's strictARP sets,
// with arp_announce 2), every node's kernel answers ARP for every IP, and
// clients reach a random node instead of the elected one.
//
// sysClassNet and procSysNet are the roots normally at /sys/class/net and
// /proc/sys/net. It returns a warning for the caller to log, record as an
// event and count, or "" if the node is fine.
func CheckIPVSStrictARP(sysClassNet, procSysNet string) (string, error) {
	if _, err := os.Stat(filepath.Join(sysClassNet, IPVSInterface)); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("check %s: %w", IPVSInterface, err)
	}
	ignore, err := readSysctlInt(filepath.Join(procSysNet, "ipv4", "conf", "all", "arp_ignore"))
	if err != nil {
		return "", err
	}
	if ignore >= 1 {
		return "", nil
	}
	return fmt.Sprintf("kube-proxy runs in IPVS mode (interface %s exists) but net.ipv4.conf.all.arp_ignore is %d: "+
		"every node answers ARP for every load-balancer IP; set strictARP: true in kube-proxy's configuration "+
		"(it sets arp_ignore=1 and arp_announce=2)", IPVSInterface, ignore), nil
}

func readSysctlInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}
