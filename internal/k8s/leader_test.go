package k8s

import (
	"context"
	"errors"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/heraldlb/herald/internal/fence"
)

// TestFencedLockRelease: a replica releases the Lease only when the record
// it read last names it. A deposed leader (paused past its lease) that
// still believes it leads must leave its successor's Lease alone.
func TestFencedLockRelease(t *testing.T) {
	for _, tc := range []struct {
		name, holder string
		released     bool
	}{
		{name: "this replica holds the Lease", holder: "a", released: true},
		{name: "a successor holds the Lease", holder: "b"},
		{name: "nobody holds the Lease", holder: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			holder := tc.holder
			kube := fake.NewClientset(&coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Namespace: "herald-system", Name: "herald-controller"},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder},
			})
			lock := &fencedLock{fence: fence.New(time.Second), Interface: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Namespace: "herald-system", Name: "herald-controller"},
				Client:     kube.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: "a"},
			}}
			// What client-go's release does: read, then write a record
			// with no holder.
			if _, _, err := lock.Get(ctx); err != nil {
				t.Fatal(err)
			}
			err := lock.Update(ctx, resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1})
			if tc.released != (err == nil) {
				t.Fatalf("release: error %v, want released=%v", err, tc.released)
			}
			if !tc.released && !errors.Is(err, errNotHolder) {
				t.Errorf("release refused with %v, want errNotHolder", err)
			}
			l, err := kube.CoordinationV1().Leases("herald-system").Get(ctx, "herald-controller", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := tc.holder
			if tc.released {
				want = ""
			}
			if got := *l.Spec.HolderIdentity; got != want {
				t.Errorf("the Lease names %q after the release, want %q", got, want)
			}
		})
	}
}
