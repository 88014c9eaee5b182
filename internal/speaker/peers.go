package speaker

import (
	"net"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// PeerSource says where the other speakers' memberlist ports are. The
// speaker joins the addresses it returns whenever they change, and retries
// while it is alone.
type PeerSource interface {
	// Peers returns the addresses ("host:port") of the other speakers,
	// sorted. It reads informer caches only.
	Peers() ([]string, error)
}

// NodePeers finds the peers as the InternalIP of every Node but this one,
// with the memberlist port: right when a speaker runs on every node (and on
// the test bed, which has no pods). Nodes without a speaker only cost a
// refused connection per join attempt.
type NodePeers struct {
	Nodes corelisters.NodeLister
	// Self is this node's name.
	Self string
	// Port is the memberlist port every speaker listens on.
	Port int
}

// Peers implements [PeerSource].
func (p *NodePeers) Peers() ([]string, error) {
	nodes, err := p.Nodes.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		if n.Name == p.Self {
			continue
		}
		if ip := NodeInternalIP(n); ip != "" {
			out = append(out, net.JoinHostPort(ip, strconv.Itoa(p.Port)))
		}
	}
	slices.Sort(out)
	return out, nil
}

// PodPeers finds the peers as the speaker pods (selected by label in the
// speaker's namespace) that run on other nodes and have an IP: the speakers
// run on the host network, so a pod IP is its node's IP.
type PodPeers struct {
	Pods corelisters.PodNamespaceLister
	// Selector selects the speaker pods.
	Selector labels.Selector
	// Self is this node's name.
	Self string
	// Port is the memberlist port every speaker listens on.
	Port int
}

// Peers implements [PeerSource].
func (p *PodPeers) Peers() ([]string, error) {
	pods, err := p.Pods.List(p.Selector)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pod := range pods {
		if pod.Spec.NodeName == p.Self || pod.Status.PodIP == "" || pod.DeletionTimestamp != nil ||
			pod.Status.Phase != corev1.PodRunning {
			continue
		}
		out = append(out, net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(p.Port)))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// NodeInternalIP returns the node's first InternalIP, or "".
func NodeInternalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && a.Address != "" {
			return a.Address
		}
	}
	return ""
}
