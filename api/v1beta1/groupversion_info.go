// Package v1beta1 holds the herald.io/v1beta1 API: IP address pools, the
// L2 and BGP advertisements that announce them, BGP peers, BFD profiles and
// community aliases.
//
// +kubebuilder:object:generate=true
// +groupName=herald.io
package v1beta1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of every kind in this package.
var GroupVersion = schema.GroupVersion{Group: "herald.io", Version: "v1beta1"}

// AddToScheme adds this package's kinds to a runtime.Scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&IPAddressPool{}, &IPAddressPoolList{},
		&L2Advertisement{}, &L2AdvertisementList{},
		&BGPAdvertisement{}, &BGPAdvertisementList{},
		&BGPPeer{}, &BGPPeerList{},
		&BFDProfile{}, &BFDProfileList{},
		&Community{}, &CommunityList{},
		&BGPSessionState{}, &BGPSessionStateList{},
		&ServiceAnnouncement{}, &ServiceAnnouncementList{},
	)
	metav1AddToGroupVersion(s)
	return nil
}
