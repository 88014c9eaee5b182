package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ServiceSpec describes a backend Service for BackendService.
type ServiceSpec struct {
	// Namespace defaults to "default"; Name is required.
	Namespace, Name string
	// Pods are the backends; EndpointSlices point at their IPs.
	Pods []*Pod
	// Port is the Service port (default 80); the target is PodPort.
	Port int32
	// Type defaults to LoadBalancer.
	Type corev1.ServiceType
	// ExternalTrafficPolicy defaults to Cluster.
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy
	// DualStack requests both families (RequireDualStack).
	DualStack bool
	// Mutate, if set, edits the Service before it is created (annotations,
	// loadBalancerClass, ...).
	Mutate func(*corev1.Service)
}

// BackendService creates a Service without selector and EndpointSlices
// (one per family) that point at the given pods, as the EndpointSlice
// controller would if there were kubelets.
func (b *Bed) BackendService(ctx context.Context, spec ServiceSpec) (*corev1.Service, error) {
	if spec.Namespace == "" {
		spec.Namespace = metav1.NamespaceDefault
	}
	if spec.Port == 0 {
		spec.Port = 80
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeLoadBalancer
	}
	if err := b.EnsureNamespace(ctx, spec.Namespace); err != nil {
		return nil, err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: spec.Namespace, Name: spec.Name},
		Spec: corev1.ServiceSpec{
			Type:  spec.Type,
			Ports: []corev1.ServicePort{{Name: "http", Port: spec.Port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(PodPort)}},
		},
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer || spec.Type == corev1.ServiceTypeNodePort {
		svc.Spec.ExternalTrafficPolicy = spec.ExternalTrafficPolicy
		if svc.Spec.ExternalTrafficPolicy == "" {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}
	}
	if spec.DualStack {
		pol := corev1.IPFamilyPolicyRequireDualStack
		svc.Spec.IPFamilyPolicy = &pol
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	}
	if spec.Mutate != nil {
		spec.Mutate(svc)
	}
	created, err := b.Client.CoreV1().Services(spec.Namespace).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	if err := b.SetEndpoints(ctx, created, spec.Pods); err != nil {
		return created, err
	}
	return created, nil
}

// EnsureNamespace creates a namespace if it does not exist.
func (b *Bed) EnsureNamespace(ctx context.Context, name string) error {
	_, err := b.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	return nil
}

// SetEndpoints replaces the Service's EndpointSlices with ready endpoints at
// the given pods (an empty list leaves the Service without endpoints).
func (b *Bed) SetEndpoints(ctx context.Context, svc *corev1.Service, pods []*Pod) error {
	port := intstr.FromInt32(PodPort)
	if len(svc.Spec.Ports) > 0 {
		port = svc.Spec.Ports[0].TargetPort
	}
	for _, fam := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
		name := svc.Name + "-" + map[discoveryv1.AddressType]string{discoveryv1.AddressTypeIPv4: "v4", discoveryv1.AddressTypeIPv6: "v6"}[fam]
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: svc.Namespace,
				Name:      name,
				Labels: map[string]string{
					discoveryv1.LabelServiceName: svc.Name,
					discoveryv1.LabelManagedBy:   "herald-testbed",
				},
			},
			AddressType: fam,
			Ports: []discoveryv1.EndpointPort{{
				Name:     ptr(svc.Spec.Ports[0].Name),
				Port:     ptr(port.IntVal),
				Protocol: ptr(corev1.ProtocolTCP),
			}},
		}
		for _, p := range pods {
			ip := p.IP
			if fam == discoveryv1.AddressTypeIPv6 {
				ip = p.IP6
			}
			if !ip.IsValid() {
				continue
			}
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{ip.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)},
				NodeName:   ptr(p.Node.Name),
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: svc.Namespace, Name: p.Name},
			})
		}
		if fam == discoveryv1.AddressTypeIPv6 && len(slice.Endpoints) == 0 {
			err := b.Client.DiscoveryV1().EndpointSlices(svc.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			continue
		}
		cur, err := b.Client.DiscoveryV1().EndpointSlices(svc.Namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = b.Client.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, slice, metav1.CreateOptions{})
		case err == nil:
			slice.ResourceVersion = cur.ResourceVersion
			_, err = b.Client.DiscoveryV1().EndpointSlices(svc.Namespace).Update(ctx, slice, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("endpointslice %s/%s: %w", svc.Namespace, name, err)
		}
	}
	return nil
}

// SetLoadBalancerIngress writes status.loadBalancer.ingress of a Service as
// admin, standing in for Herald's controller.
func (b *Bed) SetLoadBalancerIngress(ctx context.Context, namespace, name string, ips ...netip.Addr) (*corev1.Service, error) {
	var ing []corev1.LoadBalancerIngress
	for _, ip := range ips {
		ing = append(ing, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: ptr(corev1.LoadBalancerIPModeVIP)})
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": ing}}})
	if err != nil {
		return nil, err
	}
	svc, err := b.Client.CoreV1().Services(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: patch status: %w", namespace, name, err)
	}
	return svc, nil
}

func ptr[T any](v T) *T { return &v }
