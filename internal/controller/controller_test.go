package controller

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/fence"
	"github.com/heraldlb/herald/internal/k8s"
)

// fixture is a Controller on a fake clientset, with its caches filled by
// hand (sample-controller style): no API server, no informers running.
type fixture struct {
	c    *Controller
	kube *fake.Clientset
}

func newFixture(t *testing.T, f *fence.Fence, objs ...runtime.Object) *fixture {
	t.Helper()
	clients, err := k8s.NewClients(&rest.Config{Host: "http://127.0.0.1:1"}) // never contacted
	if err != nil {
		t.Fatal(err)
	}
	kube := fake.NewClientset(objs...)
	clients.Kube = kube
	c, err := New(context.Background(), clients, record.NewFakeRecorder(100), Options{Namespace: "herald-system", Fence: f})
	if err != nil {
		t.Fatal(err)
	}
	pool := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: 1},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/30"}}}
	if err := c.herald.Pools.GetStore().Add(pool); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if svc, ok := o.(*corev1.Service); ok {
			if err := c.factory.Core().V1().Services().Informer().GetIndexer().Add(svc); err != nil {
				t.Fatal(err)
			}
			c.pin(svc)
		}
	}
	c.rebuildConfig()
	return &fixture{c: c, kube: kube}
}

func lbService(name, rv string, ips ...string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func patches(kube *fake.Clientset) []k8stesting.PatchAction {
	var out []k8stesting.PatchAction
	for _, a := range kube.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			out = append(out, p)
		}
	}
	return out
}

func TestSyncServiceFenced(t *testing.T) {
	f := newFixture(t, fence.New(time.Second), lbService("a", "7"))
	err := f.c.syncService(context.Background(), "ns/a")
	if !errors.Is(err, fence.ErrNotHeld) {
		t.Fatalf("sync without the lease: err = %v, want ErrNotHeld", err)
	}
	if p := patches(f.kube); len(p) != 0 {
		t.Fatalf("a replica without a valid lease sent %d patches", len(p))
	}
}

func TestSyncServiceConditionalWrite(t *testing.T) {
	f := newFixture(t, fence.Open(), lbService("a", "7"))
	if err := f.c.syncService(context.Background(), "ns/a"); err != nil {
		t.Fatal(err)
	}
	p := patches(f.kube)
	if len(p) != 1 || p[0].GetSubresource() != "status" {
		t.Fatalf("patches = %v, want one status patch", p)
	}
	if body := string(p[0].GetPatch()); !strings.Contains(body, `"resourceVersion":"7"`) || !strings.Contains(body, "203.0.113.0") {
		t.Fatalf("patch %s is not conditional on resourceVersion 7, or lacks the address", body)
	}
}

// TestOneWritePerAllocation: a new Service's address and its pool
// annotation go out in one write; the annotation queue is only for a
// Service whose status is already right.
func TestOneWritePerAllocation(t *testing.T) {
	b := lbService("b", "8", "203.0.113.2")
	vip := corev1.LoadBalancerIPModeVIP
	b.Status.LoadBalancer.Ingress[0].IPMode = &vip
	f := newFixture(t, fence.Open(), lbService("a", "7"), b)
	for _, key := range []string{"ns/b", "ns/a"} {
		if err := f.c.syncService(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	p := patches(f.kube)
	if len(p) != 1 || p[0].GetName() != "a" {
		t.Fatalf("patches = %v, want one, of a", p)
	}
	if body := string(p[0].GetPatch()); !strings.Contains(body, `"`+AnnotationAllocatedFromPool+`":"p"`) {
		t.Fatalf("a's status patch %s does not set the pool annotation: a second write would", body)
	}
	if n := f.c.annQueue.Len(); n != 1 {
		t.Fatalf("%d Services queued for their annotation, want 1 (b, whose status was already right)", n)
	}
	if key, _ := f.c.annQueue.Get(); key != "ns/b" {
		t.Fatalf("queued %s for its annotation, want ns/b", key)
	}
}

func TestSyncServiceConflictRetries(t *testing.T) {
	f := newFixture(t, fence.Open(), lbService("a", "7"))
	f.kube.PrependReactor("patch", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "services"}, "a", errors.New("changed"))
	})
	err := f.c.syncService(context.Background(), "ns/a")
	if !apierrors.IsConflict(err) {
		t.Fatalf("err = %v, want a conflict (so the Service is queued again)", err)
	}
}

// TestSyncServiceKeepsShownAddress: a Service whose status shows an address
// the allocator does not know (a former leader wrote it after this one
// restored) keeps it, and no other Service gets it.
func TestSyncServiceKeepsShownAddress(t *testing.T) {
	f := newFixture(t, fence.Open(), lbService("a", "7", "203.0.113.2"), lbService("b", "8"))
	if err := f.c.syncService(context.Background(), "ns/b"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.syncService(context.Background(), "ns/a"); err != nil {
		t.Fatal(err)
	}
	for _, p := range patches(f.kube) {
		if p.GetName() == "a" && p.GetSubresource() == "status" && !strings.Contains(string(p.GetPatch()), "203.0.113.2") {
			t.Fatalf("a's address was changed: %s", p.GetPatch())
		}
		if p.GetName() == "b" && strings.Contains(string(p.GetPatch()), "203.0.113.2") {
			t.Fatalf("b was given a's address: %s", p.GetPatch())
		}
	}
}

// TestSetAccepted checks the judgement recorded in status: the current spec
// when valid, the accepted one kept through a bad edit, none for an object
// never valid.
func TestSetAccepted(t *testing.T) {
	good := func(gen int64, addr string) *v1beta1.IPAddressPool {
		return &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen},
			Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{v1beta1.AddressRange(addr)}}}
	}
	bad := config.Problem{Kind: config.KindIPAddressPool, Name: "p", Reason: config.ReasonInvalidField}
	kept := bad
	kept.KeptPrevious = true
	warning := config.Problem{Kind: config.KindIPAddressPool, Name: "p", Reason: config.ReasonOverlap, Warning: true}

	p := good(1, "203.0.113.0/24")
	if changed, err := setAccepted(p, nil); err != nil || !changed {
		t.Fatalf("first judgement: changed=%v err=%v", changed, err)
	}
	if changed, _ := setAccepted(p, []config.Problem{warning}); changed {
		t.Fatal("the same judgement again wrote the status")
	}
	// The API server returns the stored spec with sorted keys: still equal.
	p.Status.AcceptedSpec.Raw = []byte(`{"addresses":["203.0.113.0/24"]}`)
	if changed, _ := setAccepted(p, nil); changed {
		t.Fatal("a re-encoded accepted spec counted as a change")
	}
	edited := good(2, "203.0.113.0/33")
	edited.Status = p.Status
	if changed, _ := setAccepted(edited, []config.Problem{kept}); changed || edited.Status.AcceptedGeneration != 1 {
		t.Fatalf("a bad edit replaced the accepted spec: generation %d", edited.Status.AcceptedGeneration)
	}
	if changed, _ := setAccepted(edited, []config.Problem{bad}); !changed || edited.Status.AcceptedSpec != nil {
		t.Fatal("an object with no valid version kept an accepted spec")
	}
}

// TestWarningsRecordedOnce: a Service with two MetalLB alias annotations
// gets each warning once, however often it is synced; so does a failure,
// until the Service is served again.
func TestWarningsRecordedOnce(t *testing.T) {
	svc := lbService("a", "7")
	svc.Annotations = map[string]string{"metallb.universe.tf/address-pool": "p", "metallb.io/allow-shared-ip": "k"}
	f := newFixture(t, fence.Open(), svc)
	rec := f.c.recorder.(*record.FakeRecorder)
	for range 4 {
		_ = f.c.syncService(context.Background(), "ns/a")
	}
	events := drain(rec)
	aliases := 0
	for _, e := range events {
		if strings.Contains(e, ReasonDeprecatedAlias) {
			aliases++
		}
	}
	if aliases != 2 {
		t.Fatalf("%d alias warnings after 4 syncs, want 2 (one per annotation): %q", aliases, events)
	}
}

func drain(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// statusIPs returns the addresses of the last status patch of each Service.
func statusIPs(t *testing.T, kube *fake.Clientset) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range patches(kube) {
		if p.GetSubresource() != "status" {
			continue
		}
		var body struct {
			Status corev1.ServiceStatus `json:"status"`
		}
		if err := json.Unmarshal(p.GetPatch(), &body); err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, in := range body.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		out[p.GetName()] = strings.Join(ips, ",")
	}
	return out
}

// TestRelease: a deleted Service's address goes back to the pool, and the
// Service that waited for one gets it.
func TestRelease(t *testing.T) {
	ctx := context.Background()
	names := []string{"a", "b", "c", "d", "e"}
	var objs []runtime.Object
	for _, n := range names {
		objs = append(objs, lbService(n, "1"))
	}
	f := newFixture(t, fence.Open(), objs...)
	for _, n := range names {
		_ = f.c.syncService(ctx, "ns/"+n)
	}
	got := statusIPs(t, f.kube)
	if len(got) != 4 || got["e"] != "" {
		t.Fatalf("a pool of 4 addresses gave %v; e must wait", got)
	}
	freed := got["a"]
	store := f.c.factory.Core().V1().Services().Informer().GetIndexer()
	if err := store.Delete(lbService("a", "1")); err != nil {
		t.Fatal(err)
	}
	if err := f.c.syncService(ctx, "ns/a"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.syncService(ctx, "ns/e"); err != nil {
		t.Fatal(err)
	}
	if got := statusIPs(t, f.kube); got["e"] != freed {
		t.Fatalf("after a was deleted, e got %q, want a's %s", got["e"], freed)
	}
}

// TestRestore: a new leader loads the addresses that Services show, oldest
// Service first; a younger Service that shows the same address is moved,
// and nobody else is given a restored address.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	aged := func(s *corev1.Service, age time.Duration) *corev1.Service {
		s.CreationTimestamp = metav1.NewTime(time.Now().Add(-age))
		return s
	}
	old := aged(lbService("old", "1", "203.0.113.1"), time.Hour)
	dup := aged(lbService("dup", "2", "203.0.113.1"), time.Minute)
	other := aged(lbService("other", "3", "203.0.113.2"), time.Minute)
	fresh := aged(lbService("fresh", "4"), time.Second)
	f := newFixture(t, fence.Open())
	store := f.c.factory.Core().V1().Services().Informer().GetIndexer()
	for _, s := range []*corev1.Service{old, dup, other, fresh} {
		if _, err := f.kube.CoreV1().Services(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := store.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	n, err := f.c.restore(ctx)
	if err != nil || n != 2 {
		t.Fatalf("restore: %d assignments, err %v; want 2 (old and other)", n, err)
	}
	for _, k := range []string{"ns/fresh", "ns/dup", "ns/old", "ns/other"} {
		if err := f.c.syncService(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	got := statusIPs(t, f.kube)
	if ip, ok := got["old"]; ok && ip != "203.0.113.1" {
		t.Errorf("the oldest Service lost its address: %v", got)
	}
	if ip, ok := got["other"]; ok && ip != "203.0.113.2" {
		t.Errorf("a restored Service lost its address: %v", got)
	}
	for _, k := range []string{"fresh", "dup"} {
		if ip := got[k]; ip == "" || ip == "203.0.113.1" || ip == "203.0.113.2" {
			t.Errorf("%s got %q: it must get a free address", k, ip)
		}
	}
	if got["fresh"] == got["dup"] {
		t.Errorf("fresh and dup both got %s", got["dup"])
	}
}
