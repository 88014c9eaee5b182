package cluster

import (
	"context"
	"maps"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func service(ns, name string, ann map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Service"}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetAnnotations(ann)
	return u
}

func deployment(name string, replicas int64, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"spec": map[string]any{"replicas": replicas}}}
	u.SetNamespace("metallb-system")
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

func cleanupClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		servicesGVR: "ServiceList", deploymentsGVR: "DeploymentList",
	}, objs...)
}

// TestCleanup removes MetalLB's written annotation from the Services Herald
// serves, renames the input annotations only when asked, and leaves the
// Services Herald does not serve alone.
func TestCleanup(t *testing.T) {
	objs := func() []runtime.Object {
		return []runtime.Object{
			service("default", "served", map[string]string{
				"herald.io/ip-allocated-from-pool": "lan", "metallb.io/ip-allocated-from-pool": "lan",
				"metallb.universe.tf/ip-allocated-from-pool": "lan", "metallb.io/address-pool": "lan", "keep": "me",
			}),
			service("other", "not-served", map[string]string{"metallb.io/ip-allocated-from-pool": "lan"}),
			service("default", "clean", map[string]string{"herald.io/ip-allocated-from-pool": "lan"}),
			service("default", "conflict", map[string]string{"herald.io/ip-allocated-from-pool": "lan",
				"herald.io/address-pool": "wan", "metallb.io/address-pool": "lan"}),
		}
	}
	get := func(t *testing.T, c *dynamicfake.FakeDynamicClient, ns, name string) map[string]string {
		u, err := c.Resource(servicesGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return u.GetAnnotations()
	}
	for _, tc := range []struct {
		desc         string
		opts         CleanupOptions
		wantServed   map[string]string
		wantConflict map[string]string
	}{
		{
			desc:         "remove",
			wantServed:   map[string]string{"herald.io/ip-allocated-from-pool": "lan", "metallb.io/address-pool": "lan", "keep": "me"},
			wantConflict: map[string]string{"herald.io/ip-allocated-from-pool": "lan", "herald.io/address-pool": "wan", "metallb.io/address-pool": "lan"},
		},
		{
			desc:         "rename",
			opts:         CleanupOptions{Rename: true},
			wantServed:   map[string]string{"herald.io/ip-allocated-from-pool": "lan", "herald.io/address-pool": "lan", "keep": "me"},
			wantConflict: map[string]string{"herald.io/ip-allocated-from-pool": "lan", "herald.io/address-pool": "wan", "metallb.io/address-pool": "lan"},
		},
		{
			desc: "dry run",
			opts: CleanupOptions{Rename: true, DryRun: true},
			wantServed: map[string]string{"herald.io/ip-allocated-from-pool": "lan", "metallb.io/ip-allocated-from-pool": "lan",
				"metallb.universe.tf/ip-allocated-from-pool": "lan", "metallb.io/address-pool": "lan", "keep": "me"},
			wantConflict: map[string]string{"herald.io/ip-allocated-from-pool": "lan", "herald.io/address-pool": "wan", "metallb.io/address-pool": "lan"},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := cleanupClient(objs()...)
			changes, err := Cleanup(context.Background(), c, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, c, "default", "served"); !maps.Equal(got, tc.wantServed) {
				t.Errorf("served: %v, want %v", got, tc.wantServed)
			}
			if got := get(t, c, "default", "conflict"); !maps.Equal(got, tc.wantConflict) {
				t.Errorf("conflict: %v, want %v", got, tc.wantConflict)
			}
			if got := get(t, c, "other", "not-served"); got["metallb.io/ip-allocated-from-pool"] != "lan" {
				t.Errorf("a Service Herald does not serve was changed: %v", got)
			}
			skipped := 0
			for _, ch := range changes {
				if ch.Skipped != "" {
					skipped++
					if ch.Name != "not-served" {
						t.Errorf("skipped %s", ch.Name)
					}
				}
			}
			if skipped != 1 {
				t.Errorf("%d skipped, want 1 (not-served): %+v", skipped, changes)
			}
		})
	}
}

// TestMetalLBControllers finds MetalLB's controller Deployment by the
// labels of its manifests and of its Helm chart, unless scaled to 0.
func TestMetalLBControllers(t *testing.T) {
	c := cleanupClient(
		deployment("controller", 1, map[string]string{"app": "metallb", "component": "controller"}),
		deployment("metallb-controller", 0, map[string]string{"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "controller"}),
		deployment("unrelated", 3, map[string]string{"app": "web"}),
	)
	got, err := MetalLBControllers(context.Background(), c, "metallb-system")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "metallb-system/controller" {
		t.Errorf("got %v, want [metallb-system/controller]", got)
	}
}
