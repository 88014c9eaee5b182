package k8s

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderConfig says how a replica competes for leadership.
type LeaderConfig struct {
	// Namespace and Name locate the Lease.
	Namespace, Name string
	// Identity names this replica; it must be unique (the pod name).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's timings.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// RunAsLeader blocks until this replica leads, then calls lead with a
// context that ends when leadership is lost or ctx ends. It returns when
// lead returns or leadership is lost; a lost leadership is an error, so the
// binary exits and restarts with fresh state.
func RunAsLeader(ctx context.Context, c *Clients, cfg LeaderConfig, log *slog.Logger, lead func(context.Context)) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Name},
		Client:     c.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := false
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.Info("became leader", "identity", cfg.Identity)
				lead(ctx)
				cancel()
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					lost = true
				}
				log.Info("stopped leading", "identity", cfg.Identity)
			},
			OnNewLeader: func(id string) {
				if id != cfg.Identity {
					log.Info("standing by", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx)
	if lost {
		return fmt.Errorf("leader election: lost the lease %s/%s", cfg.Namespace, cfg.Name)
	}
	return nil
}
