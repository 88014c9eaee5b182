package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"

	"github.com/heraldlb/herald/internal/k8s"
)

// Uninstalling: a speaker tells a stop for good (Herald is being removed)
// from a restart (a rolling upgrade, a crash, a node reboot), because the
// two need opposite things.
//
//   - While Herald's namespace is being deleted (`kubectl delete -f` of the
//     manifest deletes it first, then the CRDs, whose deletion deletes every
//     pool and advertisement), the speaker keeps the configuration it has:
//     it would otherwise withdraw every address before it is told to stop,
//     and the Services would stop working before the speakers do.
//   - On SIGTERM, BGP sessions with graceful restart keep their routes at
//     the routers for a restart, but must withdraw them and send a Cease
//     when the speaker stops for good, or the routers keep routes to
//     nodes that announce nothing for the whole restart time.

// uninstallTimeout bounds the API reads that tell an uninstall from a
// restart, within the pod's termination grace period.
const uninstallTimeout = 2 * time.Second

// watchNamespace follows the speaker's own namespace (that object alone)
// and records when it is being deleted.
func (s *Speaker) watchNamespace() error {
	name := s.cfg.Namespace
	s.nsFact = informers.NewSharedInformerFactoryWithOptions(s.cfg.Clients.Kube, 0, informers.WithTransform(k8s.Transform),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + name }))
	inf := s.nsFact.Core().V1().Namespaces()
	seen := func(obj any) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil && !s.uninstalling.Swap(true) {
			s.log.Info("Herald's namespace is being deleted: Herald is being uninstalled; the speaker keeps its configuration and its announcements until it stops, then withdraws them",
				slog.String("namespace", name))
		}
	}
	if _, err := inf.Informer().AddEventHandler(k8s.Handler(seen, nil)); err != nil {
		return fmt.Errorf("speaker: namespace handler: %w", err)
	}
	return nil
}

// stopsForGood reports whether the speaker stops because Herald is being
// uninstalled, and why: its namespace is being deleted, or its DaemonSet is
// gone or being deleted, or the API server no longer lets it read them
// (its ServiceAccount or roles were deleted). Anything else, an API error
// or a speaker not run by a DaemonSet included, is a restart.
func (s *Speaker) stopsForGood(ctx context.Context) (bool, string) {
	if s.uninstalling.Load() {
		return true, "namespace " + s.cfg.Namespace + " is being deleted"
	}
	if s.cfg.PodName == "" || s.cfg.Namespace == "" {
		return false, "no pod name: not run by a DaemonSet"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), uninstallTimeout)
	defer cancel()
	c := s.cfg.Clients.Kube
	// The pod itself is being deleted whenever it is told to stop, in a
	// roll too: only its DaemonSet tells.
	pod, err := c.CoreV1().Pods(s.cfg.Namespace).Get(ctx, s.cfg.PodName, metav1.GetOptions{})
	if err != nil {
		return goneOrRefused("pod "+s.cfg.PodName, nil, err)
	}
	owner := metav1.GetControllerOf(pod)
	if owner == nil || owner.Kind != "DaemonSet" {
		return false, "pod " + pod.Name + " has no DaemonSet"
	}
	ds, err := c.AppsV1().DaemonSets(s.cfg.Namespace).Get(ctx, owner.Name, metav1.GetOptions{})
	if err == nil && ds.UID != owner.UID {
		return true, "DaemonSet " + owner.Name + " was replaced"
	}
	return goneOrRefused("DaemonSet "+owner.Name, ds, err)
}

// goneOrRefused reads the answer to a GET of what: gone (not found, being
// deleted, or the API server refuses the speaker, whose RBAC an uninstall
// deletes) or there, with the reason either way. Another error is no
// answer: not gone.
func goneOrRefused(what string, obj metav1.Object, err error) (bool, string) {
	switch {
	case apierrors.IsNotFound(err):
		return true, what + " is gone"
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return true, "the API server refuses to show " + what + " (Herald's RBAC is being deleted)"
	case err != nil:
		return false, "cannot read " + what + ": " + err.Error()
	case obj.GetDeletionTimestamp() != nil:
		return true, what + " is being deleted"
	}
	return false, what + " is there"
}
