package k8s

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/api/v1beta1"
)

// Handler returns informer event handlers that call f on every add and
// delete, and on the updates for which changed(old, cur) is true (every
// update when changed is nil). A delete passes the deleted object or its
// DeletedFinalStateUnknown tombstone.
func Handler(f func(obj any), changed func(old, cur any) bool) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: f,
		UpdateFunc: func(old, cur any) {
			if changed == nil || changed(old, cur) {
				f(cur)
			}
		},
		DeleteFunc: f,
	}
}

// SpecChanged reports whether an update of a Herald configuration object
// changed what configuration is built from: its spec (the generation: every
// Herald kind has a status subresource, so a status write never bumps it)
// or its labels, which pool selectors read. The echo of a status write, a
// resync or a metadata-only change report false.
func SpecChanged(old, cur any) bool {
	o, err1 := meta.Accessor(old)
	n, err2 := meta.Accessor(cur)
	if err1 != nil || err2 != nil {
		return true
	}
	return o.GetGeneration() != n.GetGeneration() || !maps.Equal(o.GetLabels(), n.GetLabels())
}

// SecretDataChanged reports whether an update changed a Secret's data.
func SecretDataChanged(old, cur any) bool {
	o, ok1 := old.(*corev1.Secret)
	n, ok2 := cur.(*corev1.Secret)
	if !ok1 || !ok2 {
		return true
	}
	return !maps.EqualFunc(o.Data, n.Data, func(a, b []byte) bool { return string(a) == string(b) })
}

// PeerSecretRefs returns the names of the Secrets that BGPPeers in the
// informers' cache use for their passwords, in their current or their
// accepted spec.
func (h *HeraldInformers) PeerSecretRefs() map[string]bool {
	refs := map[string]bool{}
	for _, o := range h.Peers.GetStore().List() {
		if p, ok := o.(*v1beta1.BGPPeer); ok && p.Spec.PasswordSecret != nil {
			refs[p.Spec.PasswordSecret.Name] = true
		}
	}
	for _, p := range acceptedAs[v1beta1.BGPPeer](h.Peers) {
		if p.Spec.PasswordSecret != nil {
			refs[p.Spec.PasswordSecret.Name] = true
		}
	}
	return refs
}

// SecretName returns the name of a Secret or of its tombstone.
func SecretName(obj any) string {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if s, ok := obj.(*corev1.Secret); ok {
		return s.Name
	}
	return ""
}

// AcceptedChanged reports whether an update of a Herald configuration
// object changed what speakers build from: its accepted spec, or its
// labels. Status writes that only change counts or conditions report false.
func AcceptedChanged(old, cur any) bool {
	o, ok1 := old.(v1beta1.Configurable)
	n, ok2 := cur.(v1beta1.Configurable)
	if !ok1 || !ok2 {
		return true
	}
	os, ns := o.ConfigStatus(), n.ConfigStatus()
	if os.AcceptedGeneration != ns.AcceptedGeneration || string(rawOf(os)) != string(rawOf(ns)) {
		return true
	}
	om, err1 := meta.Accessor(old)
	nm, err2 := meta.Accessor(cur)
	return err1 != nil || err2 != nil || !maps.Equal(om.GetLabels(), nm.GetLabels())
}

func rawOf(s *v1beta1.Status) []byte {
	if s.AcceptedSpec == nil {
		return nil
	}
	return s.AcceptedSpec.Raw
}
