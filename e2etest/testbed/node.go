package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Node is a node namespace: eth0 on the fabric, a Node object, a kube-proxy,
// and pods routed from it.
type Node struct {
	NS
	// Name is the Node object's name (node1, node2, ...).
	Name string
	// Index is the node's number, from 1.
	Index int
	// IP and IP6 are its fabric addresses (IP6 only with DualStack).
	IP, IP6 netip.Addr
	// Pods are its pod namespaces.
	Pods []*Pod
	// KubeProxy is its kube-proxy process (nil with NoKubeProxy).
	KubeProxy *Process

	bed  *Bed
	real *realNode
}

// Interface is the name of the node's fabric interface.
const Interface = "eth0"

// FabricPort is the name of the node's port on the fabric bridge.
func (n *Node) FabricPort() string { return n.Name }

func (n *Node) plumb(ctx context.Context) error {
	b := n.bed
	if err := b.attachToFabric(ctx, n.NS, n.FabricPort(), n.IP, n.IP6); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	gw := FabricGateway
	if b.opts.Router {
		gw = RouterFabricIP
	}
	steps := [][]string{
		{"ip", "-n", n.nsName(), "route", "add", "default", "via", gw.String()},
		{"ip", "-n", n.nsName(), "route", "add", TransitPrefix.String(), "via", FabricGateway.String()},
		{"ip", "netns", "exec", n.nsName(), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	}
	if n.IP6.IsValid() {
		steps = append(steps, []string{"ip", "netns", "exec", n.nsName(), "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"})
		if b.opts.Router {
			steps = append(steps, []string{"ip", "-n", n.nsName(), "-6", "route", "add", "default", "via", RouterFabricIP6.String()})
		}
	}
	// Pod ranges of the other nodes are reached through those nodes, as
	// with a flat "host-gw" CNI.
	for k := 1; k <= b.opts.Nodes; k++ {
		if k == n.Index {
			continue
		}
		steps = append(steps, []string{"ip", "-n", n.nsName(), "route", "add", PodCIDR(k).String(), "via", NodeIP(k).String()})
		if n.IP6.IsValid() {
			steps = append(steps, []string{"ip", "-n", n.nsName(), "-6", "route", "add", PodCIDR6(k).String(), "via", NodeIP6(k).String()})
		}
	}
	if err := runAll(ctx, steps); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	for _, p := range n.Pods {
		if err := p.plumb(ctx); err != nil {
			return err
		}
	}
	return nil
}

// nsName is the namespace name (Node.Name is the Node object's name).
func (n *Node) nsName() string { return n.NS.Name }

// register creates the Node object with the node's fabric addresses as
// InternalIPs and a Ready condition (there is no kubelet to set them).
func (n *Node) register(ctx context.Context) error {
	b := n.bed
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name,
			Labels: map[string]string{
				"kubernetes.io/hostname": n.Name,
				"kubernetes.io/os":       "linux",
				"herald.io/testbed":      b.Prefix,
			},
		},
		Spec: corev1.NodeSpec{PodCIDR: PodCIDR(n.Index).String(), PodCIDRs: []string{PodCIDR(n.Index).String()}},
	}
	if n.IP6.IsValid() {
		node.Spec.PodCIDRs = append(node.Spec.PodCIDRs, PodCIDR6(n.Index).String())
	}
	created, err := b.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = b.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("node %s: create Node: %w", n.Name, err)
	}
	now := metav1.Now()
	created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.IP.String()}}
	if n.IP6.IsValid() {
		created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: n.IP6.String()})
	}
	created.Status.Addresses = append(created.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: n.Name})
	created.Status.Conditions = []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "TestBed", LastHeartbeatTime: now, LastTransitionTime: now},
		{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "TestBed", LastHeartbeatTime: now, LastTransitionTime: now},
	}
	if _, err := b.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node %s: status: %w", n.Name, err)
	}
	return nil
}

// startKubeProxy writes the node's KubeProxyConfiguration and starts
// kube-proxy in the node namespace, then waits for its first sync.
func (n *Node) startKubeProxy(ctx context.Context) error {
	b := n.bed
	kubeconfig := filepath.Join(b.RunDir, "secrets", "kubeconfig-kube-proxy")
	b.buildMu.Lock()
	if _, err := os.Stat(kubeconfig); err != nil {
		if err := b.writeKubeconfig(kubeconfig, "system:kube-proxy", b.proxyToken); err != nil {
			b.buildMu.Unlock()
			return err
		}
	}
	b.buildMu.Unlock()
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
mode: %s
conntrack:
  maxPerCore: 0
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: [primary]
`, kubeconfig, n.Name, b.opts.ProxyMode)
	cfgPath := filepath.Join(b.RunDir, "etc", "kube-proxy-"+n.Name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	bin, err := KubeBinary("kube-proxy")
	if err != nil {
		return err
	}
	p, err := b.startProcess(ctx, NSName(n.nsName()), "kube-proxy-"+n.Name, bin, "--config="+cfgPath, "--v=1")
	if err != nil {
		return err
	}
	n.KubeProxy = p
	hc := n.HTTPClient(2 * time.Second)
	return waitFor(ctx, 100*time.Millisecond, "kube-proxy on "+n.Name+" healthy", func(ctx context.Context) (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("kube-proxy on %s exited; see %s", n.Name, p.Log)
		}
		resp, err := hc.Get("http://127.0.0.1:10256/healthz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
}

// LinkDown cuts the node's cable: its port on the fabric bridge goes down,
// so eth0 in the node loses carrier.
func (n *Node) LinkDown(ctx context.Context) error {
	_, err := run(ctx, "ip", "-n", n.bed.Fabric.Name, "link", "set", n.FabricPort(), "down")
	return err
}

// LinkUp reconnects the node's cable.
func (n *Node) LinkUp(ctx context.Context) error {
	_, err := run(ctx, "ip", "-n", n.bed.Fabric.Name, "link", "set", n.FabricPort(), "up")
	return err
}

// Start starts bin with args inside the node namespace and records it; stop
// it with Process.Stop or Process.Kill. name is used for the log file and
// must be unique in the bed (for example "speaker-node1"). Like a DaemonSet
// pod with the downward API, the process gets NODE_NAME set to the node's
// name.
func (n *Node) Start(ctx context.Context, name, bin string, args ...string) (*Process, error) {
	return n.StartEnv(ctx, name, nil, bin, args...)
}

// StartEnv is Start with extra environment variables ("KEY=value").
func (n *Node) StartEnv(ctx context.Context, name string, env []string, bin string, args ...string) (*Process, error) {
	env = append([]string{"NODE_NAME=" + n.Name}, env...)
	return n.bed.startProcessEnv(ctx, NSName(n.nsName()), name, env, bin, args...)
}

// StartProcess starts bin inside ns (or the root namespace when ns is "")
// and records it; the bed stops it at teardown if nobody did before.
func (b *Bed) StartProcess(ctx context.Context, ns NSName, name, bin string, args ...string) (*Process, error) {
	return b.startProcess(ctx, ns, name, bin, args...)
}

// MAC returns the hardware address of the node's fabric interface, as
// another host's neighbour table shows it for the node.
func (n *Node) MAC(ctx context.Context) (string, error) {
	out, err := n.Output(ctx, "ip", "-j", "link", "show", "dev", Interface)
	if err != nil {
		return "", err
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return "", fmt.Errorf("node %s: parse ip link: %q: %v", n.Name, out, err)
	}
	return links[0].Address, nil
}

// NodeByMAC returns the node whose fabric interface has hardware address mac
// (any case), or nil: who answers ARP/NDP for an IP, as the client sees it.
func (b *Bed) NodeByMAC(ctx context.Context, mac string) (*Node, error) {
	for _, n := range b.Nodes {
		m, err := n.MAC(ctx)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(m, mac) {
			return n, nil
		}
	}
	return nil, nil
}
