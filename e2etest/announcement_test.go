package e2etest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/heraldlb/herald/e2etest/testbed"
)

var announcementGVK = schema.GroupVersionKind{Group: "herald.io", Version: "v1beta1", Kind: "ServiceAnnouncement"}

// announcements returns the ServiceAnnouncements of a namespace by name,
// as "node protocol ips".
func announcements(t *testing.T, ctx context.Context, b *testbed.Bed, ns string) map[string]string {
	t.Helper()
	ri, err := b.Resource(announcementGVK, ns)
	if err != nil {
		t.Fatal(err)
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range list.Items {
		node, _, _ := unstructured.NestedString(o.Object, "status", "node")
		proto, _, _ := unstructured.NestedString(o.Object, "status", "protocol")
		ips, _, _ := unstructured.NestedStringSlice(o.Object, "status", "ips")
		out[o.GetName()] = fmt.Sprintf("%s %s %s", node, proto, strings.Join(ips, ","))
	}
	return out
}

// annWrites sums herald_announcement_status_writes_total over the live
// speakers of the given nodes.
func (b *l2Bed) annWrites(ctx context.Context, nodes ...string) (float64, string) {
	total, per := 0.0, []string{}
	for _, name := range nodes {
		m, err := b.metrics(ctx, b.node(name))
		if err != nil {
			return -1, err.Error()
		}
		v := m[`herald_announcement_status_writes_total{op="apply"}`] + m[`herald_announcement_status_writes_total{op="delete"}`]
		total += v
		per = append(per, fmt.Sprintf("%s=%v", name, v))
	}
	return total, strings.Join(per, " ")
}

// announcementsFollow checks that the ServiceAnnouncement of web names its
// owner, follows it when the owner's speaker is killed (the new owner
// corrects the dead owner's object, with one write), costs nothing while
// nothing changes, and is deleted with its Service.
func announcementsFollow(t *testing.T, ctx context.Context, b *l2Bed, addr netip.Addr) {
	ip := addr.String()
	want := func(node string) {
		t.Helper()
		eventually(t, 20*time.Second, "web.l2 names "+node, func() (bool, string) {
			got := announcements(t, ctx, b.Bed, "default")
			return got["web.l2"] == node+" L2 "+ip, fmt.Sprint(got)
		})
	}
	owner := b.waitOwner(ctx, addr)
	want(owner)
	other := "node1"
	if owner == "node1" {
		other = "node2"
	}
	// Steady state: nothing changes, nothing is written. On a loaded
	// machine memberlist may flap once (a real change of owner, which
	// costs its writes), so one silent 5 s window in three is the test: a
	// writer that writes on a timer or on its own echo is never silent.
	silent := false
	for i := 0; i < 3 && !silent; i++ {
		before, s0 := b.annWrites(ctx, "node1", "node2")
		time.Sleep(5 * time.Second)
		after, s1 := b.annWrites(ctx, "node1", "node2")
		silent = after == before
		if !silent {
			t.Logf("ServiceAnnouncement writes in a window where the test changed nothing (a membership flap?): %s -> %s", s0, s1)
		}
	}
	if !silent {
		t.Errorf("ServiceAnnouncement writes in three 5 s windows in a row while nothing changed")
	}
	owner = b.waitOwner(ctx, addr)
	want(owner)
	other = "node1"
	if owner == "node1" {
		other = "node2"
	}

	// The owner dies: its speaker is killed, and cannot write anything.
	w0, _ := b.annWrites(ctx, other)
	if err := b.speakers[owner].Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	b.waitOwner(ctx, addr, other)
	want(other)
	t.Logf("FIGURE web.l2 names the new owner %s %v after its old owner's speaker was killed", other, time.Since(killed).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	w1, s := b.annWrites(ctx, other)
	t.Logf("FIGURE ServiceAnnouncement writes by the new owner for the failover: %v (%s)", w1-w0, s)
	if w1-w0 != 1 {
		t.Errorf("the new owner wrote %v times for one change of owner of one IP; want 1", w1-w0)
	}
	b.startSpeaker(ctx, b.node(owner))
	b.waitMembers(ctx, 2)
	back := b.waitOwner(ctx, addr)
	want(back)
	if got := announcements(t, ctx, b.Bed, "default"); len(got) != 1 {
		t.Errorf("announcements after the restart: %v, want web.l2 only", got)
	}

	// A Service that goes away takes its object with it.
	gone := b.service(ctx, testbed.ServiceSpec{Name: "gone", Pods: b.podsOn("node1", "node2")}, 1)
	eventually(t, 20*time.Second, "gone.l2 exists", func() (bool, string) {
		got := announcements(t, ctx, b.Bed, "default")
		return strings.HasSuffix(got["gone.l2"], " L2 "+gone[0].String()), fmt.Sprint(got)
	})
	if err := b.Client.CoreV1().Services("default").Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "gone.l2 is deleted with its Service", func() (bool, string) {
		got := announcements(t, ctx, b.Bed, "default")
		_, ok := got["gone.l2"]
		return !ok, fmt.Sprint(got)
	})
	t.Logf("ServiceAnnouncements: %v", announcements(t, ctx, b.Bed, "default"))
	if names := slices.Collect(func(yield func(string) bool) {
		for k := range announcements(t, ctx, b.Bed, "default") {
			if !yield(k) {
				return
			}
		}
	}); len(names) != 1 {
		t.Errorf("announcements %v, want web.l2 only", names)
	}
}

// deadOwnerObjectGoes deletes a Service right after its owner's speaker
// is killed, before the survivors notice: nobody owns the Service's key any
// more when the owner leaves the memberlist, so the dead owner's
// <service>.l2 object is the survivors' to delete (the reporter's), before
// the dead speaker comes back.
func deadOwnerObjectGoes(t *testing.T, ctx context.Context, b *l2Bed) {
	ips := b.service(ctx, testbed.ServiceSpec{Name: "orphan", Pods: b.podsOn("node1", "node2")}, 1)
	var owner string
	eventually(t, 20*time.Second, "orphan.l2 exists", func() (bool, string) {
		got := announcements(t, ctx, b.Bed, "default")
		owner, _, _ = strings.Cut(got["orphan.l2"], " ")
		return strings.HasSuffix(got["orphan.l2"], " L2 "+ips[0].String()), fmt.Sprint(got)
	})
	if err := b.speakers[owner].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := b.Client.CoreV1().Services("default").Delete(ctx, "orphan", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 30*time.Second, "orphan.l2 of the dead owner "+owner+" is deleted by the survivor", func() (bool, string) {
		got := announcements(t, ctx, b.Bed, "default")
		_, ok := got["orphan.l2"]
		return !ok, fmt.Sprint(got)
	})
	t.Logf("orphan.l2 (owner %s killed, Service deleted) gone %v after the deletion", owner, time.Since(start).Round(time.Millisecond))
	b.startSpeaker(ctx, b.node(owner))
	b.waitMembers(ctx, 2)
}
