package layer2

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// helperEnv, when set, makes TestNetnsHelper run an Announcer for the
// comma-separated IPs it holds, inside whatever netns it was started in.
const helperEnv = "HERALD_L2_HELPER_IPS"

// TestNetnsHelper is not a test: TestNetns runs the test binary in a
// netns with `ip netns exec` and this function as the only test, so that
// the whole Announcer (interface listing, sysfs, raw sockets) runs in it.
func TestNetnsHelper(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for TestNetns")
	}
	a := NewAnnouncer(AnnouncerConfig{
		PollInterval: 100 * time.Millisecond,
		Options:      Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	var ips []netip.Addr
	for _, s := range strings.Split(spec, ",") {
		ip := netip.MustParseAddr(s)
		ips = append(ips, ip)
		a.Announce(ip, nil)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, ip := range ips {
		for len(a.Interfaces(ip)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s never announced", ip)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := a.Stats()
	fmt.Printf("STATS arpRequests=%d arpReplies=%d garp=%d ns=%d na=%d unsolicited=%d malformed=%d sendErrors=%d\n",
		s.ARPRequests.Load(), s.ARPReplies.Load(), s.GratuitousARP.Load(),
		s.NDPSolicitations.Load(), s.NDPAdvertisements.Load(), s.UnsolicitedNA.Load(),
		s.Malformed.Load(), s.SendErrors.Load())
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// vethPair makes two namespaces joined by a veth, A at 198.18.0.1 and B at
// 198.18.0.2 (and 2001:db8::1 and ::2 with v6), removed when the test ends,
// and returns their names, B's link name and A's MAC. It refuses to run if
// the root namespace routes 198.18.0.0/24, to avoid any confusion.
func vethPair(t *testing.T, tag string, v6 bool) (nsA, nsB, vethB, macA string) {
	t.Helper()
	if routes := run(t, "ip", "route", "show", "match", "198.18.0.0/24"); strings.Contains(routes, "198.18.0.") {
		t.Fatalf("198.18.0.0/24 is in use in the root netns:\n%s", routes)
	}
	prefix := fmt.Sprintf("%s%d-", tag, os.Getpid())
	nsA, nsB = prefix+"a", prefix+"b"
	vethA := prefix + "va"
	vethB = prefix + "vb"
	for _, ns := range []string{nsA, nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	// The veth lives only in the two namespaces: deleting them deletes it.
	run(t, "ip", "link", "add", vethA, "netns", nsA, "type", "veth", "peer", "name", vethB, "netns", nsB)
	// The global address comes before the link-local one on A: NDP must
	// still find the link-local address.
	run(t, "ip", "-n", nsA, "addr", "add", "198.18.0.1/24", "dev", vethA)
	if v6 {
		run(t, "ip", "-n", nsA, "addr", "add", "2001:db8::1/64", "dev", vethA, "nodad")
	}
	run(t, "ip", "-n", nsB, "addr", "add", "198.18.0.2/24", "dev", vethB)
	if v6 {
		run(t, "ip", "-n", nsB, "addr", "add", "2001:db8::2/64", "dev", vethB, "nodad")
	}
	run(t, "ip", "-n", nsA, "link", "set", vethA, "up")
	run(t, "ip", "-n", nsB, "link", "set", vethB, "up")
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(run(t, "ip", "-n", nsA, "-j", "link", "show", vethA)), &links); err != nil || len(links) != 1 {
		t.Fatalf("parse link of %s: %v", vethA, err)
	}
	return nsA, nsB, vethB, links[0].Address
}

// TestNetns runs the announcer in netns A and checks, from netns B on the
// same veth, that the kernel resolves the announced IPs to A's MAC.
func TestNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"ip", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	nsA, nsB, vethB, macA := vethPair(t, "hlt", true)

	v4, v6 := "198.18.0.200", "2001:db8::200"
	stop, _ := startHelper(t, nsA, v4, v6)

	tests := []struct {
		desc    string
		ip      string
		wantMAC string // "" means unresolved
	}{
		{desc: "IPv4 via ARP", ip: v4, wantMAC: macA},
		{desc: "IPv6 via NDP", ip: v6, wantMAC: macA},
		{desc: "IPv4 not owned", ip: "198.18.0.201"},
		{desc: "IPv6 not owned", ip: "2001:db8::201"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			// A UDP datagram from B makes B's kernel resolve the address;
			// nothing needs to receive it. (bash's /dev/udp: no ping needed.)
			start := time.Now()
			exec.Command("ip", "netns", "exec", nsB, "bash", "-c", "echo x > /dev/udp/"+tc.ip+"/9").Run()
			var got string
			for time.Since(start) < 3*time.Second {
				got = neighMAC(t, nsB, vethB, tc.ip)
				if got != "" {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got != tc.wantMAC {
				t.Fatalf("neighbour table of B maps %s to %q, want %q", tc.ip, got, tc.wantMAC)
			}
			if got != "" {
				t.Logf("%s resolved to %s after %v", tc.ip, got, time.Since(start).Round(time.Millisecond))
			}
		})
	}
	// A stale entry is confirmed with a solicitation sent to the IP itself,
	// unicast to the cached MAC: the kernel does not hand that one to an
	// ICMPv6 socket, since the node does not hold the IP.
	t.Run("IPv6 unicast solicitation", func(t *testing.T) {
		run(t, "ip", "netns", "exec", nsB, "sysctl", "-qw", "net.ipv6.neigh."+vethB+".delay_first_probe_time=0")
		run(t, "ip", "-n", nsB, "neigh", "replace", v6, "dev", vethB, "lladdr", macA, "nud", "stale")
		start := time.Now()
		exec.Command("ip", "netns", "exec", nsB, "bash", "-c", "echo x > /dev/udp/"+v6+"/9").Run()
		var state []string
		for time.Since(start) < 5*time.Second {
			state = neighState(t, nsB, vethB, v6)
			if slices.Contains(state, "REACHABLE") || slices.Contains(state, "FAILED") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !slices.Contains(state, "REACHABLE") {
			t.Fatalf("stale entry of %s went %v, want REACHABLE", v6, state)
		}
		t.Logf("stale entry of %s confirmed by unicast solicitation after %v", v6, time.Since(start).Round(time.Millisecond))
	})
	stop()
}

// startHelper runs TestNetnsHelper in ns, announcing ips, and waits for its
// READY: every IP announced on some interface. stop ends it (and runs at
// cleanup); the helper's log is in stderr.
func startHelper(t *testing.T, ns string, ips ...string) (stop func(), stderr *strings.Builder) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestNetnsHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(ips, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr = &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		stdin.Close()
		for l := range lines {
			if strings.HasPrefix(l, "STATS") {
				t.Log(l)
			}
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		select {
		case err := <-waited:
			if err != nil {
				t.Errorf("helper: %v\n%s", err, stderr.String())
			} else if testing.Verbose() {
				t.Logf("helper log:\n%s", stderr.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill() // by the PID we started
			<-waited
			t.Errorf("helper did not stop\n%s", stderr.String())
		}
	}
	t.Cleanup(stop)

	ready := false
	timeout := time.After(20 * time.Second)
	for !ready {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("helper exited before READY\n%s", stderr.String())
			}
			ready = l == "READY"
		case <-timeout:
			t.Fatalf("helper not ready\n%s", stderr.String())
		}
	}
	return stop, stderr
}

// TestNetnsNDPRetry: the announcer starts while the interface's link-local
// address is still tentative (duplicate address detection after a flap),
// so its NDP responder cannot bind; it must retry on its own, and the IPv6
// address must then resolve.
func TestNetnsNDPRetry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"ip", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	nsA, nsB, vethB, macA := vethPair(t, "hlr", true)
	vethA := fmt.Sprintf("hlr%d-va", os.Getpid())
	// A flap with slow DAD: the new link-local address stays tentative for
	// about 3 s after the link comes back.
	run(t, "ip", "-n", nsA, "link", "set", vethA, "down")
	run(t, "ip", "netns", "exec", nsA, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=1",
		"net.ipv6.conf."+vethA+".accept_dad=1", "net.ipv6.conf."+vethA+".dad_transmits=1",
		"net.ipv6.neigh."+vethA+".retrans_time_ms=3000")
	run(t, "ip", "-n", nsA, "-6", "addr", "flush", "dev", vethA, "scope", "link")
	run(t, "ip", "-n", nsA, "link", "set", vethA, "up")
	if out := run(t, "ip", "-n", nsA, "-6", "addr", "show", "dev", vethA, "scope", "link"); !strings.Contains(out, "tentative") {
		t.Fatalf("the link-local address of %s is not tentative, the test cannot run:\n%s", vethA, out)
	}
	start := time.Now()
	v6 := "2001:db8::200"
	stop, stderr := startHelper(t, nsA, v6)
	t.Logf("IPv6 announced %v after the link came back", time.Since(start).Round(time.Millisecond))
	exec.Command("ip", "netns", "exec", nsB, "bash", "-c", "echo x > /dev/udp/"+v6+"/9").Run()
	var got string
	for time.Since(start) < 10*time.Second && got == "" {
		got = neighMAC(t, nsB, vethB, v6)
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if got != macA {
		t.Fatalf("neighbour table of B maps %s to %q, want %q\n%s", v6, got, macA, stderr.String())
	}
	log := stderr.String()
	if !strings.Contains(log, "NDP responder not started; retrying") || !strings.Contains(log, "responder started on retry") {
		t.Errorf("the NDP responder did not fail first and start on retry:\n%s", log)
	}
}

// neighState returns the states of B's neighbour entry for ip.
func neighState(t *testing.T, ns, dev, ip string) []string {
	var entries []struct {
		Dst   string   `json:"dst"`
		State []string `json:"state"`
	}
	out := run(t, "ip", "-n", ns, "-j", "neigh", "show", "to", ip, "dev", dev)
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("parse neighbours %q: %v", out, err)
	}
	for _, e := range entries {
		if e.Dst == ip {
			return e.State
		}
	}
	return nil
}

// neighMAC returns the MAC B's kernel maps ip to, or "".
func neighMAC(t *testing.T, ns, dev, ip string) string {
	var entries []struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	out := run(t, "ip", "-n", ns, "-j", "neigh", "show", "to", ip, "dev", dev)
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("parse neighbours %q: %v", out, err)
	}
	for _, e := range entries {
		if e.Dst == ip && e.LLAddr != "" {
			return e.LLAddr
		}
	}
	return ""
}
