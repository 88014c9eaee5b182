package e2etest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// The controller tests run the real controller binary, with the
// ServiceAccount bound to config/rbac, against the bed's real API server.
// Their pools come from 203.0.113.0/24: nothing is announced, so no traffic
// ever goes to these addresses.

var poolGVK = schema.GroupVersionKind{Group: "herald.io", Version: "v1beta1", Kind: "IPAddressPool"}

// controllerBed is a control-plane-only bed with Herald's CRDs.
func controllerBed(t *testing.T, dualStack bool) *testbed.Bed {
	t.Helper()
	needRoot(t)
	bed := testbed.Start(t, testbed.Options{Nodes: 1, NoKubeProxy: true, DualStack: dualStack})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := bed.ApplyCRDs(ctx); err != nil {
		t.Fatalf("CRDs: %v", err)
	}
	return bed
}

// startController runs the controller binary in the root namespace.
func startController(t testing.TB, bed *testbed.Bed, name string, args ...string) *testbed.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := bed.HeraldBinary(ctx, "controller")
	if err != nil {
		t.Fatalf("build controller: %v", err)
	}
	args = append([]string{"--kubeconfig", bed.ControllerKubeconfig, "--metrics-addr", "", "--health-addr", "", "--log-level", "debug"}, args...)
	p, err := bed.StartProcess(ctx, "", name, bin, args...)
	if err != nil {
		t.Fatalf("start controller: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(p.Log); err == nil {
				t.Logf("%s log (tail):\n%s", name, tail(string(b), 40))
			}
		}
		_ = p.Stop(3 * time.Second)
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func apply(t testing.TB, bed *testbed.Bed, yaml string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := bed.ApplyYAML(ctx, []byte(yaml)); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// eventually polls cond every 50 ms until it holds or timeout passes; cond
// returns a description of what it saw, for the failure message.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, seen := cond()
		if ok {
			return
		}
		last = seen
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lbService struct {
	ns, name    string
	annotations map[string]string
	labels      map[string]string
	ports       []corev1.ServicePort
	class       *string
	families    []corev1.IPFamily
	policy      *corev1.IPFamilyPolicy
	lbIP        string
}

func createService(t testing.TB, bed *testbed.Bed, s lbService) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bed.EnsureNamespace(ctx, s.ns); err != nil {
		t.Fatal(err)
	}
	if s.ports == nil {
		s.ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
	}
	no := false
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: s.name, Annotations: s.annotations, Labels: s.labels},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Ports: s.ports, LoadBalancerClass: s.class,
			AllocateLoadBalancerNodePorts: &no, IPFamilies: s.families, IPFamilyPolicy: s.policy, LoadBalancerIP: s.lbIP,
		},
	}
	if _, err := bed.Client.CoreV1().Services(s.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service %s/%s: %v", s.ns, s.name, err)
	}
}

func getService(t testing.TB, bed *testbed.Bed, ns, name string) *corev1.Service {
	t.Helper()
	svc, err := bed.Client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service %s/%s: %v", ns, name, err)
	}
	return svc
}

func ingressIPs(svc *corev1.Service) []string {
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// waitIPs waits until the Service's status shows exactly want.
func waitIPs(t testing.TB, bed *testbed.Bed, ns, name string, want ...string) *corev1.Service {
	t.Helper()
	var svc *corev1.Service
	eventually(t, 20*time.Second, fmt.Sprintf("service %s/%s gets %v", ns, name, want), func() (bool, string) {
		svc = getService(t, bed, ns, name)
		got := ingressIPs(svc)
		return slices.Equal(got, want), fmt.Sprint(got)
	})
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
			t.Errorf("service %s/%s: ingress %s has ipMode %v, want VIP", ns, name, in.IP, in.IPMode)
		}
	}
	return svc
}

// waitEvent waits for an event on a Service with reason whose message
// contains msg.
func waitEvent(t testing.TB, bed *testbed.Bed, ns, name, reason, msg string) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("event %s %q on %s/%s", reason, msg, ns, name), func() (bool, string) {
		list, err := bed.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name + ",reason=" + reason,
		})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if strings.Contains(e.Message, msg) {
				return true, ""
			}
			seen = append(seen, e.Message)
		}
		return false, fmt.Sprint(seen)
	})
}

func getPool(t testing.TB, bed *testbed.Bed, name string) *unstructured.Unstructured {
	t.Helper()
	ri, err := bed.Resource(poolGVK, "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := ri.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pool %s: %v", name, err)
	}
	return u
}

func poolCount(u *unstructured.Unstructured, field string) int64 {
	v, _, _ := unstructured.NestedInt64(u.Object, "status", field)
	return v
}

// condition returns a condition's status and message on a Herald object.
func condition(u *unstructured.Unstructured, typ string) (string, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			msg, _ := m["message"].(string)
			return s, msg
		}
	}
	return "", ""
}

func waitPool(t testing.TB, bed *testbed.Bed, name, what string, cond func(u *unstructured.Unstructured) bool) {
	t.Helper()
	eventually(t, 20*time.Second, "pool "+name+": "+what, func() (bool, string) {
		u := getPool(t, bed, name)
		st, _, _ := unstructured.NestedMap(u.Object, "status")
		return cond(u), fmt.Sprint(st)
	})
}

func poolYAML(name string, addrs []string, extra string) string {
	return fmt.Sprintf("apiVersion: herald.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: %s}\nspec:\n  addresses: [%s]\n%s", name, strings.Join(addrs, ", "), extra)
}

// TestController runs the allocation scenarios against one controller.
func TestController(t *testing.T) {
	bed := controllerBed(t, true)
	startController(t, bed, "controller")

	t.Run("AllocateAndRelease", func(t *testing.T) {
		apply(t, bed, poolYAML("alloc", []string{"203.0.113.0/30"}, "  serviceAllocation: {namespaces: [alloc]}\n"))
		createService(t, bed, lbService{ns: "alloc", name: "a"})
		waitIPs(t, bed, "alloc", "a", "203.0.113.0")
		// The annotation follows the status write (status writes go first).
		eventually(t, 20*time.Second, "pool annotation", func() (bool, string) {
			got := getService(t, bed, "alloc", "a").Annotations["herald.io/ip-allocated-from-pool"]
			return got == "alloc", got
		})
		waitEvent(t, bed, "alloc", "a", "IPAllocated", "assigned 203.0.113.0 from pool alloc")
		createService(t, bed, lbService{ns: "alloc", name: "b"})
		waitIPs(t, bed, "alloc", "b", "203.0.113.1")
		waitPool(t, bed, "alloc", "2 assigned, 2 available", func(u *unstructured.Unstructured) bool {
			return poolCount(u, "assignedIPv4") == 2 && poolCount(u, "availableIPv4") == 2
		})
		if err := bed.Client.CoreV1().Services("alloc").Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPool(t, bed, "alloc", "1 assigned after a delete", func(u *unstructured.Unstructured) bool {
			return poolCount(u, "assignedIPv4") == 1 && poolCount(u, "availableIPv4") == 3
		})
		// The lowest free address is handed out again.
		createService(t, bed, lbService{ns: "alloc", name: "c"})
		waitIPs(t, bed, "alloc", "c", "203.0.113.0")
		createService(t, bed, lbService{ns: "alloc", name: "d"})
		waitIPs(t, bed, "alloc", "d", "203.0.113.2")
		createService(t, bed, lbService{ns: "alloc", name: "e"})
		waitIPs(t, bed, "alloc", "e", "203.0.113.3")
		createService(t, bed, lbService{ns: "alloc", name: "f"})
		waitEvent(t, bed, "alloc", "f", "AllocationFailed", "no free IPv4 address")
		waitPool(t, bed, "alloc", "Exhausted", func(u *unstructured.Unstructured) bool {
			s, _ := condition(u, "Exhausted")
			return s == "True"
		})
		// Freeing an address serves the waiting Service without any edit to it.
		if err := bed.Client.CoreV1().Services("alloc").Delete(context.Background(), "e", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitIPs(t, bed, "alloc", "f", "203.0.113.3")
	})

	t.Run("RequestedIP", func(t *testing.T) {
		apply(t, bed, poolYAML("manual", []string{"203.0.113.16/29"}, "  autoAssign: false\n"))
		createService(t, bed, lbService{ns: "req", name: "annotated", annotations: map[string]string{"herald.io/loadBalancerIPs": "203.0.113.20"}})
		waitIPs(t, bed, "req", "annotated", "203.0.113.20")
		createService(t, bed, lbService{ns: "req", name: "spec", lbIP: "203.0.113.21"})
		waitIPs(t, bed, "req", "spec", "203.0.113.21")
		createService(t, bed, lbService{ns: "req", name: "alias", annotations: map[string]string{"metallb.io/loadBalancerIPs": "203.0.113.22"}})
		waitIPs(t, bed, "req", "alias", "203.0.113.22")
		waitEvent(t, bed, "req", "alias", "MetalLBAnnotation", "use herald.io/loadBalancerIPs")
		createService(t, bed, lbService{ns: "req", name: "nowhere", annotations: map[string]string{"herald.io/loadBalancerIPs": "203.0.113.250"}})
		waitEvent(t, bed, "req", "nowhere", "AllocationFailed", "203.0.113.250")
		createService(t, bed, lbService{ns: "req", name: "taken", annotations: map[string]string{"herald.io/loadBalancerIPs": "203.0.113.20"}})
		waitEvent(t, bed, "req", "taken", "AllocationFailed", "req/annotated")
		createService(t, bed, lbService{ns: "req", name: "garbage", annotations: map[string]string{"herald.io/loadBalancerIPs": "not-an-ip"}})
		waitEvent(t, bed, "req", "garbage", "AllocationFailed", `"not-an-ip" is not an IP address`)
		// A pool without autoAssign serves nobody who did not ask.
		createService(t, bed, lbService{ns: "req", name: "pool", annotations: map[string]string{"herald.io/address-pool": "manual"}})
		waitIPs(t, bed, "req", "pool", "203.0.113.16")
	})

	t.Run("Sharing", func(t *testing.T) {
		apply(t, bed, poolYAML("share", []string{"203.0.113.32/30"}, "  serviceAllocation: {namespaces: [share]}\n"))
		key := map[string]string{"herald.io/allow-shared-ip": "k"}
		createService(t, bed, lbService{ns: "share", name: "tcp", annotations: key, ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolTCP}}})
		waitIPs(t, bed, "share", "tcp", "203.0.113.32")
		createService(t, bed, lbService{ns: "share", name: "udp", annotations: key, ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}})
		waitIPs(t, bed, "share", "udp", "203.0.113.32")
		// Same key, but the port collides: it gets an address of its own.
		createService(t, bed, lbService{ns: "share", name: "clash", annotations: key, ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolTCP}}})
		waitIPs(t, bed, "share", "clash", "203.0.113.33")
		// Asking for the shared address with another key is refused.
		createService(t, bed, lbService{ns: "share", name: "other", annotations: map[string]string{"herald.io/allow-shared-ip": "x", "herald.io/loadBalancerIPs": "203.0.113.32"},
			ports: []corev1.ServicePort{{Name: "web", Port: 8080, Protocol: corev1.ProtocolTCP}}})
		waitEvent(t, bed, "share", "other", "AllocationFailed", "different sharing key")
		waitPool(t, bed, "share", "a shared address counts once", func(u *unstructured.Unstructured) bool {
			return poolCount(u, "assignedIPv4") == 2
		})
	})

	t.Run("PoolSelection", func(t *testing.T) {
		ctx := context.Background()
		for ns, lbls := range map[string]map[string]string{"sel-a": nil, "sel-b": {"team": "blue"}} {
			if err := bed.EnsureNamespace(ctx, ns); err != nil {
				t.Fatal(err)
			}
			if lbls != nil {
				patch := fmt.Sprintf(`{"metadata":{"labels":{"team":%q}}}`, lbls["team"])
				if _, err := bed.Client.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		apply(t, bed, poolYAML("by-name", []string{"203.0.113.48/30"}, "  serviceAllocation: {namespaces: [sel-a], priority: 20}\n")+"---\n"+
			poolYAML("by-label", []string{"203.0.113.52/30"}, "  serviceAllocation: {namespaceSelectors: [{matchLabels: {team: blue}}], priority: 10}\n")+"---\n"+
			poolYAML("by-service", []string{"203.0.113.56/30"}, "  serviceAllocation: {serviceSelectors: [{matchLabels: {tier: gold}}], priority: 5}\n"))
		createService(t, bed, lbService{ns: "sel-a", name: "plain"})
		waitIPs(t, bed, "sel-a", "plain", "203.0.113.48")
		createService(t, bed, lbService{ns: "sel-b", name: "plain"})
		waitIPs(t, bed, "sel-b", "plain", "203.0.113.52")
		// Both by-label (priority 10) and by-service (priority 5) select it:
		// the lower priority wins.
		createService(t, bed, lbService{ns: "sel-b", name: "gold", labels: map[string]string{"tier": "gold"}})
		waitIPs(t, bed, "sel-b", "gold", "203.0.113.56")
		// A Service no pool selects waits, and gets an address as soon as its
		// namespace is labelled into a pool.
		createService(t, bed, lbService{ns: "sel-c", name: "waiting"})
		waitEvent(t, bed, "sel-c", "waiting", "AllocationFailed", "")
		if _, err := bed.Client.CoreV1().Namespaces().Patch(ctx, "sel-c", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"blue"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitIPs(t, bed, "sel-c", "waiting", "203.0.113.53")
	})

	t.Run("PoolEditKeepsIPs", func(t *testing.T) {
		apply(t, bed, poolYAML("edit", []string{"203.0.113.64/30"}, "  serviceAllocation: {namespaces: [edit]}\n"))
		createService(t, bed, lbService{ns: "edit", name: "keep"})
		waitIPs(t, bed, "edit", "keep", "203.0.113.64")
		apply(t, bed, poolYAML("edit", []string{"203.0.113.68/30"}, "  serviceAllocation: {namespaces: [edit]}\n"))
		waitPool(t, bed, "edit", "reports the stranded address", func(u *unstructured.Unstructured) bool {
			return poolCount(u, "outOfPool") == 1 && poolCount(u, "availableIPv4") == 4
		})
		waitEvent(t, bed, "edit", "keep", "IPOutOfPool", "203.0.113.64 is no longer in any pool")
		if got := ingressIPs(getService(t, bed, "edit", "keep")); !slices.Equal(got, []string{"203.0.113.64"}) {
			t.Fatalf("a pool edit moved the address: %v", got)
		}
		// A bad edit is refused by the API server and changes nothing.
		ri, _ := bed.Resource(poolGVK, "")
		bad := &unstructured.Unstructured{}
		bad.SetGroupVersionKind(poolGVK)
		bad.SetName("edit")
		_ = unstructured.SetNestedStringSlice(bad.Object, []string{"203.0.113.68/33"}, "spec", "addresses")
		if _, err := ri.Apply(context.Background(), "edit", bad, metav1.ApplyOptions{FieldManager: "herald-testbed", Force: true}); err == nil || !strings.Contains(err.Error(), "spec.addresses[0]") {
			t.Errorf("bad pool edit: error %v, want one naming spec.addresses[0]", err)
		}
	})

	t.Run("ClassFiltering", func(t *testing.T) {
		apply(t, bed, poolYAML("class", []string{"203.0.113.72/30"}, "  serviceAllocation: {namespaces: [class]}\n"))
		other := "example.com/other"
		createService(t, bed, lbService{ns: "class", name: "theirs", class: &other})
		createService(t, bed, lbService{ns: "class", name: "ours"})
		waitIPs(t, bed, "class", "ours", "203.0.113.72")
		// Services are synced in order of events; "ours" came after
		// "theirs", and has its IP, so "theirs" was seen and left alone.
		time.Sleep(500 * time.Millisecond)
		if got := ingressIPs(getService(t, bed, "class", "theirs")); len(got) != 0 {
			t.Errorf("a Service of another class got %v", got)
		}
		// Turning a Service into a ClusterIP releases its address and clears
		// its status.
		patch := `{"spec":{"type":"ClusterIP","allocateLoadBalancerNodePorts":null}}`
		if _, err := bed.Client.CoreV1().Services("class").Patch(context.Background(), "ours", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		waitIPs(t, bed, "class", "ours")
		waitPool(t, bed, "class", "released", func(u *unstructured.Unstructured) bool { return poolCount(u, "assignedIPv4") == 0 })
	})

	t.Run("DualStack", func(t *testing.T) {
		apply(t, bed, poolYAML("dual", []string{"203.0.113.80/30", "2001:db8:100::/126"}, "  serviceAllocation: {namespaces: [dual]}\n"))
		require := corev1.IPFamilyPolicyRequireDualStack
		createService(t, bed, lbService{ns: "dual", name: "both", policy: &require, families: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}})
		waitIPs(t, bed, "dual", "both", "2001:db8:100::", "203.0.113.80")
		createService(t, bed, lbService{ns: "dual", name: "v6", families: []corev1.IPFamily{corev1.IPv6Protocol}})
		waitIPs(t, bed, "dual", "v6", "2001:db8:100::1")
		waitPool(t, bed, "dual", "counts per family", func(u *unstructured.Unstructured) bool {
			return poolCount(u, "assignedIPv4") == 1 && poolCount(u, "assignedIPv6") == 2 && poolCount(u, "availableIPv6") == 2
		})
	})

	t.Run("ConfigProblems", func(t *testing.T) {
		// Overlapping pools: the newer one is out, both say so, and the older
		// keeps serving.
		apply(t, bed, poolYAML("intruder", []string{"203.0.113.80/32"}, ""))
		waitPool(t, bed, "intruder", "not Ready, names the other pool", func(u *unstructured.Unstructured) bool {
			s, msg := condition(u, "Ready")
			c, _ := condition(u, "Conflicting")
			return s == "False" && c == "True" && strings.Contains(msg, `pool "dual"`)
		})
		waitPool(t, bed, "dual", "Conflicting but Ready", func(u *unstructured.Unstructured) bool {
			s, _ := condition(u, "Ready")
			c, msg := condition(u, "Conflicting")
			return s == "True" && c == "True" && strings.Contains(msg, `"intruder"`)
		})
		createService(t, bed, lbService{ns: "dual", name: "after-intruder", families: []corev1.IPFamily{corev1.IPv4Protocol}})
		waitIPs(t, bed, "dual", "after-intruder", "203.0.113.81")

		// A reference to a missing BFD profile.
		apply(t, bed, "apiVersion: herald.io/v1beta1\nkind: BGPPeer\nmetadata: {name: nobfd}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 198.18.0.1, bfdProfile: missing}\n")
		peerGVK := schema.GroupVersionKind{Group: "herald.io", Version: "v1beta1", Kind: "BGPPeer"}
		ri, _ := bed.Resource(peerGVK, "")
		eventually(t, 20*time.Second, "BGPPeer nobfd reports the missing profile", func() (bool, string) {
			u, err := ri.Get(context.Background(), "nobfd", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			s, msg := condition(u, "Ready")
			return s == "False" && strings.Contains(msg, `spec.bfdProfile: BFDProfile "missing" does not exist`), s + " " + msg
		})
	})
}

// svcIPIndex returns every address in Service status, mapped to its
// holders, and the keys of the LoadBalancer Services without an address.
func svcIPIndex(t testing.TB, bed *testbed.Bed, ns string) (map[string][]string, []string) {
	t.Helper()
	list, err := bed.Client.CoreV1().Services(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	holders := map[string][]string{}
	var pending []string
	for _, s := range list.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		ips := ingressIPs(&s)
		if len(ips) == 0 {
			pending = append(pending, s.Name)
		}
		for _, ip := range ips {
			holders[ip] = append(holders[ip], s.Name)
		}
	}
	return holders, pending
}

func assertNoDuplicates(t testing.TB, holders map[string][]string) {
	t.Helper()
	for ip, h := range holders {
		if len(h) > 1 {
			t.Errorf("%s is held by %d Services: %v", ip, len(h), h)
		}
	}
}

// createMany creates n LoadBalancer Services named prefix-i in ns, with
// parallel requests.
func createMany(t testing.TB, bed *testbed.Bed, ns, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	if err := bed.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	no := false
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", prefix, i)},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: &no,
					Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
			}
			_, err := bed.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				errs <- err
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	close(errs)
	for err := range errs {
		t.Fatalf("create services: %v", err)
	}
}

// TestControllerRestartSafety kills the controller with SIGKILL halfway
// through a 2,000-Service backlog and starts it again: no address may be
// held twice, and every Service ends up with one.
func TestControllerRestartSafety(t *testing.T) {
	bed := controllerBed(t, false)
	apply(t, bed, poolYAML("big", []string{"203.0.113.0/24", "198.18.128.0/20"}, "  serviceAllocation: {namespaces: [backlog]}\n"))
	const n = 2000
	createMany(t, bed, "backlog", "svc", n)
	p := startController(t, bed, "controller-1")
	eventually(t, 2*time.Minute, "half of the backlog served", func() (bool, string) {
		holders, _ := svcIPIndex(t, bed, "backlog")
		return len(holders) >= n/2, fmt.Sprint(len(holders))
	})
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	holders, pending := svcIPIndex(t, bed, "backlog")
	t.Logf("killed the controller with %d Services served and %d pending", len(holders), len(pending))
	assertNoDuplicates(t, holders)

	startController(t, bed, "controller-2")
	eventually(t, 3*time.Minute, "whole backlog served after the restart", func() (bool, string) {
		_, pending := svcIPIndex(t, bed, "backlog")
		return len(pending) == 0, fmt.Sprintf("%d pending", len(pending))
	})
	holders, _ = svcIPIndex(t, bed, "backlog")
	assertNoDuplicates(t, holders)
	if len(holders) != n {
		t.Errorf("%d distinct addresses for %d Services", len(holders), n)
	}
}

// TestControllerLeaderFailover runs two replicas with leader election and
// kills the leader repeatedly while Services come and go.
func TestControllerLeaderFailover(t *testing.T) {
	bed := controllerBed(t, false)
	apply(t, bed, poolYAML("ha", []string{"203.0.113.0/24"}, "  serviceAllocation: {namespaces: [ha]}\n"))
	le := []string{"--leader-elect", "--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "500ms"}
	replicas := map[string]*testbed.Process{}
	start := func(id string) {
		replicas[id] = startController(t, bed, id, append(le, "--identity", id)...)
	}
	start("replica-a")
	start("replica-b")
	ctx := context.Background()
	holder := func() string { return leaseHolder(bed) }

	created := 0
	churn := func(k int) {
		createMany(t, bed, "ha", fmt.Sprintf("round%d", k), 40)
		created += 40
		// Delete a few of the previous round's Services.
		for i := range 10 {
			_ = bed.Client.CoreV1().Services("ha").Delete(ctx, fmt.Sprintf("round%d-%d", k-1, i), metav1.DeleteOptions{})
		}
	}
	for round := range 3 {
		var leader string
		eventually(t, 30*time.Second, "a leader", func() (bool, string) {
			leader = holder()
			return replicas[leader] != nil && replicas[leader].Running(), leader
		})
		churn(round)
		t.Logf("round %d: killing leader %s", round, leader)
		if err := replicas[leader].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		<-replicas[leader].Exited()
		churn(round + 10)
		eventually(t, 30*time.Second, "the standby takes over", func() (bool, string) {
			h := holder()
			return h != leader && replicas[h] != nil && replicas[h].Running(), h
		})
		t.Logf("round %d: %s took over %s after the kill (lease 3s)", round, holder(), time.Since(killed).Round(10*time.Millisecond))
		// A restarted replica comes back under a new identity, as a new pod.
		start(fmt.Sprintf("replica-%d", round))
	}
	eventually(t, 60*time.Second, "every Service served", func() (bool, string) {
		_, pending := svcIPIndex(t, bed, "ha")
		return len(pending) == 0, fmt.Sprintf("%d pending: %v", len(pending), pending)
	})
	holders, _ := svcIPIndex(t, bed, "ha")
	assertNoDuplicates(t, holders)
	t.Logf("%d Services served by %d distinct addresses after 3 leader kills", created, len(holders))
}
