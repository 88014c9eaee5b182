package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/heraldlb/herald/api/v1beta1"
)

// statusCluster is a healthy cluster: one pool, one Service announced in
// L2 mode, one Service announced over BGP with an Established session.
func statusCluster() []runtime.Object {
	ready := []metav1.Condition{{Type: v1beta1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Accepted"}}
	return []runtime.Object{
		&v1beta1.IPAddressPool{
			TypeMeta:   metav1.TypeMeta{APIVersion: "herald.io/v1beta1", Kind: "IPAddressPool"},
			ObjectMeta: metav1.ObjectMeta{Name: "lan"},
			Status: v1beta1.IPAddressPoolStatus{Status: v1beta1.Status{Conditions: ready},
				AssignedIPv4: 2, AvailableIPv4: 49},
		},
		lbService("web", "198.18.0.200"),
		lbService("api", "203.0.113.1"),
		&corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}},
		announcement("web.l2", v1beta1.ServiceAnnouncementStatus{Service: "web", Protocol: "L2", Node: "node1", IPs: []string{"198.18.0.200"}}),
		announcement("api.bgp.node1", v1beta1.ServiceAnnouncementStatus{Service: "api", Protocol: "BGP", Node: "node1", IPs: []string{"203.0.113.1"}, Peers: []string{"router"}}),
		announcement("api.bgp.node2", v1beta1.ServiceAnnouncementStatus{Service: "api", Protocol: "BGP", Node: "node2", IPs: []string{"203.0.113.1"}, Peers: []string{"router"}}),
		&v1beta1.BGPSessionState{
			TypeMeta:   metav1.TypeMeta{APIVersion: "herald.io/v1beta1", Kind: "BGPSessionState"},
			ObjectMeta: metav1.ObjectMeta{Namespace: "herald-system", Name: "node1-router"},
			Status:     v1beta1.BGPSessionStateStatus{Node: "node1", Peer: "router", PeerAddress: "198.18.0.1", State: "Established", PrefixesSent: 1},
		},
	}
}

func lbService(name, ip string) *corev1.Service {
	s := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{"herald.io/ip-allocated-from-pool": "lan"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	if ip != "" {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	}
	return s
}

func announcement(name string, st v1beta1.ServiceAnnouncementStatus) *v1beta1.ServiceAnnouncement {
	return &v1beta1.ServiceAnnouncement{
		TypeMeta:   metav1.TypeMeta{APIVersion: "herald.io/v1beta1", Kind: "ServiceAnnouncement"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Status:     st,
	}
}

// fakeStatusCluster serves objs through a fake dynamic client.
func fakeStatusCluster(t *testing.T, objs []runtime.Object) func(string, string) (dynamic.Interface, error) {
	listKinds := map[schema.GroupVersionResource]string{
		gvrServices:                       "ServiceList",
		heraldGVR("ipaddresspools"):       "IPAddressPoolList",
		heraldGVR("serviceannouncements"): "ServiceAnnouncementList",
		heraldGVR("bgpsessionstates"):     "BGPSessionStateList",
	}
	var us []runtime.Object
	for _, o := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, &unstructured.Unstructured{Object: m})
	}
	return func(string, string) (dynamic.Interface, error) {
		return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, us...), nil
	}
}

func TestStatus(t *testing.T) {
	for _, c := range []struct {
		name     string
		change   func(objs []runtime.Object) []runtime.Object
		wantCode int
		want     string // in stdout
	}{
		{"healthy", nil, exitOK, "All healthy."},
		{"pool exhausted", func(objs []runtime.Object) []runtime.Object {
			p := objs[0].(*v1beta1.IPAddressPool)
			p.Status.Conditions = append(p.Status.Conditions, metav1.Condition{Type: v1beta1.ConditionExhausted, Status: metav1.ConditionTrue, Message: "no free IPv4 address"})
			return objs
		}, exitUnhealthy, "pool lan: Exhausted: no free IPv4 address"},
		{"pool not ready", func(objs []runtime.Object) []runtime.Object {
			p := objs[0].(*v1beta1.IPAddressPool)
			p.Status.Conditions = []metav1.Condition{{Type: v1beta1.ConditionReady, Status: metav1.ConditionFalse, Message: "spec.addresses[0]: bad"}}
			return objs
		}, exitUnhealthy, "pool lan: not Ready: spec.addresses[0]: bad"},
		{"service without an address", func(objs []runtime.Object) []runtime.Object {
			return append(objs, lbService("pending", ""))
		}, exitUnhealthy, "service default/pending: no address (kubectl herald why pending -n default)"},
		{"address nobody announces", func(objs []runtime.Object) []runtime.Object {
			return append(objs[:4:4], objs[5:]...) // web.l2 gone
		}, exitUnhealthy, "service default/web: no node announces 198.18.0.200"},
		{"session down", func(objs []runtime.Object) []runtime.Object {
			s := objs[7].(*v1beta1.BGPSessionState)
			s.Status.State, s.Status.LastError = "Active", "connection refused"
			return objs
		}, exitUnhealthy, "BGP session of node node1 to peer router is Active: connection refused"},
		{"BGP service whose advertising nodes have no session up", func(objs []runtime.Object) []runtime.Object {
			objs[7].(*v1beta1.BGPSessionState).Status.State = "Idle"
			return objs
		}, exitUnhealthy, "service default/api: no router learns 203.0.113.1: no BGP session is established on the nodes that advertise it (node1,node2)"},
		{"BGP service no node advertises", func(objs []runtime.Object) []runtime.Object {
			return append(objs[:5:5], objs[7:]...) // api.bgp.node1 and api.bgp.node2 gone
		}, exitUnhealthy, "service default/api: no node announces 203.0.113.1"},
		{"another class is not Herald's", func(objs []runtime.Object) []runtime.Object {
			s := lbService("other", "")
			cls := "other.io/lb"
			s.Spec.LoadBalancerClass = &cls
			return append(objs, s)
		}, exitOK, "All healthy."},
	} {
		t.Run(c.name, func(t *testing.T) {
			objs := statusCluster()
			if c.change != nil {
				objs = c.change(objs)
			}
			var out, errb bytes.Buffer
			code := run(t.Context(), []string{"status"}, env{stdout: &out, stderr: &errb, dynamicClient: fakeStatusCluster(t, objs)})
			if code != c.wantCode || !strings.Contains(out.String(), c.want) {
				t.Errorf("exit %d, want %d; stdout lacks %q:\n%s%s", code, c.wantCode, c.want, out.String(), errb.String())
			}
		})
	}
}

func TestStatusOutput(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"status", "-o", "json"}, env{stdout: &out, stderr: &errb, dynamicClient: fakeStatusCluster(t, statusCluster())})
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var r statusReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Pools) != 1 || r.Pools[0].AvailableIPv4 != 49 || len(r.Services) != 2 || len(r.Sessions) != 1 || len(r.Problems) != 0 {
		t.Errorf("report %+v", r)
	}
	if got := strings.Join(r.Services[0].Announcing, " "); r.Services[0].Service != "default/api" || got != "node1 (BGP: router) node2 (BGP: router)" {
		t.Errorf("api announced by %q", got)
	}
	if got := strings.Join(r.Services[1].Announcing, " "); got != "node1 (L2)" {
		t.Errorf("web announced by %q", got)
	}
	out.Reset()
	if code := run(t.Context(), []string{"status", "-o", "yaml"}, env{stdout: &out, stderr: &errb, dynamicClient: fakeStatusCluster(t, statusCluster())}); code != exitOK || !strings.Contains(out.String(), "bgpSessions:") {
		t.Errorf("yaml: exit %d\n%s", code, out.String())
	}
	for _, args := range [][]string{{"status", "-o", "wide"}, {"status", "extra"}} {
		if code := run(t.Context(), args, env{stdout: &out, stderr: &errb, dynamicClient: fakeStatusCluster(t, statusCluster())}); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// fullWriter takes room bytes, then fails as a full disk does.
type fullWriter struct {
	buf  bytes.Buffer
	room int
}

func (w *fullWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.room {
		n, _ := w.buf.Write(p[:w.room-w.buf.Len()])
		return n, syscall.ENOSPC
	}
	return w.buf.Write(p)
}

// TestStatusFullDisk: a report cut short on stdout (status > file on a
// full disk) is an error the user sees, at whichever line the disk fills,
// and never an exit status that says the cluster was read and healthy or not.
func TestStatusFullDisk(t *testing.T) {
	objs := statusCluster()
	objs = append(objs, lbService("pending", "")) // a Problems section too
	var whole, errb bytes.Buffer
	if code := run(t.Context(), []string{"status"}, env{stdout: &whole, stderr: &errb, dynamicClient: fakeStatusCluster(t, objs)}); code != exitUnhealthy {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for room := 0; room < whole.Len(); room++ {
		out := &fullWriter{room: room}
		errb.Reset()
		code := run(t.Context(), []string{"status"}, env{stdout: out, stderr: &errb, dynamicClient: fakeStatusCluster(t, objs)})
		if code != exitUnreachable || !strings.Contains(errb.String(), "no space left on device") {
			t.Fatalf("disk full after %d of %d bytes: exit %d, want %d; stderr %q", room, whole.Len(), code, exitUnreachable, errb.String())
		}
	}
}
