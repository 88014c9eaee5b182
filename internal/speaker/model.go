package speaker

import (
	"encoding/json"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/election"
	"github.com/heraldlb/herald/internal/membership"
)

// LabelExcludeFromLB is the well-known node label that keeps a node out of
// external load balancers.
const LabelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"

// ServiceInfo is what the speaker needs of one Service with load-balancer
// IPs: plain values extracted from the API object and its EndpointSlices.
type ServiceInfo struct {
	// Name is "namespace/name".
	Name string
	// Labels are the Service's labels, for serviceSelectors.
	Labels map[string]string
	// IPs are the IPs in status.loadBalancer.ingress, sorted, without
	// duplicates.
	IPs []netip.Addr
	// LocalTraffic is true under externalTrafficPolicy: Local.
	LocalTraffic bool
	// EndpointNodes are the nodes with a ready or serving endpoint; set only
	// when LocalTraffic is true.
	EndpointNodes election.NodeSet
}

// ServiceInfoOf extracts a Service's election input. It returns false when
// the speaker must not announce the Service: it is not of type LoadBalancer,
// its loadBalancerClass is not lbClass (an empty lbClass takes the Services
// without a class), or it has no IP yet. slices are the Service's
// EndpointSlices; they are read only under externalTrafficPolicy: Local.
func ServiceInfoOf(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, lbClass string) (ServiceInfo, bool) {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return ServiceInfo{}, false
	}
	class := ""
	if svc.Spec.LoadBalancerClass != nil {
		class = *svc.Spec.LoadBalancerClass
	}
	if class != lbClass {
		return ServiceInfo{}, false
	}
	ips := IngressIPs(svc)
	if len(ips) == 0 {
		return ServiceInfo{}, false
	}
	info := ServiceInfo{
		Name:   svc.Namespace + "/" + svc.Name,
		Labels: svc.Labels,
		IPs:    ips,
	}
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		info.LocalTraffic = true
		info.EndpointNodes = EndpointNodes(slices)
	}
	return info, true
}

// IngressIPs returns the valid IPs of a Service's status.loadBalancer.ingress,
// sorted and without duplicates. Hostnames and unparsable entries are
// skipped.
func IngressIPs(svc *corev1.Service) []netip.Addr {
	var ips []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(in.IP)
		if err != nil {
			continue
		}
		ips = append(ips, ip.Unmap())
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return slices.Compact(ips)
}

// EndpointNodes returns the nodes that hold an endpoint that is ready or
// serving (a nil condition counts as true, as the API says), across the
// given EndpointSlices.
func EndpointNodes(eps []*discoveryv1.EndpointSlice) election.NodeSet {
	nodes := make(election.NodeSet)
	for _, es := range eps {
		for i := range es.Endpoints {
			ep := &es.Endpoints[i]
			if ep.NodeName == nil || *ep.NodeName == "" {
				continue
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ep.Conditions.Serving != nil && *ep.Conditions.Serving
			if ready || serving {
				nodes[*ep.NodeName] = struct{}{}
			}
		}
	}
	return nodes
}

// NodeOf builds a candidate from the Kubernetes Node and the interfaces the
// node's speaker publishes (nil: unknown, treated as every interface),
// honouring the exclusion label: [Candidate] without ignoreExcludeLB.
func NodeOf(n *corev1.Node, interfaces []string) election.Node {
	return Candidate(n, interfaces, false)
}

// Candidate builds a candidate from the Kubernetes Node and the interfaces
// the node's speaker publishes (nil: unknown, treated as every interface). With
// ignoreExcludeLB the label node.kubernetes.io/exclude-from-external-load-balancers
// is ignored (the speaker's --ignore-exclude-lb, for clusters whose only
// nodes are control-plane nodes that kubeadm, kind or Talos label so);
// NetworkUnavailable still excludes.
func Candidate(n *corev1.Node, interfaces []string, ignoreExcludeLB bool) election.Node {
	excluded := false
	if _, ok := n.Labels[LabelExcludeFromLB]; ok && !ignoreExcludeLB {
		excluded = true
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			excluded = true
		}
	}
	return election.Node{Name: n.Name, Labels: n.Labels, Interfaces: interfaces, Excluded: excluded}
}

// sameNode reports whether two candidates elect alike.
func sameNode(a, b election.Node) bool {
	return a.Name == b.Name && a.Excluded == b.Excluded && labels.Equals(a.Labels, b.Labels) &&
		(a.Interfaces == nil) == (b.Interfaces == nil) && slices.Equal(a.Interfaces, b.Interfaces)
}

// memberMeta is what a speaker publishes in its memberlist metadata. The
// field names are short because memberlist allows 512 bytes.
type memberMeta struct {
	// Interfaces are the names of the interfaces the node can announce from.
	Interfaces []string `json:"if"`
	// Keys are the member's memberlist key fingerprints, which gate a key
	// rotation (see membership.Cluster.Rotate). Older speakers ignore them.
	Keys *membership.KeyState `json:"k,omitempty"`
}

// maxMeta is memberlist's metadata limit.
const maxMeta = 512

// EncodeMeta returns the memberlist metadata that publishes interfaces and
// the key state (nil when encryption is off). When the interfaces do not
// fit, it publishes none, which the others read as "every interface": a
// node never loses IPs because it has many links.
func EncodeMeta(interfaces []string, keys *membership.KeyState) []byte {
	if interfaces == nil {
		interfaces = []string{}
	}
	b, err := json.Marshal(memberMeta{Interfaces: interfaces, Keys: keys})
	if err == nil && len(b) <= maxMeta {
		return b
	}
	if keys == nil {
		return nil
	}
	b, err = json.Marshal(memberMeta{Keys: keys})
	if err != nil || len(b) > maxMeta {
		return nil
	}
	return b
}

// DecodeKeys returns the key state a member publishes, or nil (unknown).
func DecodeKeys(b []byte) *membership.KeyState {
	if len(b) == 0 {
		return nil
	}
	var m memberMeta
	if err := json.Unmarshal(b, &m); err != nil || m.Keys == nil || m.Keys.Primary == "" {
		return nil
	}
	return m.Keys
}

// DecodeMeta returns the interfaces a member publishes, or nil (unknown)
// when its metadata is empty or unreadable.
func DecodeMeta(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	var m memberMeta
	if err := json.Unmarshal(b, &m); err != nil || m.Interfaces == nil {
		return nil
	}
	return m.Interfaces
}

// Advertisements are the layer 2 advertisements of one configuration
// snapshot, converted once into election terms.
type Advertisements struct {
	cfg  *config.Config
	advs []advertisement
}

type advertisement struct {
	src   *config.L2Advertisement
	pools []string
	elect election.Advertisement
}

// NewAdvertisements converts the snapshot's L2Advertisements. A nil cfg
// has none.
func NewAdvertisements(cfg *config.Config) *Advertisements {
	a := &Advertisements{cfg: cfg}
	if cfg == nil {
		return a
	}
	for _, l2 := range cfg.L2Advertisements {
		ad := advertisement{src: l2, pools: l2.Pools, elect: election.Advertisement{Interfaces: l2.Interfaces}}
		if sels := l2.NodeSelectors; len(sels) > 0 {
			ad.elect.Selects = func(n *election.Node) bool {
				set := labels.Set(n.Labels)
				for _, s := range sels {
					if s.Matches(set) {
						return true
					}
				}
				return false
			}
		}
		if sels := l2.PreferredNodeSelectors; len(sels) > 0 {
			ad.elect.Prefers = func(n *election.Node) bool {
				set := labels.Set(n.Labels)
				for _, s := range sels {
					if s.Matches(set) {
						return true
					}
				}
				return false
			}
		}
		a.advs = append(a.advs, ad)
	}
	return a
}

func matchesAny(sels []labels.Selector, l map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	set := labels.Set(l)
	for _, s := range sels {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// Elect builds the election input of one group of Services that share
// IPs (see [Groups]): the advertisements whose pools hold one of a member's
// IPs and whose service selectors select that member, and the IPs that
// some advertisement covers, which are the ones announced. A node is
// eligible if an advertisement of any of the group's IPs admits it, and,
// when a member uses externalTrafficPolicy: Local, if it has an endpoint of
// every such member. ips is nil when no advertisement covers the group.
func (a *Advertisements) Elect(key string, members []*ServiceInfo) (svc election.Service, ips []netip.Addr) {
	svc.Key = key
	if a.cfg == nil {
		return svc, nil
	}
	used := make([]bool, len(a.advs))
	for _, m := range members {
		for _, ip := range m.IPs {
			pool := a.cfg.PoolOf(ip)
			if pool == nil {
				continue
			}
			covered := false
			for i := range a.advs {
				ad := &a.advs[i]
				if !slices.Contains(ad.pools, pool.Name) || !matchesAny(ad.src.ServiceSelectors, m.Labels) {
					continue
				}
				covered = true
				if !used[i] {
					used[i] = true
					svc.Advertisements = append(svc.Advertisements, ad.elect)
				}
			}
			if covered && !slices.Contains(ips, ip) {
				ips = append(ips, ip)
			}
		}
		if m.LocalTraffic {
			if !svc.LocalTraffic {
				svc.LocalTraffic = true
				svc.EndpointNodes = make(election.NodeSet, len(m.EndpointNodes))
				for n := range m.EndpointNodes {
					svc.EndpointNodes[n] = struct{}{}
				}
			} else {
				for n := range svc.EndpointNodes {
					if !m.EndpointNodes.Has(n) {
						delete(svc.EndpointNodes, n)
					}
				}
			}
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	return svc, ips
}
