package speaker

import (
	"context"
	"log/slog"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/heraldlb/herald/internal/k8s"
)

// TestStopsForGood: on SIGTERM a speaker withdraws its BGP routes (for
// good) when Herald is being uninstalled, and leaves them to graceful
// restart otherwise; an API error is a restart.
func TestStopsForGood(t *testing.T) {
	const ns = "herald-system"
	now := metav1.Now()
	ds := func(uid string, deleting bool) *appsv1.DaemonSet {
		d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "herald-speaker", Namespace: ns, UID: "ds-1"}}
		if uid != "" {
			d.UID = types.UID("ds-" + uid)
		}
		if deleting {
			d.DeletionTimestamp = &now
		}
		return d
	}
	yes := true
	// Told to stop: the pod is being deleted, in a roll as in an uninstall.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "herald-speaker-abcde", Namespace: ns, DeletionTimestamp: &now,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "herald-speaker", UID: "ds-1", Controller: &yes}}}}
	forbidden := func(resource string) k8stesting.ReactionFunc {
		return func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "x", nil)
		}
	}
	unavailable := func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd is down")
	}
	for _, tc := range []struct {
		name         string
		podName      string
		uninstalling bool
		objs         []runtime.Object
		react        map[string]k8stesting.ReactionFunc // resource → reaction to get
		want         bool
	}{
		{name: "rolling upgrade: the DaemonSet is there", podName: pod.Name, objs: []runtime.Object{pod, ds("", false)}, want: false},
		{name: "helm uninstall: the DaemonSet is gone", podName: pod.Name, objs: []runtime.Object{pod}, want: true},
		{name: "the DaemonSet is being deleted (foreground)", podName: pod.Name, objs: []runtime.Object{pod, ds("", true)}, want: true},
		{name: "the DaemonSet was deleted and made again", podName: pod.Name, objs: []runtime.Object{pod, ds("2", false)}, want: true},
		{name: "the RBAC is gone", podName: pod.Name, objs: []runtime.Object{pod, ds("", false)},
			react: map[string]k8stesting.ReactionFunc{"daemonsets": forbidden("daemonsets")}, want: true},
		{name: "the namespace is being deleted", podName: pod.Name, uninstalling: true, objs: []runtime.Object{pod, ds("", false)}, want: true},
		{name: "API server unavailable", podName: pod.Name, objs: []runtime.Object{pod, ds("", false)},
			react: map[string]k8stesting.ReactionFunc{"pods": unavailable}, want: false},
		{name: "not run by a DaemonSet", objs: []runtime.Object{ds("", false)}, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fake.NewClientset(tc.objs...)
			for res, r := range tc.react {
				kube.PrependReactor("get", res, r)
			}
			s := &Speaker{cfg: Config{Namespace: ns, PodName: tc.podName, Clients: &k8s.Clients{Kube: kube}}, log: slog.New(slog.DiscardHandler)}
			s.uninstalling.Store(tc.uninstalling)
			got, why := s.stopsForGood(context.Background())
			if got != tc.want {
				t.Errorf("stopsForGood = %v (%s), want %v", got, why, tc.want)
			}
			t.Logf("%v: %s", got, why)
		})
	}
}
