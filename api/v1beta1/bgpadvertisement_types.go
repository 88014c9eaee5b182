package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BGPAdvertisementSpec says which pools' IPs are advertised over BGP, how,
// to which peers and from which nodes. Empty selectors select everything.
type BGPAdvertisementSpec struct {
	// IPAddressPools names the pools to advertise.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select pools by label.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// AggregationLength is the prefix length advertised for IPv4 addresses.
	// Default 32. It must not be shorter than the prefix of any pool range
	// it covers.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +kubebuilder:default=32
	// +optional
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is the prefix length advertised for IPv6
	// addresses. Default 128.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +kubebuilder:default=128
	// +optional
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref is the LOCAL_PREF attribute; it is sent to iBGP peers only.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	LocalPref *int64 `json:"localPref,omitempty"`

	// Communities are attached to the advertised prefixes.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Communities []CommunityValue `json:"communities,omitempty"`

	// Peers names the BGPPeers to advertise to. Empty: every peer.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	Peers []string `json:"peers,omitempty"`

	// NodeSelectors limit the nodes that advertise.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// ServiceSelectors limit the Services advertised.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// BGPAdvertisement advertises pools' IPs to BGP peers.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv,categories=herald
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPAdvertisementSpec `json:"spec,omitempty"`
	Status Status               `json:"status,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisements.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}
