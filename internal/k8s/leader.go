package k8s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/heraldlb/herald/internal/fence"
)

// LeaderConfig says how a replica competes for leadership.
type LeaderConfig struct {
	// Namespace and Name locate the Lease.
	Namespace, Name string
	// Identity names this replica; it must be unique (the pod name).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's timings.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Fence learns of every successful write of the Lease that names this
	// replica; make it with fence.New(RenewDeadline), so that writes stop
	// at the latest when client-go itself would give up, and always
	// LeaseDuration-RenewDeadline before another replica may take over.
	Fence *fence.Fence
}

// fencedLock is a Lease lock that tells the fence when a write naming this
// replica succeeded, and when it was sent. It also keeps a deposed replica
// from releasing its successor's lease: client-go's release reads the Lease
// (which refreshes the resourceVersion its update is conditional on) but
// decides whether this replica leads from the record it observed last. A
// replica paused past its lease still believes it leads when it resumes,
// so on its way out it would clear the holder a successor wrote, and a
// third replica could take the Lease while the successor still writes.
type fencedLock struct {
	resourcelock.Interface
	fence *fence.Fence

	mu sync.Mutex
	// holder is the holder in the record Get read last: the record the
	// next Update is conditional on.
	holder string
}

// errNotHolder refuses a release of a Lease another replica holds.
var errNotHolder = errors.New("the Lease names another holder: not releasing it")

func (l *fencedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	if err == nil {
		l.mu.Lock()
		l.holder = rec.HolderIdentity
		l.mu.Unlock()
	}
	return rec, raw, err
}

func (l *fencedLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	sent := time.Now()
	err := l.Interface.Create(ctx, rec)
	if err == nil && rec.HolderIdentity == l.Identity() {
		l.fence.Renewed(sent)
	}
	return err
}

func (l *fencedLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if rec.HolderIdentity == "" {
		// A release. The update is conditional on the resourceVersion
		// of the record read last, so if that record names this
		// replica, nobody else can hold the Lease when it lands.
		l.mu.Lock()
		holder := l.holder
		l.mu.Unlock()
		if holder != l.Identity() {
			return fmt.Errorf("release %s: %w (%q)", l.Describe(), errNotHolder, holder)
		}
	}
	sent := time.Now()
	err := l.Interface.Update(ctx, rec)
	if err == nil && rec.HolderIdentity == l.Identity() {
		l.fence.Renewed(sent)
	}
	return err
}

// RunAsLeader blocks until this replica leads, then calls lead with a
// context that ends when leadership is lost, the fence lapses, or ctx ends.
// It returns when lead returns or leadership is lost; a lost leadership or
// a lapsed fence is an error, so the binary exits and restarts with fresh
// state: whatever it decided before may be stale.
func RunAsLeader(ctx context.Context, c *Clients, cfg LeaderConfig, log *slog.Logger, lead func(context.Context)) error {
	if cfg.Fence == nil {
		return fmt.Errorf("leader election: no fence")
	}
	lock := &fencedLock{fence: cfg.Fence, Interface: &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     c.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := false
	lapsed := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("became leader", slog.String("identity", cfg.Identity))
				ctx, cancelLead := context.WithCancel(ctx)
				defer cancelLead()
				go cfg.Fence.Watch(ctx)
				go func() {
					select {
					case <-cfg.Fence.Lapsed():
						log.Warn("lease lapsed by this replica's clock (paused, or renewals stalled): stopping all writes and exiting",
							slog.String("identity", cfg.Identity))
						close(lapsed)
						cancelLead()
						cancel()
					case <-ctx.Done():
					}
				}()
				lead(ctx)
				cancel()
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					lost = true
				}
				log.Info("stopped leading", slog.String("identity", cfg.Identity))
			},
			OnNewLeader: func(id string) {
				if id != cfg.Identity {
					log.Info("standing by", slog.String("leader", id))
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx)
	select {
	case <-lapsed:
		return fmt.Errorf("leader election: the lease %s/%s lapsed by this replica's clock", cfg.Namespace, cfg.Name)
	default:
	}
	if lost {
		return fmt.Errorf("leader election: lost the lease %s/%s", cfg.Namespace, cfg.Name)
	}
	return nil
}
