package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BFDProfileSpec holds the BFD timers of the sessions that name the profile.
type BFDProfileSpec struct {
	// ReceiveInterval is the minimum interval, in milliseconds, at which
	// this end can receive control packets. Default 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	ReceiveInterval *int32 `json:"receiveInterval,omitempty"`

	// TransmitInterval is the minimum interval, in milliseconds, at which
	// this end sends control packets. Default 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	TransmitInterval *int32 `json:"transmitInterval,omitempty"`

	// DetectMultiplier is how many packets may be lost before the session
	// is declared down. Default 3.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	// +kubebuilder:default=3
	// +optional
	DetectMultiplier *int32 `json:"detectMultiplier,omitempty"`

	// PassiveMode makes this end wait for the peer's first packet.
	// +optional
	PassiveMode bool `json:"passiveMode,omitempty"`
	// EchoMode would turn on the BFD echo function (RFC 5880 section
	// 6.4). Herald's BFD runs in the speaker process, not in the kernel's
	// forwarding path, so it cannot loop echo packets: true is refused.
	// Kept for MetalLB compatibility.
	// +kubebuilder:validation:XValidation:rule="!self",message="echoMode is not supported: Herald's BFD runs in the speaker process and cannot loop echo packets; use shorter control intervals"
	// +optional
	EchoMode bool `json:"echoMode,omitempty"`
	// EchoInterval would be the echo interval, in milliseconds; ignored
	// without echoMode. Kept for MetalLB compatibility.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +optional
	EchoInterval *int32 `json:"echoInterval,omitempty"`

	// MinimumTTL is the lowest TTL accepted on multihop sessions (a
	// BGPPeer with ebgpMultiHop); packets with a lower TTL are dropped.
	// Single-hop sessions accept TTL 255 only (RFC 5881 section 5, GTSM).
	// Default 254.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=254
	// +kubebuilder:default=254
	// +optional
	MinimumTTL *int32 `json:"minimumTtl,omitempty"`
}

// BFDProfile is a set of BFD timers that BGPPeers refer to by name.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bfd,categories=herald
// +kubebuilder:printcolumn:name="RX ms",type=integer,JSONPath=`.spec.receiveInterval`
// +kubebuilder:printcolumn:name="TX ms",type=integer,JSONPath=`.spec.transmitInterval`
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=`.spec.detectMultiplier`
// +kubebuilder:printcolumn:name="Passive",type=boolean,JSONPath=`.spec.passiveMode`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BFDProfileSpec `json:"spec,omitempty"`
	Status Status         `json:"status,omitempty"`
}

// BFDProfileList is a list of BFDProfiles.
//
// +kubebuilder:object:root=true
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}
