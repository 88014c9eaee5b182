package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// L2AdvertisementSpec says which pools' IPs are announced with ARP/NDP, from
// which nodes and on which interfaces. Empty selectors select everything.
type L2AdvertisementSpec struct {
	// IPAddressPools names the pools to announce.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select pools by label.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors limit the nodes that may announce.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// PreferredNodeSelectors select the nodes that announce while one of
	// them is eligible: among the eligible nodes, one that a preferred
	// selector selects always wins over one that none selects, and the
	// hash ranks each group. An IP moves to a node that is not preferred
	// only when no preferred node is eligible, and back when one is again.
	// Empty: no preference.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	PreferredNodeSelectors []metav1.LabelSelector `json:"preferredNodeSelectors,omitempty"`

	// Interfaces limit the interfaces announced on: exact names or glob
	// patterns ("eth*", "bond[01]"). A node without a matching interface is
	// not eligible. Empty: every suitable interface. Interfaces the speakers
	// exclude (--exclude-interfaces: CNI bridges and virtual links by
	// default) are never used.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=15
	// +kubebuilder:validation:items:Pattern=`^[^/\s]+$`
	// +listType=set
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`

	// ServiceSelectors limit the Services announced.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// L2Advertisement announces pools' IPs on the local network with ARP and NDP.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l2adv,categories=herald
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   L2AdvertisementSpec `json:"spec,omitempty"`
	Status Status              `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisements.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}
