package k8s

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// Informer transforms: what an informer keeps of each object is only what
// Herald's decisions read. An object is trimmed once, as it arrives, before
// it is stored and before any handler sees it; the cache then holds the
// trimmed copy. The caches are read-only: Herald never sends a cached object
// back to the API server (Service writes are merge patches that name their
// fields, configuration statuses are PUTs of the status subresource, which
// ignores the rest of the object and keeps the stored managedFields when the
// request has none).
//
// What each kind keeps (everything else is dropped, always including
// metadata.managedFields):
//
//   - Service: name, namespace, UID, resourceVersion, generation, creation
//     and deletion timestamps, labels, the annotations under herald.io/,
//     metallb.io/ and metallb.universe.tf/; spec type, loadBalancerClass,
//     loadBalancerIP, ipFamilies, ipFamilyPolicy, externalTrafficPolicy,
//     selector, and each port's protocol and number; status.loadBalancer.
//     A Service that is not of type LoadBalancer keeps only its type and
//     class in spec (the controller still sees it change type).
//   - EndpointSlice: the kubernetes.io/service-name label, and one endpoint
//     per node and set of conditions (nodeName, ready, serving,
//     terminating): addresses, ports, hints and targets are dropped.
//   - Node: labels, status.addresses and status.conditions (type and
//     status): images, capacity, node info and annotations are dropped.
//   - Pod: labels, spec.nodeName, status.phase and the pod IPs.
//   - Secret: data and type; annotations (kubectl's last-applied copy of the
//     data) are dropped.
//   - Namespace: labels.
//   - anything else (Herald's kinds, Leases): managedFields only.

// HeraldAnnotationPrefixes are the annotation prefixes a cached Service
// keeps: Herald's own and MetalLB's spellings of them.
var HeraldAnnotationPrefixes = []string{"herald.io/", "metallb.io/", "metallb.universe.tf/"}

// Transform is the informer transform described above (a
// cache.TransformFunc, for informers.WithTransform or
// SharedIndexInformer.SetTransform): it trims obj in place and returns it.
// Objects of other types pass with managedFields dropped; tombstones pass
// unchanged (their object was trimmed when it was stored).
func Transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		trimService(o)
	case *discoveryv1.EndpointSlice:
		trimEndpointSlice(o)
	case *corev1.Node:
		trimNode(o)
	case *corev1.Pod:
		trimPod(o)
	case *corev1.Secret:
		o.ObjectMeta = trimMeta(o.ObjectMeta, true)
		o.Annotations = nil
	case *corev1.Namespace:
		o.ObjectMeta = trimMeta(o.ObjectMeta, true)
		o.Annotations = nil
		o.Spec = corev1.NamespaceSpec{}
		o.Status = corev1.NamespaceStatus{Phase: o.Status.Phase}
	case cache.DeletedFinalStateUnknown:
		return obj, nil
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil
}

// trimMeta keeps the identity, versions and timestamps of an object, and its
// labels when labels is true; annotations are left to the caller.
func trimMeta(m metav1.ObjectMeta, labels bool) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		Generation:        m.Generation,
		CreationTimestamp: m.CreationTimestamp,
		DeletionTimestamp: m.DeletionTimestamp,
		Annotations:       m.Annotations,
	}
	if labels {
		out.Labels = m.Labels
	}
	return out
}

func trimService(s *corev1.Service) {
	s.ObjectMeta = trimMeta(s.ObjectMeta, true)
	var ann map[string]string
	for k, v := range s.Annotations {
		for _, p := range HeraldAnnotationPrefixes {
			if strings.HasPrefix(k, p) {
				if ann == nil {
					ann = map[string]string{}
				}
				ann[k] = v
				break
			}
		}
	}
	s.Annotations = ann
	sp := s.Spec
	s.Spec = corev1.ServiceSpec{Type: sp.Type, LoadBalancerClass: sp.LoadBalancerClass}
	if sp.Type == corev1.ServiceTypeLoadBalancer {
		s.Spec.LoadBalancerIP = sp.LoadBalancerIP
		s.Spec.IPFamilies = sp.IPFamilies
		s.Spec.IPFamilyPolicy = sp.IPFamilyPolicy
		s.Spec.ExternalTrafficPolicy = sp.ExternalTrafficPolicy
		s.Spec.Selector = sp.Selector
		if len(sp.Ports) > 0 {
			s.Spec.Ports = make([]corev1.ServicePort, len(sp.Ports))
			for i, p := range sp.Ports {
				s.Spec.Ports[i] = corev1.ServicePort{Protocol: p.Protocol, Port: p.Port}
			}
		}
	}
	s.Status = corev1.ServiceStatus{LoadBalancer: s.Status.LoadBalancer}
}

func trimEndpointSlice(es *discoveryv1.EndpointSlice) {
	name, ok := es.Labels[discoveryv1.LabelServiceName]
	es.ObjectMeta = trimMeta(es.ObjectMeta, false)
	es.Annotations = nil
	if ok {
		es.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	type seen struct {
		node                        string
		ready, serving, terminating int8
	}
	tri := func(b *bool) int8 {
		switch {
		case b == nil:
			return 0
		case *b:
			return 1
		}
		return 2
	}
	var kept []discoveryv1.Endpoint
	have := map[seen]bool{}
	for _, ep := range es.Endpoints {
		if ep.NodeName == nil || *ep.NodeName == "" {
			continue
		}
		c := ep.Conditions
		k := seen{*ep.NodeName, tri(c.Ready), tri(c.Serving), tri(c.Terminating)}
		if have[k] {
			continue
		}
		have[k] = true
		kept = append(kept, discoveryv1.Endpoint{NodeName: ep.NodeName, Conditions: c})
	}
	es.Endpoints = kept
	es.Ports = nil
}

func trimNode(n *corev1.Node) {
	n.ObjectMeta = trimMeta(n.ObjectMeta, true)
	n.Annotations = nil
	conds := make([]corev1.NodeCondition, len(n.Status.Conditions))
	for i, c := range n.Status.Conditions {
		conds[i] = corev1.NodeCondition{Type: c.Type, Status: c.Status}
	}
	n.Spec = corev1.NodeSpec{}
	n.Status = corev1.NodeStatus{Addresses: n.Status.Addresses, Conditions: conds}
}

func trimPod(p *corev1.Pod) {
	p.ObjectMeta = trimMeta(p.ObjectMeta, true)
	p.Annotations = nil
	p.Spec = corev1.PodSpec{NodeName: p.Spec.NodeName}
	p.Status = corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs}
}
