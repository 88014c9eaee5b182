package k8s

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/api/v1beta1"
)

// Resource names of Herald's kinds.
const (
	ResourceIPAddressPools    = "ipaddresspools"
	ResourceL2Advertisements  = "l2advertisements"
	ResourceBGPAdvertisements = "bgpadvertisements"
	ResourceBGPPeers          = "bgppeers"
	ResourceBFDProfiles       = "bfdprofiles"
	ResourceCommunities       = "communities"
)

// HeraldInformers hold one informer per Herald kind.
type HeraldInformers struct {
	Pools, L2Advertisements, BGPAdvertisements, Peers, BFDProfiles, Communities cache.SharedIndexInformer
}

// NewHeraldInformers creates the informers; Run starts them.
func NewHeraldInformers(c *Clients, resync time.Duration) *HeraldInformers {
	inf := func(resource string, obj runtime.Object) cache.SharedIndexInformer {
		lw := cache.NewListWatchFromClient(c.Herald, resource, metav1.NamespaceAll, fields.Everything())
		i := cache.NewSharedIndexInformer(lw, obj, resync, cache.Indexers{})
		_ = i.SetTransform(Transform) // fails only once the informer runs
		return i
	}
	return &HeraldInformers{
		Pools:             inf(ResourceIPAddressPools, &v1beta1.IPAddressPool{}),
		L2Advertisements:  inf(ResourceL2Advertisements, &v1beta1.L2Advertisement{}),
		BGPAdvertisements: inf(ResourceBGPAdvertisements, &v1beta1.BGPAdvertisement{}),
		Peers:             inf(ResourceBGPPeers, &v1beta1.BGPPeer{}),
		BFDProfiles:       inf(ResourceBFDProfiles, &v1beta1.BFDProfile{}),
		Communities:       inf(ResourceCommunities, &v1beta1.Community{}),
	}
}

// All returns every informer.
func (h *HeraldInformers) All() []cache.SharedIndexInformer {
	return []cache.SharedIndexInformer{h.Pools, h.L2Advertisements, h.BGPAdvertisements, h.Peers, h.BFDProfiles, h.Communities}
}

// Run starts the informers; they stop with ctx.
func (h *HeraldInformers) Run(ctx context.Context) {
	for _, i := range h.All() {
		go i.RunWithContext(ctx)
	}
}

// HasSynced reports whether every informer has synced.
func (h *HeraldInformers) HasSynced() bool {
	for _, i := range h.All() {
		if !i.HasSynced() {
			return false
		}
	}
	return true
}

// AddHandler registers one handler on every informer.
func (h *HeraldInformers) AddHandler(handler cache.ResourceEventHandler) error {
	for _, i := range h.All() {
		if _, err := i.AddEventHandler(handler); err != nil {
			return err
		}
	}
	return nil
}

// listAs returns an informer's objects as values of type T.
func listAs[T any](i cache.SharedIndexInformer) []T {
	items := i.GetStore().List()
	out := make([]T, 0, len(items))
	for _, o := range items {
		out = append(out, *o.(*T))
	}
	return out
}

// Lists returns the objects in the informers' caches. The values are
// shallow copies: callers must not modify what they point to.
func (h *HeraldInformers) Lists() (pools []v1beta1.IPAddressPool, l2 []v1beta1.L2Advertisement, bgp []v1beta1.BGPAdvertisement,
	peers []v1beta1.BGPPeer, bfd []v1beta1.BFDProfile, comms []v1beta1.Community) {
	return listAs[v1beta1.IPAddressPool](h.Pools), listAs[v1beta1.L2Advertisement](h.L2Advertisements),
		listAs[v1beta1.BGPAdvertisement](h.BGPAdvertisements), listAs[v1beta1.BGPPeer](h.Peers),
		listAs[v1beta1.BFDProfile](h.BFDProfiles), listAs[v1beta1.Community](h.Communities)
}

// AcceptedLists returns the objects that the leading controller accepted,
// each with its accepted spec in place of its current one. An object never
// accepted is left out. This is the configuration every speaker and standby
// controller builds: a function of what is stored in the API alone.
func (h *HeraldInformers) AcceptedLists() (pools []v1beta1.IPAddressPool, l2 []v1beta1.L2Advertisement, bgp []v1beta1.BGPAdvertisement,
	peers []v1beta1.BGPPeer, bfd []v1beta1.BFDProfile, comms []v1beta1.Community) {
	return acceptedAs[v1beta1.IPAddressPool](h.Pools), acceptedAs[v1beta1.L2Advertisement](h.L2Advertisements),
		acceptedAs[v1beta1.BGPAdvertisement](h.BGPAdvertisements), acceptedAs[v1beta1.BGPPeer](h.Peers),
		acceptedAs[v1beta1.BFDProfile](h.BFDProfiles), acceptedAs[v1beta1.Community](h.Communities)
}

func acceptedAs[T any, PT interface {
	*T
	v1beta1.Configurable
}](i cache.SharedIndexInformer) []T {
	items := i.GetStore().List()
	out := make([]T, 0, len(items))
	for _, o := range items {
		src, ok := o.(*T)
		if !ok {
			continue
		}
		st := PT(src).ConfigStatus()
		if st.AcceptedSpec == nil || len(st.AcceptedSpec.Raw) == 0 {
			continue
		}
		v := *src // the spec is replaced, the rest is shared and read-only
		if err := PT(&v).SetSpecJSON(st.AcceptedSpec.Raw); err != nil {
			continue
		}
		out = append(out, v)
	}
	return out
}
