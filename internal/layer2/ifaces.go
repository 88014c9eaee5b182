package layer2

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// iffNoARP is the kernel's IFF_NOARP flag, as in /sys/class/net/IF/flags.
const iffNoARP = 0x80

// linkInfo is what the announcer needs to know about an interface.
type linkInfo struct {
	ifi net.Interface
	arp bool // has an IPv4 address: answer ARP
	ndp bool // has an IPv6 link-local address: answer NDP
	// addrs are the interface's own addresses, which it never announces
	// for a Service (not part of same: an address change needs no new
	// responders).
	addrs []netip.Addr
}

// same reports whether the responders of a still fit b.
func (a linkInfo) same(b linkInfo) bool {
	return a.ifi.Index == b.ifi.Index && a.ifi.HardwareAddr.String() == b.ifi.HardwareAddr.String() &&
		a.arp == b.arp && a.ndp == b.ndp
}

// usableLinks lists the interfaces to announce on: up, with an Ethernet
// MAC, not loopback, not NOARP (kube-ipvs0, most tunnels), and not enslaved
// to a bridge or bond (the master answers for them). ARP is answered where
// the interface has an IPv4 address, and NDP where it has an IPv6
// link-local address and some other (IPv4 or global IPv6) address, which
// keeps pod veths, that have only a link-local address, out.
func usableLinks(sysClassNet string) ([]linkInfo, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var links []linkInfo
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 || len(ifi.HardwareAddr) != 6 {
			continue
		}
		skip, err := skippedBySysfs(sysClassNet, ifi.Name)
		if err != nil || skip {
			continue // vanished meanwhile, or excluded
		}
		if !hasCarrier(sysClassNet, ifi.Name) {
			continue // up, but the cable or the peer is not: nobody hears it
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		l := linkInfo{ifi: ifi}
		linkLocal6, routable := false, false
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := p.Addr().Unmap()
			l.addrs = append(l.addrs, ip)
			switch {
			case ip.Is4():
				l.arp, routable = true, true
			case ip.Is6() && ip.IsLinkLocalUnicast():
				linkLocal6 = true
			case ip.Is6():
				routable = true
			}
		}
		// A link-local address alone does not put a link on a segment
		// clients use: every pod veth has one.
		l.ndp = linkLocal6 && routable
		if l.arp || l.ndp {
			links = append(links, l)
		}
	}
	return links, nil
}

// hasCarrier reports whether the interface's operational state lets it
// carry traffic: "up", or "unknown" for drivers that do not report one.
// An interface that is administratively up without carrier (IFF_LOWER_UP
// clear: cable out, switch port down, veth peer down) is "down" or
// "lowerlayerdown", and makes its node ineligible for the addresses it
// would announce there.
func hasCarrier(sysClassNet, name string) bool {
	b, err := os.ReadFile(filepath.Join(sysClassNet, name, "operstate"))
	if err != nil {
		return true // no sysfs: trust the flags
	}
	switch strings.TrimSpace(string(b)) {
	case "up", "unknown":
		return true
	}
	return false
}

// skippedBySysfs reports whether the interface is a bridge or bond slave
// (it has a master link) or has IFF_NOARP set.
func skippedBySysfs(sysClassNet, name string) (bool, error) {
	dir := filepath.Join(sysClassNet, name)
	if _, err := os.Lstat(filepath.Join(dir, "master")); err == nil {
		return true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "flags"))
	if err != nil {
		return false, fmt.Errorf("interface %s: %w", name, err)
	}
	flags, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 64)
	if err != nil {
		return false, fmt.Errorf("interface %s: parse flags %q: %w", name, b, err)
	}
	return flags&iffNoARP != 0, nil
}

// UsableInterfaces returns the names of the interfaces an [Announcer]
// answers on (see its rules), sorted, for a speaker to publish to the
// others so that they elect only nodes that have an advertisement's
// interface. sysClassNet is normally /sys/class/net.
func UsableInterfaces(sysClassNet string) ([]string, error) {
	links, err := usableLinks(sysClassNet)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, l.ifi.Name)
	}
	slices.Sort(names)
	return names, nil
}
