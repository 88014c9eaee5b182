package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// MetalLB's annotations on Services: the one its controller writes, and
// the ones users write (under both of MetalLB's prefixes).
const (
	heraldAllocated = "herald.io/ip-allocated-from-pool"
)

// metallbPrefixes are MetalLB's annotation prefixes, current first.
var metallbPrefixes = []string{"metallb.io/", "metallb.universe.tf/"}

// writtenKeys are the annotations MetalLB's controller writes.
var writtenKeys = []string{"ip-allocated-from-pool"}

// inputKeys are the annotations users write, which Herald honours under
// herald.io/ as well.
var inputKeys = []string{"loadBalancerIPs", "address-pool", "allow-shared-ip"}

var (
	servicesGVR    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// CleanupOptions says what Cleanup removes.
type CleanupOptions struct {
	// Rename also moves the annotations users write (loadBalancerIPs,
	// address-pool, allow-shared-ip) from MetalLB's prefixes to herald.io/.
	// A rollback to MetalLB then no longer sees them.
	Rename bool
	// DryRun changes nothing, and returns what would change.
	DryRun bool
}

// Change is what Cleanup did (or would do) to one Service.
type Change struct {
	Namespace, Name string
	// Removed are the annotation keys removed; Renamed maps an old key to
	// the herald.io/ key it moved to.
	Removed []string
	Renamed map[string]string
	// Skipped says why the Service was left alone, if it was.
	Skipped string
}

// MetalLBControllers returns the MetalLB controller Deployments in
// namespace that still want replicas (MetalLB's manifests and Helm chart
// label them), as namespace/name.
func MetalLBControllers(ctx context.Context, client dynamic.Interface, namespace string) ([]string, error) {
	var out []string
	for _, sel := range []string{"app=metallb,component=controller", "app.kubernetes.io/name=metallb,app.kubernetes.io/component=controller"} {
		list, err := client.Resource(deploymentsGVR).Namespace(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, fmt.Errorf("list deployments in %s: %w", namespace, err)
		}
		for _, d := range list.Items {
			replicas, found, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
			if (!found || replicas > 0) && !slices.Contains(out, namespace+"/"+d.GetName()) {
				out = append(out, namespace+"/"+d.GetName())
			}
		}
	}
	return out, nil
}

// Cleanup removes MetalLB's ip-allocated-from-pool annotation (both
// prefixes) from every Service that Herald's controller has taken over
// (it carries herald.io/ip-allocated-from-pool), and with Rename moves the
// user-written MetalLB annotations to herald.io/. A Service whose
// herald.io/ key already holds a different value than the MetalLB key it
// would rename is left alone for that key (Herald reads herald.io/ first).
// Services Herald does not serve (no herald.io/ip-allocated-from-pool, for
// example another loadBalancerClass) are not touched.
func Cleanup(ctx context.Context, client dynamic.Interface, opts CleanupOptions) ([]Change, error) {
	list, err := client.Resource(servicesGVR).Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	var changes []Change
	for _, svc := range list.Items {
		ann := svc.GetAnnotations()
		if len(ann) == 0 {
			continue
		}
		ch := Change{Namespace: svc.GetNamespace(), Name: svc.GetName(), Renamed: map[string]string{}}
		patch := map[string]any{}
		for _, prefix := range metallbPrefixes {
			for _, k := range writtenKeys {
				if _, ok := ann[prefix+k]; ok {
					patch[prefix+k] = nil
					ch.Removed = append(ch.Removed, prefix+k)
				}
			}
			if !opts.Rename {
				continue
			}
			for _, k := range inputKeys {
				v, ok := ann[prefix+k]
				if !ok {
					continue
				}
				to := "herald.io/" + k
				if cur, set := ann[to]; set && cur != v {
					continue // herald.io/ wins already; keep MetalLB's for a rollback
				}
				if pending, set := patch[to]; set && pending != v {
					continue // both MetalLB prefixes, with different values
				}
				patch[to] = v
				patch[prefix+k] = nil
				ch.Renamed[prefix+k] = to
			}
		}
		if len(patch) == 0 {
			continue
		}
		if _, ok := ann[heraldAllocated]; !ok {
			changes = append(changes, Change{Namespace: ch.Namespace, Name: ch.Name,
				Skipped: "no " + heraldAllocated + ": Herald's controller does not serve it (yet)"})
			continue
		}
		slices.Sort(ch.Removed)
		changes = append(changes, ch)
		if opts.DryRun {
			continue
		}
		data, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": patch}})
		if err != nil {
			return changes, err
		}
		if _, err := client.Resource(servicesGVR).Namespace(ch.Namespace).Patch(ctx, ch.Name, types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
			return changes, fmt.Errorf("service %s/%s: %w", ch.Namespace, ch.Name, err)
		}
	}
	return changes, nil
}
