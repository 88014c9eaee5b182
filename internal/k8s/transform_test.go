package k8s_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/controller"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/speaker"
)

// The fixtures are what the API server returns for objects created with
// kubectl apply and then written by Herald and the cluster's controllers:
// last-applied annotations, managedFields, node images, many endpoints.

// announcementJSON is a ServiceAnnouncement as the API server returns it
// after a speaker's server-side apply: one managedFields entry.
const announcementJSON = `{"apiVersion":"herald.io/v1beta1","kind":"ServiceAnnouncement","metadata":{
"name":"web-frontend.l2","namespace":"shop","uid":"6f1c2a4e-9b7d-4c1e-8a2f-3d5e6f7a8b9c","resourceVersion":"1834567","generation":1,
"creationTimestamp":"2026-12-03T09:00:00Z",
"labels":{"herald.io/node":"worker-017","herald.io/protocol":"L2","herald.io/service":"web-frontend"},
"managedFields":[{"manager":"herald-speaker","operation":"Apply","apiVersion":"herald.io/v1beta1","time":"2026-12-03T09:00:00Z","fieldsType":"FieldsV1",
"fieldsV1":{"f:metadata":{"f:labels":{"f:herald.io/node":{},"f:herald.io/protocol":{},"f:herald.io/service":{}}},
"f:status":{"f:interfaces":{},"f:ips":{},"f:node":{},"f:protocol":{},"f:service":{}}},"subresource":"status"}]},
"status":{"service":"web-frontend","protocol":"L2","node":"worker-017","ips":["198.18.64.17","2001:db8:64::17"],"interfaces":["eth0"]}}`

const serviceJSON = `{
 "metadata": {"name": "web", "namespace": "shop", "uid": "5b0c9a4e-1f0a-4b8e-9a43-2d8b4c9e7f10", "resourceVersion": "812344", "generation": 3,
  "creationTimestamp": "2026-11-30T10:00:00Z",
  "labels": {"app": "web", "tier": "front"},
  "annotations": {
   "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"annotations\":{\"herald.io/address-pool\":\"public\"},\"labels\":{\"app\":\"web\",\"tier\":\"front\"},\"name\":\"web\",\"namespace\":\"shop\"},\"spec\":{\"externalTrafficPolicy\":\"Local\",\"ports\":[{\"name\":\"http\",\"port\":80,\"protocol\":\"TCP\",\"targetPort\":8080},{\"name\":\"https\",\"port\":443,\"protocol\":\"TCP\",\"targetPort\":8443}],\"selector\":{\"app\":\"web\"},\"type\":\"LoadBalancer\"}}\n",
   "herald.io/address-pool": "public",
   "metallb.universe.tf/allow-shared-ip": "web",
   "herald.io/ip-allocated-from-pool": "public",
   "prometheus.io/scrape": "true"},
  "managedFields": [
   {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": "2026-11-30T10:00:00Z", "fieldsType": "FieldsV1",
    "fieldsV1": {"f:metadata":{"f:annotations":{".":{},"f:herald.io/address-pool":{},"f:kubectl.kubernetes.io/last-applied-configuration":{},"f:metallb.universe.tf/allow-shared-ip":{},"f:prometheus.io/scrape":{}},"f:labels":{".":{},"f:app":{},"f:tier":{}}},"f:spec":{"f:allocateLoadBalancerNodePorts":{},"f:externalTrafficPolicy":{},"f:internalTrafficPolicy":{},"f:ports":{".":{},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{},"f:protocol":{},"f:targetPort":{}},"k:{\"port\":443,\"protocol\":\"TCP\"}":{".":{},"f:name":{},"f:port":{},"f:protocol":{},"f:targetPort":{}}},"f:selector":{},"f:sessionAffinity":{},"f:type":{}}}},
   {"manager": "herald-controller", "operation": "Update", "apiVersion": "v1", "time": "2026-11-30T10:00:01Z", "fieldsType": "FieldsV1", "subresource": "status",
    "fieldsV1": {"f:status":{"f:loadBalancer":{"f:ingress":{}}}}},
   {"manager": "herald-controller", "operation": "Update", "apiVersion": "v1", "time": "2026-11-30T10:00:01Z", "fieldsType": "FieldsV1",
    "fieldsV1": {"f:metadata":{"f:annotations":{"f:herald.io/ip-allocated-from-pool":{}}}}}]},
 "spec": {"type": "LoadBalancer", "clusterIP": "198.19.4.17", "clusterIPs": ["198.19.4.17"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
  "externalTrafficPolicy": "Local", "healthCheckNodePort": 31877, "internalTrafficPolicy": "Cluster", "sessionAffinity": "None", "allocateLoadBalancerNodePorts": true,
  "selector": {"app": "web"},
  "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}, {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 8443, "nodePort": 30443}]},
 "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7", "ipMode": "VIP"}]}}
}`

const nodeJSON = `{
 "metadata": {"name": "node1", "uid": "a1", "resourceVersion": "99", "labels": {"kubernetes.io/hostname": "node1", "kubernetes.io/os": "linux", "zone": "a"},
  "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true", "csi.volume.kubernetes.io/nodeid": "{\"ebs.csi.aws.com\":\"i-0123456789abcdef0\"}"},
  "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{"f:lastHeartbeatTime":{},"f:status":{}}},"f:images":{}}}}]},
 "spec": {"podCIDR": "198.18.17.0/24", "podCIDRs": ["198.18.17.0/24"], "providerID": "herald://node1"},
 "status": {
  "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"}, "allocatable": {"cpu": "2", "memory": "7Gi", "pods": "110"},
  "conditions": [
   {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-30T10:00:00Z", "lastTransitionTime": "2026-11-30T09:00:00Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"},
   {"type": "NetworkUnavailable", "status": "False", "lastHeartbeatTime": "2026-11-30T10:00:00Z", "lastTransitionTime": "2026-11-30T09:00:00Z", "reason": "RouteCreated", "message": "route created"}],
  "addresses": [{"type": "InternalIP", "address": "198.18.0.11"}, {"type": "InternalIP", "address": "2001:db8:18::11"}, {"type": "Hostname", "address": "node1"}],
  "nodeInfo": {"machineID": "0123456789abcdef", "systemUUID": "uuid", "bootID": "boot", "kernelVersion": "6.12", "osImage": "Debian", "containerRuntimeVersion": "containerd://1.6", "kubeletVersion": "v1.36.3", "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
  "images": [{"names": ["registry.k8s.io/pause@sha256:0000000000000000000000000000000000000000000000000000000000000000", "registry.k8s.io/pause:3.10"], "sizeBytes": 320000},
             {"names": ["ghcr.io/heraldlb/herald-speaker@sha256:1111111111111111111111111111111111111111111111111111111111111111", "ghcr.io/heraldlb/herald-speaker:v0.1.0"], "sizeBytes": 21000000}]}
}`

func endpointSlice(endpoints int) *discoveryv1.EndpointSlice {
	yes, no := true, false
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abcde", Namespace: "shop", ResourceVersion: "7",
			Labels:      map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io", "app": "web"},
			Annotations: map[string]string{"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-30T10:00:00Z"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:labels":{}},"f:ports":{}}`)}}}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: new(int32(8080))}},
	}
	for i := range endpoints {
		node := fmt.Sprintf("node%d", i%3+1)
		ready := &yes
		if i%5 == 4 {
			ready = &no
		}
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{fmt.Sprintf("198.18.%d.%d", 17+i%3, 10+i)},
			Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: ready, Terminating: &no},
			NodeName:   &node,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: fmt.Sprintf("web-%d", i), UID: "u"},
		})
	}
	// One endpoint not ready but serving (terminating), on a fourth node.
	n4 := "node4"
	es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"198.18.20.10"}, NodeName: &n4,
		Conditions: discoveryv1.EndpointConditions{Ready: &no, Serving: &yes, Terminating: &yes}})
	return es
}

func decode[T any](t testing.TB, s string) *T {
	t.Helper()
	v := new(T)
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTransformKeepsDecisions checks that every value Herald derives from a
// cached object is the same from the trimmed object as from the full one,
// and that the bulk is gone.
func TestTransformKeepsDecisions(t *testing.T) {
	trim := func(obj any) any {
		out, err := k8s.Transform(obj)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("service", func(t *testing.T) {
		full := decode[corev1.Service](t, serviceJSON)
		small := trim(full.DeepCopy()).(*corev1.Service)
		if len(small.ManagedFields) != 0 || small.Annotations["kubectl.kubernetes.io/last-applied-configuration"] != "" ||
			small.Annotations["prometheus.io/scrape"] != "" || small.Spec.ClusterIP != "" || small.Spec.Ports[0].NodePort != 0 {
			t.Errorf("not trimmed: %+v", small)
		}
		for _, class := range []string{"", "other"} {
			a, okA := speaker.ServiceInfoOf(full, []*discoveryv1.EndpointSlice{endpointSlice(4)}, class)
			b, okB := speaker.ServiceInfoOf(small, []*discoveryv1.EndpointSlice{endpointSlice(4)}, class)
			if okA != okB || !reflect.DeepEqual(a, b) {
				t.Errorf("speaker: ServiceInfoOf differs: %+v vs %+v", a, b)
			}
		}
		for _, class := range []string{"", "other"} {
			if controller.Manages(full, class) != controller.Manages(small, class) {
				t.Errorf("controller: Manages(%q) differs", class)
			}
		}
		nsLabels := map[string]string{"team": "shop"}
		ra, wa, ea := controller.RequestFor(full, nsLabels)
		rb, wb, eb := controller.RequestFor(small, nsLabels)
		if !reflect.DeepEqual(ra, rb) || !reflect.DeepEqual(wa, wb) || fmt.Sprint(ea) != fmt.Sprint(eb) {
			t.Errorf("controller: RequestFor differs:\n%+v %v %v\n%+v %v %v", ra, wa, ea, rb, wb, eb)
		}
		if small.Annotations[controller.AnnotationAllocatedFromPool] != "public" || small.ResourceVersion != full.ResourceVersion ||
			small.Generation != full.Generation || small.UID != full.UID {
			t.Errorf("identity or Herald's annotation lost: %+v", small.ObjectMeta)
		}

		// Another type keeps its type and class, for the controller to see
		// a Service stop being Herald's.
		cip := full.DeepCopy()
		cip.Spec.Type = corev1.ServiceTypeClusterIP
		small = trim(cip).(*corev1.Service)
		if small.Spec.Type != corev1.ServiceTypeClusterIP || len(small.Spec.Ports) != 0 || controller.Manages(small, "") {
			t.Errorf("ClusterIP Service: %+v", small.Spec)
		}
	})

	t.Run("endpointslice", func(t *testing.T) {
		full := endpointSlice(50)
		small := trim(full.DeepCopy()).(*discoveryv1.EndpointSlice)
		if got, want := speaker.EndpointNodes([]*discoveryv1.EndpointSlice{small}), speaker.EndpointNodes([]*discoveryv1.EndpointSlice{full}); !reflect.DeepEqual(got, want) {
			t.Errorf("EndpointNodes: %v, want %v", got, want)
		}
		if len(small.Endpoints) > 7 || small.Labels[discoveryv1.LabelServiceName] != "web" || len(small.Labels) != 1 || len(small.ManagedFields) != 0 {
			t.Errorf("not trimmed: %d endpoints, labels %v", len(small.Endpoints), small.Labels)
		}
	})

	t.Run("node", func(t *testing.T) {
		full := decode[corev1.Node](t, nodeJSON)
		for _, unavailable := range []corev1.ConditionStatus{corev1.ConditionFalse, corev1.ConditionTrue} {
			full.Status.Conditions[1].Status = unavailable
			small := trim(full.DeepCopy()).(*corev1.Node)
			if !reflect.DeepEqual(speaker.NodeOf(full, []string{"eth0"}), speaker.NodeOf(small, []string{"eth0"})) ||
				!reflect.DeepEqual(speaker.BGPNodeOf(full), speaker.BGPNodeOf(small)) || speaker.NodeInternalIP(full) != speaker.NodeInternalIP(small) {
				t.Errorf("node decisions differ (NetworkUnavailable=%s)", unavailable)
			}
			if len(small.Status.Images) != 0 || len(small.Annotations) != 0 || len(small.ManagedFields) != 0 || small.Status.Conditions[0].Message != "" {
				t.Errorf("not trimmed: %+v", small)
			}
		}
	})

	t.Run("pod", func(t *testing.T) {
		sel := labels.SelectorFromSet(labels.Set{"app": "herald-speaker"})
		pods := []*corev1.Pod{}
		for i, node := range []string{"node1", "node2", "node3"} {
			pods = append(pods, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "speaker-" + node, Namespace: "herald-system", Labels: map[string]string{"app": "herald-speaker"},
					Annotations:   map[string]string{"kubectl.kubernetes.io/restartedAt": "x"},
					ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
				Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, Containers: []corev1.Container{{Name: "speaker", Image: "ghcr.io/heraldlb/herald-speaker"}}},
				Status: corev1.PodStatus{Phase: []corev1.PodPhase{corev1.PodRunning, corev1.PodRunning, corev1.PodPending}[i],
					PodIP: fmt.Sprintf("198.18.0.%d", 11+i), ContainerStatuses: []corev1.ContainerStatus{{Name: "speaker", Ready: true}}},
			})
		}
		peers := func(pods []*corev1.Pod) []string {
			idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
			for _, p := range pods {
				_ = idx.Add(p)
			}
			pp := &speaker.PodPeers{Pods: corelisters.NewPodLister(idx).Pods("herald-system"), Selector: sel, Self: "node3", Port: 7946}
			out, err := pp.Peers()
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		var small []*corev1.Pod
		for _, p := range pods {
			small = append(small, trim(p.DeepCopy()).(*corev1.Pod))
		}
		if a, b := peers(pods), peers(small); !reflect.DeepEqual(a, b) || len(a) != 2 {
			t.Errorf("PodPeers: %v, trimmed %v", a, b)
		}
		if len(small[0].Spec.Containers) != 0 || len(small[0].ManagedFields) != 0 {
			t.Errorf("not trimmed: %+v", small[0])
		}
	})

	t.Run("secret and namespace", func(t *testing.T) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "secret"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}, Data: map[string][]byte{"password": []byte("x")}}
		small := trim(s.DeepCopy()).(*corev1.Secret)
		if string(small.Data["password"]) != "x" || len(small.Annotations) != 0 || len(small.ManagedFields) != 0 || k8s.SecretName(small) != "s" {
			t.Errorf("secret: %+v", small)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
			Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}}
		smallNS := trim(ns.DeepCopy()).(*corev1.Namespace)
		if smallNS.Labels["team"] != "a" || len(smallNS.ManagedFields) != 0 {
			t.Errorf("namespace: %+v", smallNS)
		}
	})

	t.Run("herald kinds and tombstones", func(t *testing.T) {
		p := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
			Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}}}
		small := trim(p.DeepCopy()).(*v1beta1.IPAddressPool)
		p.ManagedFields = nil
		if !reflect.DeepEqual(p, small) {
			t.Errorf("pool: %+v", small)
		}
		tomb := cache.DeletedFinalStateUnknown{Key: "a/b", Obj: p}
		if trim(tomb) != any(tomb) {
			t.Error("tombstone changed")
		}
	})
}

// BenchmarkCacheFootprint reports the heap that an informer's store holds
// per object, with and without the transform, for Services decoded from
// the fixture above (the bytes a speaker and the controller pay per
// Service in the cluster), EndpointSlices of 10 endpoints and Nodes. Each
// iteration stores 5,000 objects.
func BenchmarkCacheFootprint(b *testing.B) {
	const n = 5000
	raw := []byte(serviceJSON)
	esRaw, _ := json.Marshal(endpointSlice(10))
	nodeRaw := []byte(nodeJSON)
	for _, c := range []struct {
		name string
		raw  []byte
		new  func() any
	}{
		{"service", raw, func() any { return &corev1.Service{} }},
		{"endpointslice-10", esRaw, func() any { return &discoveryv1.EndpointSlice{} }},
		{"node", nodeRaw, func() any { return &corev1.Node{} }},
		{"serviceannouncement", []byte(announcementJSON), func() any { return &v1beta1.ServiceAnnouncement{} }},
	} {
		for _, transform := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/transform=%v", c.name, transform), func(b *testing.B) {
				var perObj float64
				for b.Loop() {
					store := cache.NewStore(func(obj any) (string, error) {
						m := obj.(metav1.Object)
						return m.GetNamespace() + "/" + m.GetName(), nil
					})
					before := heapInUse()
					for i := range n {
						obj := c.new()
						if err := json.Unmarshal(c.raw, obj); err != nil {
							b.Fatal(err)
						}
						obj.(metav1.Object).SetName(fmt.Sprintf("obj-%d", i))
						if transform {
							obj, _ = k8s.Transform(obj)
						}
						_ = store.Add(obj)
					}
					perObj = float64(heapInUse()-before) / n
					runtime.KeepAlive(store)
				}
				b.ReportMetric(perObj, "heap-B/object")
			})
		}
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
