package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// IPAddressPoolSpec says which addresses a pool holds and which Services it
// serves.
type IPAddressPoolSpec struct {
	// Addresses are the pool's addresses: CIDRs or dash ranges, IPv4 and
	// IPv6 alike. Pools must not overlap.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Addresses []AddressRange `json:"addresses"`

	// AutoAssign lets Herald give the pool's addresses to Services that did
	// not ask for this pool or for one of its IPs. Default true.
	// +kubebuilder:default=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255, which some
	// old clients and routers mishandle.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// ServiceAllocation restricts the pool to some Services and orders it
	// before the pools that serve everyone.
	// +optional
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation selects the Services a pool serves. A Service matches
// when its namespace is listed in Namespaces or matches one of
// NamespaceSelectors (if either is set), and its labels match one of
// ServiceSelectors (if set).
// +kubebuilder:validation:XValidation:rule="has(self.priority) || has(self.namespaces) || has(self.namespaceSelectors) || has(self.serviceSelectors)",message="serviceAllocation must set at least one of priority, namespaces, namespaceSelectors, serviceSelectors"
type ServiceAllocation struct {
	// Priority orders pools that select a Service: lower wins. Pools
	// without a priority come after those with one, by name.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Priority *int32 `json:"priority,omitempty"`

	// Namespaces lists namespaces by name.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelectors select namespaces by label.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`

	// ServiceSelectors select Services by label.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus reports how much of the pool is in use and whether
// the pool takes effect.
type IPAddressPoolStatus struct {
	Status `json:",inline"`

	// AssignedIPv4 counts the pool's IPv4 addresses held by Services.
	// +optional
	AssignedIPv4 int64 `json:"assignedIPv4"`
	// AssignedIPv6 counts the pool's IPv6 addresses held by Services.
	// +optional
	AssignedIPv6 int64 `json:"assignedIPv6"`
	// AvailableIPv4 counts the pool's free IPv4 addresses (after
	// avoidBuggyIPs).
	// +optional
	AvailableIPv4 int64 `json:"availableIPv4"`
	// AvailableIPv6 counts the pool's free IPv6 addresses. It saturates at
	// 9223372036854775807 for pools larger than that (a /64 has 2^64).
	// +optional
	AvailableIPv6 int64 `json:"availableIPv6"`
	// OutOfPool counts the IPs that Services still hold although they left
	// this pool's addresses when the pool was edited.
	// +optional
	OutOfPool int64 `json:"outOfPool,omitempty"`
}

// IPAddressPool is a set of addresses Herald gives to Services of type
// LoadBalancer.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ipp;pool,categories=herald
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="V4 Used",type=integer,JSONPath=`.status.assignedIPv4`
// +kubebuilder:printcolumn:name="V4 Free",type=integer,JSONPath=`.status.availableIPv4`
// +kubebuilder:printcolumn:name="V6 Used",type=integer,JSONPath=`.status.assignedIPv6`
// +kubebuilder:printcolumn:name="V6 Free",type=integer,JSONPath=`.status.availableIPv6`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPAddressPoolSpec   `json:"spec"`
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPools.
//
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}
