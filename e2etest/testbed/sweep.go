package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Sweep removes what earlier beds left behind: for every prefix whose owner
// is gone (and that is not a detached CLI bed), it stops the processes its
// state file recorded (checking PID and start time), deletes its namespaces
// and root links, and removes its run directory. It touches only objects
// whose names match hl<pid><letter>-.
func Sweep(ctx context.Context, log *slog.Logger) error {
	nsNames, err := listNetns(ctx)
	if err != nil {
		return err
	}
	links, err := listRootLinks(ctx)
	if err != nil {
		return err
	}
	type leftovers struct {
		ns, links []string
		dir       string
	}
	byPrefix := map[string]*leftovers{}
	get := func(p string) *leftovers {
		if byPrefix[p] == nil {
			byPrefix[p] = &leftovers{}
		}
		return byPrefix[p]
	}
	for _, n := range nsNames {
		if m := prefixRE.FindStringSubmatch(n); m != nil && m[3] == "-" {
			get(m[1]).ns = append(get(m[1]).ns, n)
		}
	}
	for _, l := range links {
		if m := prefixRE.FindStringSubmatch(l); m != nil && m[3] == "-" {
			get(m[1]).links = append(get(m[1]).links, l)
		}
	}
	if ents, err := os.ReadDir(RunBase()); err == nil {
		for _, e := range ents {
			if m := prefixRE.FindStringSubmatch(e.Name()); m != nil && m[3] == "" && e.IsDir() {
				get(m[1]).dir = filepath.Join(RunBase(), e.Name())
			}
		}
	}
	var errs []error
	for prefix, lo := range byPrefix {
		dir := lo.dir
		if dir == "" {
			dir = filepath.Join(RunBase(), prefix)
		}
		st, serr := ReadState(dir)
		if serr == nil {
			if st.live() {
				continue
			}
		} else {
			// No state: the owner may be creating its bed right now.
			pid, _ := strconv.Atoi(prefixRE.FindStringSubmatch(prefix)[2])
			if pidAlive(pid, 0) {
				continue
			}
		}
		log.Info("sweeping stale test bed", "prefix", prefix, "namespaces", len(lo.ns), "links", len(lo.links))
		if st == nil {
			st = &State{Prefix: prefix}
		}
		if st.RunDir == "" && lo.dir != "" {
			st.RunDir = lo.dir
		}
		// What exists under the prefix but was not recorded goes too.
		for _, n := range lo.ns {
			if !contains(st.Namespaces, n) {
				st.Namespaces = append(st.Namespaces, n)
			}
		}
		for _, l := range lo.links {
			if !contains(st.RootLinks, l) {
				st.RootLinks = append(st.RootLinks, l)
			}
		}
		var procs []*Process
		for _, r := range st.Processes {
			procs = append(procs, processFromRecord(r))
		}
		if err := teardown(log, *st, procs); err != nil {
			errs = append(errs, err)
		}
	}
	// A real-nodes bed that died before recording its nodes may have left
	// the kubelet's sysctls changed.
	if _, err := os.Stat(sysctlSaveFile()); err == nil && !anyLiveRealNodes("") {
		if err := restoreSysctls(log, nil); err != nil {
			errs = append(errs, err)
		} else {
			_ = os.Remove(sysctlSaveFile())
		}
	}
	return errors.Join(errs...)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// listNetns returns the names of the machine's named network namespaces:
// the entries of /run/netns, where `ip netns` keeps their bind mounts. It
// does not use `ip -j netns list`, which prints an error line among its
// JSON (and so fails as a whole) when any namespace of the machine is in a
// transient state, such as another bed's half-created namespace.
func listNetns(context.Context) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

func listRootLinks(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "ip", "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var l []struct {
		IfName string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, fmt.Errorf("parse ip link: %w", err)
	}
	var names []string
	for _, n := range l {
		names = append(names, n.IfName)
	}
	return names, nil
}

func linkExists(ctx context.Context, name string) bool {
	_, err := run(ctx, "ip", "link", "show", "dev", name)
	return err == nil
}

// rootRoute is one route of the root namespace.
type rootRoute struct {
	Dst string `json:"dst"`
	Dev string `json:"dev"`
}

// transitLinkRE matches the root end of another bed's transit link: its /30
// lies inside the bed's ranges by design and is not a conflict.
var transitLinkRE = regexp.MustCompile(`^hl[0-9]+[a-z]-fab$`)

// CheckRootRoutes returns the root namespace's routes that overlap the bed's
// address ranges (other beds' transit links excepted), so that a bed never
// shadows the machine's own networks.
func CheckRootRoutes(ctx context.Context) (used []netip.Prefix, err error) {
	var routes []rootRoute
	for _, fam := range []string{"-4", "-6"} {
		out, err := run(ctx, "ip", "-j", fam, "route", "show", "table", "all")
		if err != nil {
			return nil, err
		}
		var rs []rootRoute
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			return nil, fmt.Errorf("parse ip route: %w", err)
		}
		routes = append(routes, rs...)
	}
	return checkRoutes(routes)
}

// checkRoutes returns the prefixes of other beds' transit links, or an error
// naming every route that overlaps the bed's ranges.
func checkRoutes(routes []rootRoute) (used []netip.Prefix, err error) {
	var conflicts []string
	for _, r := range routes {
		p, ok := parseRouteDst(r.Dst)
		if !ok {
			continue
		}
		for _, res := range ReservedRanges {
			if !p.Overlaps(res) {
				continue
			}
			if transitLinkRE.MatchString(r.Dev) {
				used = append(used, p)
				continue
			}
			conflicts = append(conflicts, fmt.Sprintf("%s dev %s overlaps %s", r.Dst, r.Dev, res))
		}
	}
	if len(conflicts) > 0 {
		return nil, fmt.Errorf("the root network namespace already routes addresses the test bed needs; remove these routes or run elsewhere: %s", strings.Join(conflicts, "; "))
	}
	return used, nil
}

func parseRouteDst(dst string) (netip.Prefix, bool) {
	switch dst {
	case "", "default":
		return netip.Prefix{}, false
	}
	if p, err := netip.ParsePrefix(dst); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(dst); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}
