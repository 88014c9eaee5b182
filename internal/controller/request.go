package controller

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/config"
)

// Service annotations Herald reads and writes.
const (
	AnnotationPrefix          = "herald.io/"
	AnnotationLoadBalancerIPs = AnnotationPrefix + "loadBalancerIPs"
	AnnotationAddressPool     = AnnotationPrefix + "address-pool"
	AnnotationAllowSharedIP   = AnnotationPrefix + "allow-shared-ip"
	// AnnotationShareAcrossNamespaces: "true" lets the sharing key join
	// Services of other namespaces that set it too.
	AnnotationShareAcrossNamespaces = AnnotationPrefix + "allow-shared-ip-across-namespaces"
	// AnnotationAllocatedFromPool is written by the controller: the pool(s)
	// the Service's addresses come from.
	AnnotationAllocatedFromPool = AnnotationPrefix + "ip-allocated-from-pool"
)

// aliasPrefixes are MetalLB's spellings, accepted with a warning.
var aliasPrefixes = []string{"metallb.io/", "metallb.universe.tf/"}

// annotation returns the value of the herald.io/ annotation name, or of one
// of its MetalLB aliases; alias is the key that was used when it was one.
func annotation(svc *corev1.Service, key string) (value, alias string) {
	if v, ok := svc.Annotations[key]; ok {
		return v, ""
	}
	suffix := strings.TrimPrefix(key, AnnotationPrefix)
	for _, p := range aliasPrefixes {
		if v, ok := svc.Annotations[p+suffix]; ok {
			return v, p + suffix
		}
	}
	return "", ""
}

// RequestFor builds the allocator's request for a Service of type
// LoadBalancer. warnings name the MetalLB annotations it honoured; an error
// says which field of the Service is malformed.
func RequestFor(svc *corev1.Service, nsLabels map[string]string) (req allocator.Request, warnings []string, err error) {
	req = allocator.Request{
		Key:             svc.Namespace + "/" + svc.Name,
		Namespace:       svc.Namespace,
		NamespaceLabels: nsLabels,
		ServiceLabels:   svc.Labels,
	}
	use := func(key string) string {
		v, alias := annotation(svc, key)
		if alias != "" {
			warnings = append(warnings, fmt.Sprintf("annotation %s is MetalLB's spelling; use %s", alias, key))
		}
		return strings.TrimSpace(v)
	}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			req.Families = append(req.Families, config.IPv4)
		case corev1.IPv6Protocol:
			req.Families = append(req.Families, config.IPv6)
		}
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicyPreferDualStack:
			req.FamilyPolicy = allocator.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			req.FamilyPolicy = allocator.RequireDualStack
		}
	}
	if v := use(AnnotationLoadBalancerIPs); v != "" {
		for _, s := range strings.Split(v, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil {
				return req, warnings, fmt.Errorf("annotation %s: %q is not an IP address", AnnotationLoadBalancerIPs, strings.TrimSpace(s))
			}
			req.RequestedIPs = append(req.RequestedIPs, a.Unmap())
		}
	} else if svc.Spec.LoadBalancerIP != "" {
		a, err := netip.ParseAddr(svc.Spec.LoadBalancerIP)
		if err != nil {
			return req, warnings, fmt.Errorf("spec.loadBalancerIP: %q is not an IP address", svc.Spec.LoadBalancerIP)
		}
		req.RequestedIPs = []netip.Addr{a.Unmap()}
	}
	req.Pool = use(AnnotationAddressPool)
	req.SharingKey = use(AnnotationAllowSharedIP)
	req.ShareAcrossNamespaces = use(AnnotationShareAcrossNamespaces) == "true"
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		// Services that share an address under Local must send it to the
		// same pods, or a node would announce an IP for a Service that has
		// no endpoint there.
		if len(svc.Spec.Selector) > 0 {
			req.BackendKey = "selector:" + labels.SelectorFromSet(svc.Spec.Selector).String()
		} else {
			req.BackendKey = "service:" + req.Key
		}
	}
	for _, p := range svc.Spec.Ports {
		req.Ports = append(req.Ports, allocator.Port{Protocol: string(p.Protocol), Port: p.Port})
	}
	return req, warnings, nil
}

// Manages reports whether a Service is Herald's to serve: type
// LoadBalancer, with the class Herald was started for (lbClass "" means
// Services without a class).
func Manages(svc *corev1.Service, lbClass string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return lbClass == ""
	}
	return *svc.Spec.LoadBalancerClass == lbClass
}

// ingressFor returns the Service status Herald wants for addrs.
func ingressFor(addrs []netip.Addr) []corev1.LoadBalancerIngress {
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, corev1.LoadBalancerIngress{IP: a.String(), IPMode: &vip})
	}
	return out
}

// sameIngress reports whether a Service's status already shows addrs, in
// order, with ipMode VIP.
func sameIngress(have []corev1.LoadBalancerIngress, addrs []netip.Addr) bool {
	if len(have) != len(addrs) {
		return false
	}
	for i, in := range have {
		if in.IP != addrs[i].String() || in.Hostname != "" || in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP || len(in.Ports) > 0 {
			return false
		}
	}
	return true
}

// statusAddrs parses the IPs in a Service's status, skipping garbage.
func statusAddrs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// poolAnnotation is the value of herald.io/ip-allocated-from-pool for an
// allocation: its pools, in order, without repeats; "" for an address that
// left every pool.
func poolAnnotation(a allocator.Allocation) string {
	var names []string
	for _, p := range a.Pools {
		if p != "" && !slices.Contains(names, p) {
			names = append(names, p)
		}
	}
	return strings.Join(names, ",")
}
