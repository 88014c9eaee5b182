package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Router is the FRR router namespace: eth0 on the fabric, eth1 to the
// external client network, and zebra, bgpd, bfdd and staticd running as
// user frr.
//
// Its default configuration (AS RouterASN) accepts eBGP sessions from any
// fabric address (dynamic neighbours in peer group NODES, and NODES6 with
// dual stack), needs no policy for eBGP, and installs up to 16 equal paths.
type Router struct {
	NS
	// IP and IP6 are its fabric addresses.
	IP, IP6 netip.Addr
	// Zebra, BGPD, BFDD and Staticd are its daemons.
	Zebra, BGPD, BFDD, Staticd *Process
	// Dir holds the daemons' sockets, pid files and configuration.
	Dir string

	bed *Bed
}

func (r *Router) plumb(ctx context.Context) error {
	b := r.bed
	if err := b.attachToFabric(ctx, r.NS, "router", r.IP, r.IP6); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	c := b.ClientExt
	steps := [][]string{
		{"ip", "netns", "add", c.Name},
		{"ip", "link", "add", "eth1", "netns", r.Name, "type", "veth", "peer", "name", "eth0", "netns", c.Name},
		{"ip", "-n", r.Name, "addr", "add", netip.PrefixFrom(RouterExternalIP, 24).String(), "dev", "eth1"},
		{"ip", "-n", r.Name, "link", "set", "eth1", "up"},
		{"ip", "netns", "exec", r.Name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		{"ip", "-n", c.Name, "link", "set", "lo", "up"},
		{"ip", "-n", c.Name, "addr", "add", netip.PrefixFrom(c.IP, 24).String(), "dev", "eth0"},
		{"ip", "-n", c.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", c.Name, "route", "add", "default", "via", RouterExternalIP.String()},
	}
	if b.opts.DualStack {
		steps = append(steps,
			[]string{"ip", "-n", r.Name, "addr", "add", netip.PrefixFrom(RouterExternalIP6, 64).String(), "dev", "eth1", "nodad"},
			[]string{"ip", "netns", "exec", r.Name, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"},
			[]string{"ip", "-n", c.Name, "addr", "add", netip.PrefixFrom(c.IP6, 64).String(), "dev", "eth0", "nodad"},
			[]string{"ip", "-n", c.Name, "-6", "route", "add", "default", "via", RouterExternalIP6.String()},
		)
	}
	if err := runAll(ctx, steps); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	return nil
}

// DefaultBGPConfig returns the bgpd configuration the router starts with.
func (r *Router) DefaultBGPConfig() string {
	var s strings.Builder
	fmt.Fprintf(&s, "frr defaults traditional\nhostname router\n!\nrouter bgp %d\n", RouterASN)
	fmt.Fprintf(&s, " bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n", r.IP)
	s.WriteString(" bgp bestpath as-path multipath-relax\n bgp listen limit 200\n")
	s.WriteString(" neighbor NODES peer-group\n neighbor NODES remote-as external\n neighbor NODES timers 3 9\n")
	fmt.Fprintf(&s, " bgp listen range %s peer-group NODES\n", FabricPrefix)
	if r.IP6.IsValid() {
		s.WriteString(" neighbor NODES6 peer-group\n neighbor NODES6 remote-as external\n neighbor NODES6 timers 3 9\n")
		fmt.Fprintf(&s, " bgp listen range %s peer-group NODES6\n", FabricPrefix6)
	}
	s.WriteString(" address-family ipv4 unicast\n  neighbor NODES activate\n  maximum-paths 16\n exit-address-family\n")
	if r.IP6.IsValid() {
		s.WriteString(" address-family ipv6 unicast\n  neighbor NODES6 activate\n  maximum-paths 16\n exit-address-family\n")
	}
	s.WriteString("!\n")
	return s.String()
}

func (r *Router) start(ctx context.Context) error {
	b := r.bed
	r.Dir = filepath.Join(b.RunDir, "frr")
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	for name, conf := range map[string]string{"zebra.conf": "hostname router\n", "bgpd.conf": r.DefaultBGPConfig(), "bfdd.conf": "hostname router\n", "staticd.conf": "hostname router\n"} {
		if err := os.WriteFile(filepath.Join(r.Dir, name), []byte(conf), 0o644); err != nil {
			return err
		}
	}
	u, err := user.Lookup("frr")
	if err != nil {
		return fmt.Errorf("router: user frr (is the frr package installed?): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.Walk(r.Dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
	if err != nil {
		return err
	}
	common := func(d string) []string {
		return []string{"-i", filepath.Join(r.Dir, d+".pid"), "-z", filepath.Join(r.Dir, "zserv.api"),
			"--vty_socket", r.Dir, "-u", "frr", "-g", "frr", "-P", "0", "-f", filepath.Join(r.Dir, d+".conf")}
	}
	if r.Zebra, err = b.startProcess(ctx, NSName(r.Name), "frr-zebra", "/usr/lib/frr/zebra", common("zebra")...); err != nil {
		return err
	}
	if err := waitFor(ctx, 20*time.Millisecond, "zebra socket", func(context.Context) (bool, error) {
		if !r.Zebra.Running() {
			return false, fmt.Errorf("zebra exited; see %s", r.Zebra.Log)
		}
		_, err := os.Stat(filepath.Join(r.Dir, "zserv.api"))
		return err == nil, nil
	}); err != nil {
		return err
	}
	if r.BGPD, err = b.startProcess(ctx, NSName(r.Name), "frr-bgpd", "/usr/lib/frr/bgpd", common("bgpd")...); err != nil {
		return err
	}
	if r.BFDD, err = b.startProcess(ctx, NSName(r.Name), "frr-bfdd", "/usr/lib/frr/bfdd",
		append(common("bfdd"), "--bfdctl", filepath.Join(r.Dir, "bfdd.sock"))...); err != nil {
		return err
	}
	if r.Staticd, err = b.startProcess(ctx, NSName(r.Name), "frr-staticd", "/usr/lib/frr/staticd", common("staticd")...); err != nil {
		return err
	}
	return waitFor(ctx, 50*time.Millisecond, "bgpd and bfdd answering vtysh", func(ctx context.Context) (bool, error) {
		for _, p := range []*Process{r.Zebra, r.BGPD, r.BFDD, r.Staticd} {
			if !p.Running() {
				return false, fmt.Errorf("%s exited; see %s", p.Name, p.Log)
			}
		}
		var sum map[string]any
		if err := r.JSON(ctx, "show bgp summary json", &sum); err != nil {
			return false, err
		}
		var peers any
		if err := r.JSON(ctx, "show bfd peers json", &peers); err != nil {
			return false, err
		}
		return true, nil
	})
}

// Vtysh runs one or more vtysh commands against the router's daemons and
// returns the output.
func (r *Router) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	args := []string{"vtysh", "--vty_socket", r.Dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := run(ctx, args...)
	if err != nil {
		return out, fmt.Errorf("router: %w", err)
	}
	return out, nil
}

// JSON runs a vtysh "show ... json" command and decodes its output into v.
func (r *Router) JSON(ctx context.Context, cmd string, v any) error {
	out, err := r.Vtysh(ctx, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("router: %s: decode %q: %w", cmd, lastLines(out, 3), err)
	}
	return nil
}

// Configure enters configuration mode and runs the given lines, for example
// "router bgp 64512", " neighbor 198.18.0.11 remote-as 64513".
func (r *Router) Configure(ctx context.Context, lines ...string) error {
	cmds := append([]string{"configure terminal"}, lines...)
	out, err := r.Vtysh(ctx, cmds...)
	if err != nil {
		return err
	}
	// vtysh reports most configuration errors on its output with status 0.
	if strings.Contains(out, "% ") {
		return fmt.Errorf("router: configure: %s", strings.TrimSpace(out))
	}
	return nil
}

// BGPNeighbor is one neighbour of `show bgp summary json`.
type BGPNeighbor struct {
	RemoteAS        int64  `json:"remoteAs"`
	State           string `json:"state"`
	PfxRcd          int    `json:"pfxRcd"`
	PeerUptimeMsec  int64  `json:"peerUptimeMsec"`
	DynamicPeer     bool   `json:"dynamicPeer"`
	ConnectionsUp   int    `json:"connectionsEstablished"`
	ConnectionsDown int    `json:"connectionsDropped"`
}

// BGPSummary returns the router's IPv4 (or IPv6) unicast neighbours, by
// neighbour address.
func (r *Router) BGPSummary(ctx context.Context, ipv6 bool) (map[string]BGPNeighbor, error) {
	af := "ipv4Unicast"
	if ipv6 {
		af = "ipv6Unicast"
	}
	var sum map[string]struct {
		Peers map[string]BGPNeighbor `json:"peers"`
	}
	if err := r.JSON(ctx, "show bgp summary json", &sum); err != nil {
		return nil, err
	}
	return sum[af].Peers, nil
}

// Routes returns the router's kernel routes to prefix (an ECMP route has
// several next hops), as `ip -j route show` in the router namespace.
func (r *Router) Routes(ctx context.Context, prefix netip.Prefix) ([]KernelRoute, error) {
	fam := "-4"
	if prefix.Addr().Is6() {
		fam = "-6"
	}
	out, err := r.Output(ctx, "ip", "-j", fam, "route", "show", prefix.String())
	if err != nil {
		return nil, err
	}
	var routes []KernelRoute
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("router: parse routes: %w", err)
	}
	return routes, nil
}

// KernelRoute is one route of `ip -j route`.
type KernelRoute struct {
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Dev      string `json:"dev"`
	Protocol string `json:"protocol"`
	Nexthops []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	} `json:"nexthops"`
}

// NextHops returns the route's gateways (one, or several for ECMP).
func (k KernelRoute) NextHops() []string {
	if len(k.Nexthops) == 0 {
		if k.Gateway == "" {
			return nil
		}
		return []string{k.Gateway}
	}
	var out []string
	for _, n := range k.Nexthops {
		out = append(out, n.Gateway)
	}
	return out
}
