package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// PodPort is the port the pod HTTP server listens on.
const PodPort = 8080

// Pod is a pod namespace routed from its node, running the pod HTTP server.
type Pod struct {
	NS
	// Name is the pod's name (node1-pod1, ...); the server answers with it.
	Name string
	// Node is the node the pod runs on.
	Node *Node
	// Index is the pod's number on its node, from 1.
	Index int
	// IP and IP6 are the pod's addresses.
	IP, IP6 netip.Addr
	// Server is the pod's HTTP server process.
	Server *Process

	hostIf string
}

// plumb creates the pod namespace the way Calico does: a /32 route on the
// node to the pod's veth with proxy ARP, and a default route via
// 169.254.1.1 in the pod.
func (p *Pod) plumb(ctx context.Context) error {
	node := p.Node.nsName()
	steps := [][]string{
		{"ip", "netns", "add", p.NS.Name},
		{"ip", "link", "add", "eth0", "netns", p.NS.Name, "type", "veth", "peer", "name", p.hostIf, "netns", node},
		{"ip", "-n", p.NS.Name, "link", "set", "lo", "up"},
		{"ip", "-n", p.NS.Name, "addr", "add", netip.PrefixFrom(p.IP, 32).String(), "dev", "eth0"},
		{"ip", "-n", p.NS.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", p.NS.Name, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"},
		{"ip", "-n", p.NS.Name, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"},
		// Proxy ARP answers are delayed up to 0.8 s by default; Calico
		// turns the delay off too.
		{"ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.conf." + p.hostIf + ".proxy_arp=1", "net.ipv4.neigh." + p.hostIf + ".proxy_delay=0"},
		{"ip", "-n", node, "link", "set", p.hostIf, "up"},
		{"ip", "-n", node, "route", "add", netip.PrefixFrom(p.IP, 32).String(), "dev", p.hostIf},
	}
	if p.IP6.IsValid() {
		steps = append(steps,
			[]string{"ip", "-n", node, "addr", "add", "fe80::1/64", "dev", p.hostIf, "nodad"},
			[]string{"ip", "-n", p.NS.Name, "addr", "add", netip.PrefixFrom(p.IP6, 128).String(), "dev", "eth0", "nodad"},
			[]string{"ip", "-n", p.NS.Name, "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"},
			[]string{"ip", "-n", node, "-6", "route", "add", netip.PrefixFrom(p.IP6, 128).String(), "dev", p.hostIf},
		)
	}
	if err := runAll(ctx, steps); err != nil {
		return fmt.Errorf("pod %s: %w", p.Name, err)
	}
	return nil
}

// start runs the pod HTTP server and waits until it answers.
func (p *Pod) start(ctx context.Context) error {
	b := p.Node.bed
	proc, err := b.startProcess(ctx, NSName(p.NS.Name), "podserver-"+p.Name, b.podserver,
		"-name", p.Name, "-listen", fmt.Sprintf(":%d", PodPort))
	if err != nil {
		return err
	}
	p.Server = proc
	hc := p.HTTPClient(time.Second)
	return waitFor(ctx, 20*time.Millisecond, "pod server "+p.Name, func(ctx context.Context) (bool, error) {
		if !proc.Running() {
			return false, fmt.Errorf("pod server %s exited; see %s", p.Name, proc.Log)
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", PodPort))
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return true, nil
	})
}

// Reply is what the pod HTTP server answers.
type Reply struct {
	// Pod is the name of the pod that answered.
	Pod string `json:"pod"`
	// Client is the source address (ip:port) the pod saw.
	Client string `json:"client"`
}

// ClientIP returns the address part of Client.
func (r Reply) ClientIP() netip.Addr {
	ap, err := netip.ParseAddrPort(r.Client)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// HTTPClient returns an HTTP client whose connections are dialled from
// inside the namespace, without keep-alives (every request is a new flow).
func (n NS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       n.DialContext,
			DisableKeepAlives: true,
		},
	}
}

// Get asks the pod server at addr (ip:port, or [ip6]:port) from inside the
// namespace, and returns which pod answered and the source address it saw.
func (n NS) Get(ctx context.Context, addr string) (Reply, error) {
	hc := n.HTTPClient(2 * time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return Reply{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Reply{}, fmt.Errorf("from %s: %w", n.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return Reply{}, fmt.Errorf("from %s: %w", n.Name, err)
	}
	var r Reply
	if err := json.Unmarshal(body, &r); err != nil {
		return Reply{}, fmt.Errorf("from %s: GET %s: %q: %w", n.Name, addr, body, err)
	}
	return r, nil
}

// HostPort joins an address and a port for Get and Probe.
func HostPort(ip netip.Addr, port int) string {
	return net.JoinHostPort(ip.String(), fmt.Sprint(port))
}
