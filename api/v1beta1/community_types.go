package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CommunitySpec defines named community values.
type CommunitySpec struct {
	// Communities are the aliases. Names are unique within the object.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=name
	Communities []CommunityAlias `json:"communities"`
}

// CommunityAlias names one community value.
type CommunityAlias struct {
	// Name is the alias, used in BGPAdvertisement.communities.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// Value is a standard ("65000:100") or large ("large:65000:1:2")
	// community; not another alias.
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+:[0-9]+$') || self.matches('^large:[0-9]+:[0-9]+:[0-9]+$')",message="value must be a community such as 65000:100 or a large community such as large:65000:1:2, not an alias"
	Value CommunityValue `json:"value"`
}

// Community holds named aliases for BGP community values.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=comm,categories=herald
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Community struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CommunitySpec `json:"spec"`
	Status Status        `json:"status,omitempty"`
}

// CommunityList is a list of Communities.
//
// +kubebuilder:object:root=true
type CommunityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Community `json:"items"`
}
