package speaker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/layer2"
	"github.com/heraldlb/herald/internal/membership"
)

// fakeAnnouncer records what the speaker asks of the layer 2 edge.
type fakeAnnouncer struct {
	mu    sync.Mutex
	ips   map[netip.Addr][]string
	stats layer2.Stats
}

func (f *fakeAnnouncer) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *fakeAnnouncer) Reannounce()                   {}
func (f *fakeAnnouncer) Stats() *layer2.Stats          { return &f.stats }
func (f *fakeAnnouncer) Interfaces(netip.Addr) []string {
	return nil
}

func (f *fakeAnnouncer) Announce(ip netip.Addr, ifaces []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ips[ip] = ifaces
}

func (f *fakeAnnouncer) Withdraw(ip netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ips, ip)
}

func (f *fakeAnnouncer) answered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for ip := range f.ips {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

// speakerFixture is a Speaker on a fake clientset (sample-controller style):
// the built-in informers run against it, Herald's caches are filled by hand
// with accepted objects, and the memberlist and the announcer are fakes the
// test drives.
type speakerFixture struct {
	s    *Speaker
	kube *fake.Clientset
	ann  *fakeAnnouncer
}

func accepted[T v1beta1.Configurable](t *testing.T, obj T) T {
	t.Helper()
	raw, err := obj.SpecJSON()
	if err != nil {
		t.Fatal(err)
	}
	st := obj.ConfigStatus()
	st.AcceptedSpec = &runtime.RawExtension{Raw: raw}
	return obj
}

func newSpeakerFixture(t *testing.T, objs ...runtime.Object) *speakerFixture {
	t.Helper()
	clients, err := k8s.NewClients(&rest.Config{Host: "http://127.0.0.1:1"}) // never contacted
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"}}}})
	kube := fake.NewClientset(objs...)
	clients.Kube = kube
	s, err := New(Config{NodeName: "n1", Clients: clients, BGP: BGPConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	ann := &fakeAnnouncer{ips: map[netip.Addr][]string{}}
	s.announcer = ann
	pool := accepted(t, &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "l2"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"198.18.0.200-198.18.0.250"}}})
	adv := accepted(t, &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "all"},
		Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}}})
	if err := s.herald.Pools.GetStore().Add(pool); err != nil {
		t.Fatal(err)
	}
	if err := s.herald.L2Advertisements.GetStore().Add(adv); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.factory.Start(ctx.Done())
	for typ, ok := range s.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("%v cache not synced", typ)
		}
	}
	meta, _ := json.Marshal(memberMeta{Interfaces: []string{"eth0"}})
	s.applyMember(membership.Event{Type: membership.EventJoin, Member: membership.Member{Name: "n1", Meta: meta}}, map[string]bool{})
	return &speakerFixture{s: s, kube: kube, ann: ann}
}

// step runs the loop's handling of what the informers reported so far.
func (f *speakerFixture) step() {
	select {
	case <-f.s.pend.signal:
	default:
	}
	f.s.process(context.Background())
}

// await runs the loop as informer events arrive until the node answers for
// exactly ips.
func (f *speakerFixture) await(t *testing.T, what string, ips ...string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		got := f.ann.answered()
		if slices.Equal(got, ips) || (len(got) == 0 && len(ips) == 0) {
			return
		}
		select {
		case <-f.s.pend.signal:
			f.s.process(context.Background())
		case <-deadline:
			t.Fatalf("%s: the node answers for %v, want %v", what, got, ips)
		}
	}
}

func lbStatus(svc *corev1.Service, ips ...string) *corev1.Service {
	svc.Status.LoadBalancer.Ingress = nil
	for _, ip := range ips {
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return svc
}

// TestSpeakerLoop drives the loop the way the informers and the memberlist
// do: nothing is announced before the membership settled; a Service's
// address is announced, follows a status change, and is withdrawn when the
// Service goes.
func TestSpeakerLoop(t *testing.T) {
	svc := lbService("web", "198.18.0.200")
	f := newSpeakerFixture(t, svc)
	ctx := context.Background()

	f.s.pend.mark(func() { f.s.pend.config, f.s.pend.peers = true, true })
	f.s.pend.node("n1")
	f.step()
	f.await(t, "before the membership settled")
	select {
	case <-f.s.settleCh:
	default:
		t.Fatal("a speaker without peers must settle at once")
	}
	f.s.applySettled()
	f.await(t, "settled", "198.18.0.200")
	rebuilds, _ := f.s.Work()

	svc = lbStatus(svc.DeepCopy(), "198.18.0.201")
	if _, err := f.kube.CoreV1().Services("ns").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.await(t, "after the status changed", "198.18.0.201")

	if err := f.kube.CoreV1().Services("ns").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.await(t, "after the Service was deleted")
	if r, _ := f.s.Work(); r != rebuilds {
		t.Errorf("Service events rebuilt the configuration %d times", r-rebuilds)
	}
	if v4, _ := f.s.AnnouncedIPs(); v4 != 0 {
		t.Errorf("the announced-IP gauge reads %d after the withdrawal", v4)
	}
}

// TestSpeakerLocalTraffic: under externalTrafficPolicy: Local the node
// answers only once an EndpointSlice puts a ready endpoint on it.
func TestSpeakerLocalTraffic(t *testing.T) {
	svc := lbService("local", "198.18.0.210")
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	f := newSpeakerFixture(t, svc)
	f.s.pend.mark(func() { f.s.pend.config, f.s.pend.peers = true, true })
	f.step()
	f.s.applySettled()
	f.await(t, "no endpoint")

	node := "n1"
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.18.17.10"}, NodeName: &node}},
	}
	if _, err := f.kube.DiscoveryV1().EndpointSlices("ns").Create(context.Background(), es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.await(t, "an endpoint on this node", "198.18.0.210")
}

// TestSpeakerTakeoverLogsOnce: a takeover of many addresses is one log line
// that counts them, not one line per address.
func TestSpeakerTakeoverLogsOnce(t *testing.T) {
	var objs []runtime.Object
	for i := range 20 {
		objs = append(objs, lbService(fmt.Sprintf("web%d", i), fmt.Sprintf("198.18.0.%d", 200+i)))
	}
	f := newSpeakerFixture(t, objs...)
	var buf bytes.Buffer
	f.s.log = slog.New(slog.NewTextHandler(&buf, nil))
	f.s.pend.mark(func() { f.s.pend.config, f.s.pend.peers = true, true })
	f.step()
	// Every Service is known before the membership settles, as at a
	// takeover: one plan takes them all.
	for deadline := time.Now().Add(5 * time.Second); len(slices.Collect(f.s.st.GroupKeys())) < 20; {
		if time.Now().After(deadline) {
			t.Fatalf("the speaker knows %d Services, want 20", len(slices.Collect(f.s.st.GroupKeys())))
		}
		select {
		case <-f.s.pend.signal:
			f.s.process(context.Background())
		case <-time.After(100 * time.Millisecond):
		}
	}
	f.s.applySettled()
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprintf("198.18.0.%d", 200+i))
	}
	slices.Sort(want)
	f.await(t, "settled", want...)
	lines := 0
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "msg=announcing") {
			lines++
			if !strings.Contains(l, "keys=20 ips=20") {
				t.Errorf("the line does not count the takeover: %s", l)
			}
		}
	}
	if lines != 1 {
		t.Errorf("taking 20 addresses over logged %d lines, want 1:\n%s", lines, buf.String())
	}
}
