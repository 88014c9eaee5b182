// Package cluster reads MetalLB's configuration from a running cluster,
// through the dynamic client, into a migrate.Input. It reads only: MetalLB's
// objects are left as they are, for a rollback.
package cluster

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/heraldlb/herald/internal/migrate"
)

// Resources returns the MetalLB resources Read lists, in order. BGPPeer
// comes in two versions: v1beta2 is read, and v1beta1 only where v1beta2
// is not served (MetalLB before 0.13.10).
func Resources() []schema.GroupVersionResource {
	v1 := func(r string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: r}
	}
	return []schema.GroupVersionResource{
		v1("ipaddresspools"), v1("l2advertisements"), v1("bgpadvertisements"),
		{Group: "metallb.io", Version: "v1beta2", Resource: "bgppeers"},
		v1("bfdprofiles"), v1("communities"),
	}
}

// Read adds to in every MetalLB configuration object in namespace, and the
// ConfigMap configMap there if it exists (empty skips it). A resource that
// the cluster does not serve (an older MetalLB) is skipped.
func Read(ctx context.Context, client dynamic.Interface, namespace, configMap string, in *migrate.Input) error {
	for _, gvr := range Resources() {
		list, err := client.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) && gvr.Resource == "bgppeers" {
			gvr.Version = "v1beta1"
			list, err = client.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
		}
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list %s in %s: %w", gvr.GroupResource(), namespace, err)
		}
		for _, item := range list.Items {
			if err := in.AddObject(item.Object); err != nil {
				return fmt.Errorf("%s %s/%s: %w", gvr.GroupResource(), namespace, item.GetName(), err)
			}
		}
	}
	if configMap == "" {
		return nil
	}
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	cm, err := client.Resource(configMaps).Namespace(namespace).Get(ctx, configMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get ConfigMap %s/%s: %w", namespace, configMap, err)
	}
	return in.AddObject(cm.Object)
}
