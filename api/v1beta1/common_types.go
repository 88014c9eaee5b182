package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Status is the status every configuration object carries.
type Status struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions say whether the object takes effect (Ready) and, when not,
	// why, naming the field at fault.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// AcceptedGeneration is the generation of AcceptedSpec. It equals
	// metadata.generation when the current spec is in effect.
	// +optional
	AcceptedGeneration int64 `json:"acceptedGeneration,omitempty"`
	// AcceptedSpec is the spec in effect on every node, as the leading
	// controller accepted it: the current spec when it is valid, else the
	// last valid one. Speakers and standby controllers build their
	// configuration from it alone, so a bad edit keeps the previous version
	// in effect everywhere, across restarts. Empty: never accepted, not in
	// effect anywhere.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	AcceptedSpec *runtime.RawExtension `json:"acceptedSpec,omitempty"`
}

// AddressRange is a CIDR ("203.0.113.0/24", "2001:db8::/120") or an
// inclusive range of two addresses of one family joined by a dash
// ("203.0.113.10-203.0.113.20").
//
// The API server checks the order of IPv4 ranges; the order of IPv6 ranges
// is beyond CEL's cost budget, so the controller checks it and reports a
// reversed one on the pool's Ready condition.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=100
// +kubebuilder:validation:XValidation:rule="self.contains('-') || isCIDR(self)",message="must be a CIDR such as 203.0.113.0/24 or a range such as 203.0.113.10-203.0.113.20"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || (self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim()))",message="a range must be two IP addresses joined by '-', such as 203.0.113.10-203.0.113.20"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || self.split('-').size() != 2 || !isIP(self.split('-')[0].trim()) || !isIP(self.split('-')[1].trim()) || ip(self.split('-')[0].trim()).family() == ip(self.split('-')[1].trim()).family()",message="both ends of a range must be of the same IP family"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || self.split('-').size() != 2 || !isIP(self.split('-')[0].trim()) || !isIP(self.split('-')[1].trim()) || ip(self.split('-')[0].trim()).family() != 4 || ip(self.split('-')[1].trim()).family() != 4 || int(self.split('-')[0].trim().split('.')[0]) * 16777216 + int(self.split('-')[0].trim().split('.')[1]) * 65536 + int(self.split('-')[0].trim().split('.')[2]) * 256 + int(self.split('-')[0].trim().split('.')[3]) * 1 <= int(self.split('-')[1].trim().split('.')[0]) * 16777216 + int(self.split('-')[1].trim().split('.')[1]) * 65536 + int(self.split('-')[1].trim().split('.')[2]) * 256 + int(self.split('-')[1].trim().split('.')[3]) * 1",message="the first address of a range must not be greater than the last"
type AddressRange string

// CommunityValue is a BGP community: a standard community "65000:100"
// (two 16-bit numbers), a large community "large:65000:1:2" (three 32-bit
// numbers), or the name of an alias defined in a Community object.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]+:[0-9]+$') || self.matches('^large:[0-9]+:[0-9]+:[0-9]+$') || self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="must be a community such as 65000:100, a large community such as large:65000:1:2, or the name of a Community alias"
// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]+:[0-9]+$') || (self.split(':').all(p, size(p) <= 5 && int(p) <= 65535))",message="each half of a standard community must be within 0..65535"
// +kubebuilder:validation:XValidation:rule="!self.matches('^large:[0-9]+:[0-9]+:[0-9]+$') || (self.split(':').slice(1, 4).all(p, size(p) <= 10 && int(p) <= 4294967295))",message="each part of a large community must be within 0..4294967295"
type CommunityValue string
