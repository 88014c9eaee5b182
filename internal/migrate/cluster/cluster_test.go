package cluster

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/heraldlb/herald/internal/migrate"
)

func obj(apiVersion, kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
}

// newClient returns a fake dynamic client that serves MetalLB's resources
// and ConfigMaps, holding objs.
func newClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	listKinds := map[schema.GroupVersionResource]string{
		{Version: "v1", Resource: "configmaps"}:                         "ConfigMapList",
		{Group: "metallb.io", Version: "v1beta1", Resource: "bgppeers"}: "BGPPeerList",
	}
	kinds := map[string]string{"ipaddresspools": "IPAddressPoolList", "l2advertisements": "L2AdvertisementList",
		"bgpadvertisements": "BGPAdvertisementList", "bgppeers": "BGPPeerList", "bfdprofiles": "BFDProfileList", "communities": "CommunityList"}
	for _, gvr := range Resources() {
		listKinds[gvr] = kinds[gvr.Resource]
	}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
}

// TestRead reads a cluster's MetalLB objects through the dynamic client's
// seam, and converts them.
func TestRead(t *testing.T) {
	pool := obj("metallb.io/v1beta1", "IPAddressPool", "metallb-system", "lan", map[string]any{"addresses": []any{"192.0.2.0/24"}})
	l2 := obj("metallb.io/v1beta1", "L2Advertisement", "metallb-system", "lan", map[string]any{"ipAddressPools": []any{"lan"}})
	other := obj("metallb.io/v1beta1", "IPAddressPool", "elsewhere", "ignored", map[string]any{"addresses": []any{"198.51.100.0/24"}})
	peerV2 := obj("metallb.io/v1beta2", "BGPPeer", "metallb-system", "tor", map[string]any{"myASN": int64(1), "peerASN": int64(2), "peerAddress": "10.0.0.1", "disableMP": false})
	peerV1 := obj("metallb.io/v1beta1", "BGPPeer", "metallb-system", "old", map[string]any{"myASN": int64(1), "peerASN": int64(2), "peerAddress": "10.0.0.2"})
	cm := obj("v1", "ConfigMap", "metallb-system", "config", nil)
	cm.Object["data"] = map[string]any{"config": "address-pools:\n- name: legacy\n  protocol: layer2\n  addresses: [203.0.113.0/28]\n"}

	for _, tc := range []struct {
		desc      string
		objs      []runtime.Object
		noV1beta2 bool
		configMap string
		wantPools int
		wantPeers []string
		wantL2    int
	}{
		{desc: "custom resources in MetalLB's namespace only", objs: []runtime.Object{pool, l2, other, peerV2}, configMap: "config", wantPools: 1, wantPeers: []string{"tor"}, wantL2: 1},
		{desc: "BGPPeer v1beta1 where v1beta2 is not served", objs: []runtime.Object{peerV1}, noV1beta2: true, wantPeers: []string{"old"}},
		{desc: "the pre-0.13 ConfigMap", objs: []runtime.Object{cm}, configMap: "config", wantPools: 1, wantL2: 1},
		{desc: "the ConfigMap skipped", objs: []runtime.Object{cm}, configMap: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			client := newClient(tc.objs...)
			if tc.noV1beta2 {
				client.PrependReactor("list", "bgppeers", func(a k8stesting.Action) (bool, runtime.Object, error) {
					if a.GetResource().Version == "v1beta2" {
						return true, nil, apierrors.NewNotFound(a.GetResource().GroupResource(), "")
					}
					return false, nil, nil
				})
			}
			var in migrate.Input
			if err := Read(context.Background(), client, "metallb-system", tc.configMap, &in); err != nil {
				t.Fatal(err)
			}
			res := migrate.Convert(&in)
			if got := len(res.Output.Pools); got != tc.wantPools {
				t.Errorf("%d pools, want %d", got, tc.wantPools)
			}
			if got := len(res.Output.L2Advertisements); got != tc.wantL2 {
				t.Errorf("%d L2 advertisements, want %d", got, tc.wantL2)
			}
			var peers []string
			for _, p := range res.Output.Peers {
				peers = append(peers, p.Name)
			}
			if len(peers) != len(tc.wantPeers) || len(peers) > 0 && peers[0] != tc.wantPeers[0] {
				t.Errorf("peers %v, want %v", peers, tc.wantPeers)
			}
			for _, a := range client.Actions() {
				if a.GetVerb() != "list" && a.GetVerb() != "get" {
					t.Errorf("wrote to the cluster: %s %s", a.GetVerb(), a.GetResource())
				}
			}
		})
	}
}
